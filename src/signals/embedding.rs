//! `embedding_drift`: the cosine between the window's and the baseline's
//! output-embedding centroids falls below `max_cosine`, and further than
//! centroid noise explains. Centroids come from running sums, so memory does
//! not grow with traffic. The noise guard: per-record spread tr(Σ) is
//! estimated from how far hourly centroids scatter around the baseline
//! centroid (n_h·|m_h − c|² ≈ tr Σ); under no drift |c₁ − c₀|² ≈
//! tr Σ·(1/n₁ + 1/n₀)·χ²(d)/d, tested conservatively with d = 1. Beside it, a
//! CUSUM on the hourly centroids' projection onto the baseline direction.

use super::DetectorConfig;
use super::baseline;
use super::finding::{Rule, Severity};
use super::rollup::{EmbeddingSum, StreamRollups};
use super::sequential::{baseline_precise, cusum};
use super::stats::chi2_sf;
use super::verdict::{Verdict, verdict};
use super::window::Windows;

fn centroid(e: &EmbeddingSum) -> Vec<f64> {
    e.sum.iter().map(|s| s / e.n.max(1) as f64).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let d = (dot(a, a) * dot(b, b)).sqrt();
    if d == 0.0 { 0.0 } else { dot(a, b) / d }
}

pub fn embedding_drift(
    stream: &str,
    data: &StreamRollups,
    w: &Windows,
    cfg: &DetectorConfig,
) -> Verdict {
    let c = &cfg.embedding_drift;
    let all = centroid(&data.embedding_sum(w.baseline));
    let days = baseline::days(w);
    let kept = baseline::keep_typical(
        &days,
        |d| {
            let e = data.embedding_sum(d);
            (e.n >= c.min_samples && e.sum.len() == all.len()).then(|| cosine(&centroid(&e), &all))
        },
        1.0 - c.max_cosine,
    );
    let mut base = EmbeddingSum::default();
    for &d in &kept {
        let e = data.embedding_sum(d);
        if base.sum.is_empty() {
            base.sum = vec![0.0; e.sum.len()];
        }
        if e.sum.len() == base.sum.len() {
            base.n += e.n;
            base.sum.iter_mut().zip(&e.sum).for_each(|(b, x)| *b += x);
        }
    }
    let cur = data.embedding_sum(w.current);
    let insufficient = |why: String| {
        Verdict::insufficient(
            Rule::EmbeddingDrift,
            stream,
            None,
            w.now_ms,
            c.max_cosine,
            cur.n,
            base.n,
            why,
        )
    };
    if cur.n < c.min_samples || base.n < c.min_samples {
        return insufficient(format!(
            "{} embeddings in the window, {} in the baseline; need {} each",
            cur.n, base.n, c.min_samples
        ));
    }
    if cur.sum.len() != base.sum.len() {
        return insufficient(
            "embedding dimensions changed: the baseline refills with the new embedder".into(),
        );
    }
    let (c0, c1) = (centroid(&base), centroid(&cur));
    // Per-record spread from the scatter of hourly centroids.
    let (mut spread, mut hours) = (0.0, 0.0);
    for &(a, b) in &kept {
        for (_, e) in data.embedding.range(a..b) {
            if e.n >= 2 && e.sum.len() == c0.len() {
                let m = centroid(e);
                spread += e.n as f64 * m.iter().zip(&c0).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
                hours += 1.0;
            }
        }
    }
    if hours < 24.0 {
        return insufficient(format!(
            "{hours} baseline hours with embeddings; need 24 to measure centroid noise"
        ));
    }
    let tr = spread / hours;
    let (n0, n1) = (base.n as f64, cur.n as f64);
    let cos = cosine(&c1, &c0);
    let dist2: f64 = c1.iter().zip(&c0).map(|(x, y)| (x - y).powi(2)).sum();
    let p = chi2_sf(
        dist2 / (tr * (1.0 / n1 + 1.0 / n0)).max(f64::MIN_POSITIVE),
        1.0,
    );
    let norm2 = dot(&c0, &c0);
    // The cosine two samples of the baseline population would show by chance.
    let expected = norm2 / ((norm2 + tr / n0) * (norm2 + tr / n1)).sqrt();
    let window_effect = cos < c.max_cosine;

    let mut direct = false;
    let mut note = String::new();
    if cfg.sequential.enabled && norm2 > 0.0 {
        let u: Vec<f64> = c0.iter().map(|x| x / norm2.sqrt()).collect();
        let mu0 = norm2.sqrt();
        // Variance of a record's projection, from the hourly projections.
        let (mut s, mut h) = (0.0, 0.0);
        for &(a, b) in &kept {
            for (_, e) in data.embedding.range(a..b) {
                if e.n >= 2 && e.sum.len() == u.len() {
                    s += e.n as f64 * (dot(&centroid(e), &u) - mu0).powi(2);
                    h += 1.0;
                }
            }
        }
        let var = s / h;
        let d = -mu0 * (1.0 - c.max_cosine);
        let precise = baseline_precise((var / n0).sqrt(), d);
        let chart = cusum(
            data.embedding
                .range(w.sequential.0..w.sequential.1)
                .filter(|(_, e)| e.sum.len() == u.len())
                .map(|(&t, e)| {
                    let n = e.n as f64;
                    (t, n * d * (dot(&centroid(e), &u) - mu0 - d / 2.0) / var)
                }),
        );
        if precise
            && chart.alarm(cfg.sequential.threshold())
            && let Some(since) = chart.since_ms
        {
            let seg = data.embedding_sum((since, w.sequential.1));
            let seg_cos = cosine(&centroid(&seg), &c0);
            if seg.n >= c.min_samples && seg_cos < c.max_cosine {
                direct = true;
                note = format!(
                    "; CUSUM {:.1} since {}: cosine {seg_cos:.3}",
                    chart.stat,
                    super::fmt_time(since)
                );
            }
        }
    }
    let severity = if cos < c.max_cosine - 0.2 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    verdict(
        Rule::EmbeddingDrift,
        stream,
        None,
        w.now_ms,
        (cos, expected, c.max_cosine),
        Some(p),
        (cur.n, base.n),
        severity,
        window_effect,
        direct,
        cfg.alpha,
        format!(
            "centroid cosine {cos:.3} (no-drift expectation {expected:.3}, p={p:.2e}, n={}){note}",
            cur.n
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Status;
    use crate::signals::synth::{Gen, embedding_hours};
    use crate::signals::window::HOUR_MS;

    const NOW: i64 = 4_000 * HOUR_MS;
    const USUAL: [usize; 3] = [0, 1, 2];
    const SHIFTED: [usize; 3] = [3, 4, 1];

    fn eval(seed: u64, per_hour: u32, step_hours: i64, shifted: &'static [usize]) -> Verdict {
        let mut g = Gen::new(seed);
        let from = NOW - step_hours * HOUR_MS;
        let embedding = embedding_hours(&mut g, NOW - 192 * HOUR_MS, NOW, per_hour, |h| {
            if h >= from { shifted } else { &USUAL }
        });
        let d = StreamRollups {
            embedding,
            ..Default::default()
        };
        let cfg = DetectorConfig::default();
        embedding_drift("s", &d, &Windows::new(NOW, &cfg), &cfg)
    }

    #[test]
    fn stationary_noise_gives_no_verdict() {
        for seed in 0..20 {
            for per_hour in [3, 30] {
                let v = eval(seed, per_hour, 0, &USUAL);
                assert_eq!(v.finding.status, Status::Ok, "{:?}", v.finding);
                assert!(v.finding.value > v.finding.threshold);
            }
        }
    }

    #[test]
    fn a_topic_shift_is_caught() {
        let v = eval(1, 30, 24, &SHIFTED);
        assert_eq!(v.finding.status, Status::Firing, "{:?}", v.finding);
        assert!(v.finding.value < 0.82);
        assert!(eval(2, 30, 3, &SHIFTED).direct);
    }

    #[test]
    fn too_few_embeddings_is_insufficient_data() {
        let v = eval(3, 0, 24, &SHIFTED);
        assert_eq!(v.finding.status, Status::InsufficientData);
    }
}
