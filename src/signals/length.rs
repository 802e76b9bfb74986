//! `length_drift`: KL(current ‖ baseline) of the output-length histogram
//! (25-token bins) is at least `min_kl` *and* significant. Under no drift
//! 2·n_eff·KL ≈ χ²(k−1) (the G-test, n_eff = n₁n₂/(n₁+n₂)), so a fixed KL
//! threshold alone is too loose at small n (it fires on 30 % of no-drift
//! windows at 700 vs 100 rows) and too strict at large n. Sparse bins are
//! merged and every bin gets an add-0.5 pseudo-count, so nothing divides by
//! zero. Beside it, a two-sided CUSUM on the mean length reacts in hours.

use super::baseline;
use super::finding::{Rule, Severity};
use super::rollup::{BINS, StreamRollups};
use super::sequential::{baseline_precise, cusum, normal_dispersion, normal_llr};
use super::stats::{Moments, chi2_isf, chi2_sf};
use super::verdict::{Verdict, verdict};
use super::window::Windows;
use super::{DetectorConfig, LengthConfig};

/// KL divergence of `cur` from `base`, the G-test p-value, and the critical
/// KL at level `alpha` for these sample sizes.
pub fn kl_test(
    cur: &[u64; BINS],
    base: &[u64; BINS],
    c: &LengthConfig,
    alpha: f64,
) -> (f64, f64, f64) {
    // Merge adjacent bins until each group holds min_bin_count pooled records.
    let mut groups: Vec<(f64, f64)> = Vec::new();
    let mut acc = (0.0, 0.0);
    for i in 0..BINS {
        acc.0 += cur[i] as f64;
        acc.1 += base[i] as f64;
        if acc.0 + acc.1 >= c.min_bin_count as f64 {
            groups.push(acc);
            acc = (0.0, 0.0);
        }
    }
    if acc.0 + acc.1 > 0.0 {
        match groups.last_mut() {
            Some(last) => {
                last.0 += acc.0;
                last.1 += acc.1;
            }
            None => groups.push(acc),
        }
    }
    let k = groups.len() as f64;
    let n1: f64 = groups.iter().map(|g| g.0).sum();
    let n2: f64 = groups.iter().map(|g| g.1).sum();
    if k < 2.0 || n1 == 0.0 || n2 == 0.0 {
        return (0.0, 1.0, f64::INFINITY);
    }
    let a = c.smoothing;
    let kl: f64 = groups
        .iter()
        .map(|&(x, y)| {
            let p = (x + a) / (n1 + a * k);
            let q = (y + a) / (n2 + a * k);
            p * (p / q).ln()
        })
        .sum::<f64>()
        .max(0.0);
    let n_eff = n1 * n2 / (n1 + n2);
    let p = chi2_sf(2.0 * n_eff * kl, k - 1.0);
    (kl, p, chi2_isf(alpha, k - 1.0) / (2.0 * n_eff))
}

pub fn length_drift(
    stream: &str,
    data: &StreamRollups,
    w: &Windows,
    cfg: &DetectorConfig,
) -> Verdict {
    let c = &cfg.length_drift;
    let days = baseline::days(w);
    let all = data.histogram(w.baseline);
    let kept = baseline::keep_typical(
        &days,
        |d| {
            let h = data.histogram(d);
            (h.iter().sum::<u64>() >= c.min_samples).then(|| kl_test(&h, &all, c, cfg.alpha).0)
        },
        c.min_kl,
    );
    let mut base = [0u64; BINS];
    for &d in &kept {
        for (b, x) in base.iter_mut().zip(data.histogram(d)) {
            *b += x;
        }
    }
    let cur = data.histogram(w.current);
    let (n1, n0) = (cur.iter().sum::<u64>(), base.iter().sum::<u64>());
    if n1 < c.min_samples || n0 < c.min_samples {
        return Verdict::insufficient(
            Rule::LengthDrift,
            stream,
            None,
            w.now_ms,
            c.min_kl,
            n1,
            n0,
            format!(
                "{n1} lengths in the window, {n0} in the baseline; need {} each",
                c.min_samples
            ),
        );
    }
    let (kl, p, critical) = kl_test(&cur, &base, c, cfg.alpha);
    let window_effect = kl >= c.min_kl;
    let tokens = |spans: &[(i64, i64)]| {
        let mut m = Moments::default();
        for &s in spans {
            m.add(data.counts(s).tokens);
        }
        m
    };
    let (t0, t1) = (tokens(&kept), tokens(&[w.current]));

    let mut direct = false;
    let mut note = String::new();
    if cfg.sequential.enabled
        && t0.var() > 0.0
        && baseline_precise(
            (t0.var() / t0.n).sqrt(),
            cfg.sequential.length_shift_sd * t0.var().sqrt(),
        )
    {
        let base_hours: Vec<Moments> = kept
            .iter()
            .flat_map(|&(a, b)| data.hours.range(a..b).map(|(_, h)| h.tokens))
            .collect();
        let var = t0.var() * normal_dispersion(&base_hours, t0.mean(), t0.var());
        let d = cfg.sequential.length_shift_sd * t0.var().sqrt();
        for shift in [d, -d] {
            let chart = cusum(
                data.hours
                    .range(w.sequential.0..w.sequential.1)
                    .map(|(&t, h)| (t, normal_llr(h.tokens, t0.mean(), shift, var))),
            );
            if chart.alarm(cfg.sequential.threshold())
                && let Some(since) = chart.since_ms
            {
                let seg = data.histogram((since, w.sequential.1));
                let (seg_kl, seg_p, _) = kl_test(&seg, &base, c, cfg.alpha);
                if seg.iter().sum::<u64>() >= c.min_samples.min(50)
                    && seg_kl >= c.min_kl
                    && seg_p < cfg.alpha
                {
                    direct = true;
                    note = format!(
                        "; CUSUM {:.1} since {}: KL {seg_kl:.3}",
                        chart.stat,
                        super::fmt_time(since)
                    );
                }
            }
        }
    }
    let severity = if kl >= 3.0 * c.min_kl {
        Severity::Critical
    } else {
        Severity::Warning
    };
    verdict(
        Rule::LengthDrift,
        stream,
        None,
        w.now_ms,
        (kl, critical, c.min_kl),
        Some(p),
        (n1, n0),
        severity,
        window_effect,
        direct,
        cfg.alpha,
        format!(
            "KL {kl:.3} (noise level {critical:.3}, p={p:.2e}); mean length {:.0} → {:.0} tokens{note}",
            t0.mean(),
            t1.mean()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Status;
    use crate::signals::synth::{Gen, count_hours};
    use crate::signals::window::HOUR_MS;

    const NOW: i64 = 3_000 * HOUR_MS;

    fn eval(seed: u64, per_hour: u32, step_hours: i64, factor: f64) -> Verdict {
        let mut g = Gen::new(seed);
        let from = NOW - step_hours * HOUR_MS;
        let (hours, length) = count_hours(
            &mut g,
            NOW - 192 * HOUR_MS,
            NOW,
            per_hour,
            |_| (0.03, 0.01),
            |h| if h >= from { 120.0 * factor } else { 120.0 },
            40.0,
        );
        let d = StreamRollups {
            hours,
            length,
            ..Default::default()
        };
        let cfg = DetectorConfig::default();
        length_drift("s", &d, &Windows::new(NOW, &cfg), &cfg)
    }

    #[test]
    fn stationary_noise_gives_no_verdict_even_at_small_n() {
        for seed in 0..20 {
            for per_hour in [5, 40] {
                let v = eval(seed, per_hour, 0, 1.0);
                assert_eq!(v.finding.status, Status::Ok, "{:?}", v.finding);
            }
        }
    }

    #[test]
    fn kl_alone_would_fire_on_small_samples() {
        // The note's measurement: a fixed KL cut fires on no-drift windows at
        // small n; the significance requirement is what keeps them quiet.
        let raw = LengthConfig {
            min_bin_count: 0,
            smoothing: 1e-4,
            ..LengthConfig::default()
        };
        let c = LengthConfig::default();
        let mut g = Gen::new(9);
        let mut fixed_cut = 0;
        for _ in 0..100 {
            let mut draw = |n: usize| {
                let mut h = [0u64; BINS];
                for _ in 0..n {
                    // Long-tailed like real output lengths: many sparse bins.
                    h[crate::signals::rollup::length_bin((5.0 + 0.8 * g.normal()).exp() as i64)] +=
                        1;
                }
                h
            };
            let (base, cur) = (draw(700), draw(100));
            fixed_cut += usize::from(kl_test(&cur, &base, &raw, 0.01).0 >= 0.15);
            let (kl, p, _) = kl_test(&cur, &base, &c, 0.01);
            assert!(
                p >= 0.01 || kl < 0.15,
                "a significant KL on no-drift data: {kl} p={p}"
            );
        }
        assert!(
            fixed_cut > 5,
            "expected a fixed KL ≥ 0.15 to misfire, got {fixed_cut}/100"
        );
    }

    #[test]
    fn a_length_shift_is_caught() {
        // 1.2× longer output over the day (KL ≈ 0.18, about the threshold);
        // and a 1.5× shift seen by the CUSUM within 3 hours.
        let caught = (0..10)
            .filter(|&s| eval(s, 40, 24, 1.2).finding.status == Status::Firing)
            .count();
        assert!(caught >= 8, "a 1.2x length shift caught {caught}/10");
        assert!(eval(2, 40, 3, 1.5).direct);
    }

    #[test]
    fn too_few_lengths_is_insufficient_data() {
        assert_eq!(eval(3, 1, 24, 2.0).finding.status, Status::InsufficientData);
    }
}
