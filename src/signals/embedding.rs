//! `embedding_drift`: the cosine between the window's and the baseline's
//! output-embedding centroids falls below `max_cosine`, and further than
//! centroid noise explains. Centroids come from running sums, so memory does
//! not grow with traffic. The noise guard: per-record spread tr(Σ) is
//! estimated from how far hourly centroids scatter around the baseline
//! centroid (n_h·|m_h − c|² ≈ tr Σ); under no drift |c₁ − c₀|² ≈
//! tr Σ·(1/n₁ + 1/n₀)·χ²(d)/d, tested conservatively with d = 1 — shown
//! beside the cosine. The alarm is a CUSUM on the hourly centroids'
//! projection onto the baseline direction; it fires when the centroid since
//! its change point has cosine < `max_cosine` with the baseline's.

use super::finding::{Rule, Severity};
use super::rollup::{EmbeddingSum, StreamRollups};
use super::sequential::{baseline_precise, cusum, in_spans};
use super::stats::chi2_sf;
use super::verdict::{Decision, Subject, Verdict, verdict};
use super::window::Look;

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

pub fn embedding_drift(stream: &str, data: &StreamRollups, look: &Look<'_>) -> Verdict {
    let (w, cfg) = (look.w, look.cfg);
    let c = &cfg.embedding_drift;
    let mut base = EmbeddingSum::default();
    let mut kept: Vec<&EmbeddingSum> = Vec::new();
    for (&t, e) in data.embedding.range(look.baseline().0..look.baseline().1) {
        if in_spans(look.quiet, t) || e.n == 0 {
            continue;
        }
        if base.sum.is_empty() {
            base.sum = vec![0.0; e.sum.len()];
        }
        if e.sum.len() == base.sum.len() {
            base.n += e.n;
            base.sum.iter_mut().zip(&e.sum).for_each(|(b, x)| *b += x);
            kept.push(e);
        }
    }
    let recent = look.recent(&data.embedding, c.min_samples as f64, |e| e.n as f64);
    let cur = data.embedding_sum(recent);
    let subject = Subject {
        rule: Rule::EmbeddingDrift,
        stream,
        dimension: None,
        at_ms: w.now_ms,
        samples: cur.n,
        baseline_samples: base.n,
    };
    let c0 = centroid(&base);
    // Per-record spread from the scatter of hourly centroids.
    let (mut spread, mut hours) = (0.0, 0.0);
    for e in &kept {
        if e.n >= 2 {
            let m = centroid(e);
            spread += e.n as f64 * m.iter().zip(&c0).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
            hours += 1.0;
        }
    }
    if base.n < c.min_samples || hours < f64::from(cfg.min_baseline_hours) {
        return Verdict::warming_up(
            subject,
            c.max_cosine,
            format!(
                "warming up: {} baseline embeddings over {hours} hours; needs {} and {} hours of data to measure centroid noise",
                base.n, c.min_samples, cfg.min_baseline_hours
            ),
        );
    }
    if cur.n == 0 {
        return Verdict::insufficient(
            subject,
            c.max_cosine,
            "no embeddings in the recent hours".into(),
        );
    }
    if cur.sum.len() != base.sum.len() {
        return Verdict::warming_up(
            subject,
            c.max_cosine,
            "embedding dimensions changed: the baseline refills with the new embedder".into(),
        );
    }
    let tr = spread / hours;
    let (n0, n1) = (base.n as f64, cur.n as f64);
    let c1 = centroid(&cur);
    let r_cos = cosine(&c1, &c0);
    let dist2: f64 = c1.iter().zip(&c0).map(|(x, y)| (x - y).powi(2)).sum();
    let p = chi2_sf(
        dist2 / (tr * (1.0 / n1 + 1.0 / n0)).max(f64::MIN_POSITIVE),
        1.0,
    );
    let norm2 = dot(&c0, &c0);
    // The cosine two samples of the baseline population would show by chance.
    let expected = norm2 / ((norm2 + tr / n0) * (norm2 + tr / n1)).sqrt();

    let mut best: Option<(f64, i64, f64, u64)> = None;
    if cfg.sequential.enabled && norm2 > 0.0 {
        let u: Vec<f64> = c0.iter().map(|x| x / norm2.sqrt()).collect();
        let mu0 = norm2.sqrt();
        // Variance of a record's projection, from the hourly projections.
        let (mut s, mut h) = (0.0, 0.0);
        for e in &kept {
            if e.n >= 2 {
                s += e.n as f64 * (dot(&centroid(e), &u) - mu0).powi(2);
                h += 1.0;
            }
        }
        let var = s / h;
        let d = -mu0 * (1.0 - c.max_cosine);
        // The baseline projection moved down by baseline_z standard errors.
        let mu0c = mu0 - cfg.baseline_z * (var / n0).sqrt();
        let precise = baseline_precise((var / n0).sqrt(), d) && var > 0.0;
        let chart = cusum(
            data.embedding
                .range(w.sequential.0..w.sequential.1)
                .filter(|(t, e)| e.sum.len() == u.len() && !in_spans(look.quiet, **t))
                .map(|(&t, e)| {
                    let n = e.n as f64;
                    (t, n * d * (dot(&centroid(e), &u) - mu0c - d / 2.0) / var)
                }),
        );
        if precise
            && chart.alarm(look.h)
            && let Some(since) = chart.since_ms
        {
            let seg = data.embedding_sum((since, w.current.1));
            let seg_cos = cosine(&centroid(&seg), &c0);
            let resolve_cos = 1.0 - cfg.resolve_level * (1.0 - c.max_cosine);
            if seg_cos < c.max_cosine && r_cos < resolve_cos {
                best = Some((chart.stat, since, seg_cos, seg.n));
            }
        }
    }
    let (value, n, summary) = match best {
        Some((stat, since, cos, n)) => (
            cos,
            n,
            format!(
                "centroid cosine {cos:.3} since {} (no-drift expectation {expected:.3}, n={n}, CUSUM {stat:.1} > {:.1})",
                super::fmt_time(since),
                look.h
            ),
        ),
        None => (
            r_cos,
            cur.n,
            format!(
                "centroid cosine {r_cos:.3} over the recent hours (no-drift expectation {expected:.3}, p={p:.2e}, n={})",
                cur.n
            ),
        ),
    };
    verdict(
        Subject {
            samples: n,
            ..subject
        },
        Decision {
            value,
            baseline: expected,
            threshold: c.max_cosine,
            p_value: None,
            severity: if value < c.max_cosine - 0.2 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            window_effect: false,
            direct: best.is_some(),
            resolve: look.settled() && r_cos > 1.0 - cfg.resolve_level * (1.0 - c.max_cosine),
            alpha: cfg.alpha,
            summary,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::synth::{Gen, embedding_hours};
    use crate::signals::window::{HOUR_MS, Windows};
    use crate::signals::{DetectorConfig, Status};

    const NOW: i64 = 4_000 * HOUR_MS;
    const USUAL: [usize; 3] = [0, 1, 2];
    const SHIFTED: [usize; 3] = [3, 4, 1];

    fn eval(seed: u64, per_hour: u32, step_hours: i64, shifted: &'static [usize]) -> Verdict {
        let mut g = Gen::new(seed);
        let from = NOW - step_hours * HOUR_MS;
        let embedding = embedding_hours(&mut g, NOW - 240 * HOUR_MS, NOW, per_hour, |h| {
            if h >= from { shifted } else { &USUAL }
        });
        let d = StreamRollups {
            embedding,
            ..Default::default()
        };
        let cfg = DetectorConfig::default();
        let w = Windows::new(NOW, &cfg);
        let look = Look {
            w: &w,
            cfg: &cfg,
            h: (8760.0f64 * 9.0).ln(),
            quiet: &[],
        };
        embedding_drift("s", &d, &look)
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
    fn a_topic_shift_is_caught_within_three_hours() {
        let v = eval(1, 30, 24, &SHIFTED);
        assert_eq!(v.finding.status, Status::Firing, "{:?}", v.finding);
        assert!(v.finding.value < 0.82);
        assert!(eval(2, 30, 3, &SHIFTED).direct);
    }

    #[test]
    fn no_embeddings_is_warming_up() {
        let v = eval(3, 0, 24, &SHIFTED);
        assert_eq!(v.finding.status, Status::WarmingUp);
    }
}
