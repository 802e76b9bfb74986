//! `refusal_rate_shift` and `truncation_rate`: a share of records that
//! changes. The window test is the two-proportion z test (Fisher's exact
//! test when an expected count is below 5) plus a minimum absolute change;
//! beside it a Bernoulli CUSUM (Page's restarted SPRT) per direction, tuned
//! to a change of exactly that minimum.

use super::baseline;
use super::finding::{Rule, Severity};
use super::rollup::{HourCounts, StreamRollups};
use super::sequential::{baseline_precise, bernoulli_llr, binomial_dispersion, cusum};
use super::stats::two_proportions;
use super::verdict::{Verdict, verdict};
use super::window::Windows;
use super::{DetectorConfig, RateConfig};

/// Which counter of the hourly roll-up a rate rule reads.
fn events(rule: Rule, h: &HourCounts) -> u64 {
    match rule {
        Rule::TruncationRate => h.truncations,
        _ => h.refusals,
    }
}

/// Evaluates `rule` (refusal or truncation) for one stream.
pub fn rate_shift(
    rule: Rule,
    stream: &str,
    data: &StreamRollups,
    w: &Windows,
    cfg: &DetectorConfig,
) -> Verdict {
    let c: &RateConfig = match rule {
        Rule::TruncationRate => &cfg.truncation_rate,
        _ => &cfg.refusal_rate_shift,
    };
    let rate = |span: (i64, i64)| {
        let h = data.counts(span);
        (h.n, events(rule, &h))
    };
    let days = baseline::days(w);
    let kept = baseline::keep_typical(
        &days,
        |d| {
            let (n, k) = rate(d);
            (n > 0).then(|| k as f64 / n as f64)
        },
        c.min_abs_change,
    );
    let (mut n0, mut k0) = (0u64, 0u64);
    for &d in &kept {
        let (n, k) = rate(d);
        n0 += n;
        k0 += k;
    }
    let (n1, k1) = rate(w.current);
    let what = if rule == Rule::TruncationRate {
        "truncated"
    } else {
        "refused"
    };
    if n1 < c.min_samples || n0 < c.min_samples {
        return Verdict::insufficient(
            rule,
            stream,
            None,
            w.now_ms,
            c.min_abs_change,
            n1,
            n0,
            format!(
                "{n1} records in the window, {n0} in the baseline; need {} each",
                c.min_samples
            ),
        );
    }
    let (p0, p1) = (k0 as f64 / n0 as f64, k1 as f64 / n1 as f64);
    let delta = p1 - p0;
    let p = two_proportions(k1, n1, k0, n0);
    // As for scores: the change must reach the threshold within one standard error.
    let se = (p1 * (1.0 - p1) / n1 as f64 + p0 * (1.0 - p0) / n0 as f64).sqrt();
    let window_effect = if c.both_directions {
        delta.abs() + se >= c.min_abs_change
    } else {
        delta + se >= c.min_abs_change
    };

    // Sequential: charts up, and one down (when the lower rate is positive).
    let mut direct = false;
    let mut note = String::new();
    // The baseline's standard error at the larger of the two rates: a
    // baseline that saw few events by chance must not look precise.
    let p_hi = p0.max(p1);
    let base_se = (p_hi * (1.0 - p_hi) / n0 as f64).sqrt();
    if cfg.sequential.enabled && baseline_precise(base_se, c.min_abs_change) {
        let base_rate = (k0 as f64 + 0.5) / (n0 as f64 + 1.0);
        let hours: Vec<(u64, u64)> = kept
            .iter()
            .flat_map(|&(a, b)| data.hours.range(a..b).map(|(_, h)| (h.n, events(rule, h))))
            .collect();
        let phi = binomial_dispersion(hours, base_rate);
        // Up: one chart tuned to the minimum change, one to a spike three
        // times as large (a CUSUM is fastest for the shift it is tuned to).
        let mut targets = vec![
            base_rate + c.min_abs_change,
            base_rate + 3.0 * c.min_abs_change,
        ];
        if c.both_directions && base_rate - c.min_abs_change > 0.0 {
            targets.push(base_rate - c.min_abs_change);
        }
        for target in targets.into_iter().filter(|t| *t < 1.0) {
            let chart = cusum(
                data.hours
                    .range(w.sequential.0..w.sequential.1)
                    .map(|(&t, h)| {
                        (
                            t,
                            bernoulli_llr(h.n, events(rule, h), base_rate, target) / phi,
                        )
                    }),
            );
            if chart.alarm(cfg.sequential.threshold())
                && let Some(since) = chart.since_ms
            {
                let (ns, ks) = rate((since, w.sequential.1));
                let seg = ks as f64 / ns.max(1) as f64;
                let se = (base_rate * (1.0 - base_rate) / ns.max(1) as f64).sqrt();
                if ns >= c.min_samples.min(50)
                    && (seg - base_rate).signum() == (target - base_rate).signum()
                    && (seg - base_rate).abs() + 2.0 * se >= c.min_abs_change
                {
                    direct = true;
                    note = format!(
                        "; CUSUM {:.1} since {}: {:.1} % (n={ns})",
                        chart.stat,
                        super::fmt_time(since),
                        100.0 * seg
                    );
                }
            }
        }
    }
    let severity = if delta.abs() >= 4.0 * c.min_abs_change {
        Severity::Critical
    } else {
        Severity::Warning
    };
    verdict(
        rule,
        stream,
        None,
        w.now_ms,
        (p1, p0, c.min_abs_change),
        Some(p),
        (n1, n0),
        severity,
        window_effect,
        direct,
        cfg.alpha,
        format!(
            "{what} {:.1} % → {:.1} % (p={p:.2e}, n={n1}){note}",
            100.0 * p0,
            100.0 * p1
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Status;
    use crate::signals::synth::{Gen, count_hours};
    use crate::signals::window::HOUR_MS;

    const NOW: i64 = 2_000 * HOUR_MS;

    fn data(seed: u64, per_hour: u32, step_from: i64, refusal: f64, trunc: f64) -> StreamRollups {
        let mut g = Gen::new(seed);
        let (hours, length) = count_hours(
            &mut g,
            NOW - 200 * HOUR_MS,
            NOW,
            per_hour,
            |h| {
                if h >= step_from {
                    (refusal, trunc)
                } else {
                    (0.03, 0.01)
                }
            },
            |_| 100.0,
            30.0,
        );
        StreamRollups {
            hours,
            length,
            ..Default::default()
        }
    }

    fn eval(rule: Rule, d: &StreamRollups) -> Verdict {
        let cfg = DetectorConfig::default();
        rate_shift(rule, "s", d, &Windows::new(NOW, &cfg), &cfg)
    }

    #[test]
    fn stationary_noise_gives_no_verdict() {
        for seed in 0..20 {
            let d = data(seed, 60, NOW, 0.0, 0.0);
            for rule in [Rule::RefusalRateShift, Rule::TruncationRate] {
                let v = eval(rule, &d);
                assert_eq!(v.finding.status, Status::Ok, "{:?}", v.finding);
            }
        }
    }

    #[test]
    fn a_step_of_the_threshold_size_is_caught_both_ways() {
        // +2 points (the threshold) over a day at 60 records an hour.
        let up = (0..20)
            .filter(|&s| {
                eval(
                    Rule::RefusalRateShift,
                    &data(s, 60, NOW - 24 * HOUR_MS, 0.05, 0.01),
                )
                .finding
                .status
                    == Status::Firing
            })
            .count();
        assert!(up >= 15, "refusal rise caught {up}/20");
        let down = eval(
            Rule::RefusalRateShift,
            &data(1, 60, NOW - 24 * HOUR_MS, 0.0, 0.01),
        );
        assert_eq!(down.finding.status, Status::Firing, "{:?}", down.finding);
        let trunc = eval(
            Rule::TruncationRate,
            &data(2, 60, NOW - 24 * HOUR_MS, 0.03, 0.05),
        );
        assert_eq!(trunc.finding.status, Status::Firing, "{:?}", trunc.finding);
        // Truncation only fires on a rise.
        let fewer = eval(
            Rule::TruncationRate,
            &data(3, 60, NOW - 24 * HOUR_MS, 0.03, 0.0),
        );
        assert_eq!(fewer.finding.status, Status::Ok, "{:?}", fewer.finding);
    }

    #[test]
    fn a_spike_is_caught_within_hours() {
        let v = eval(
            Rule::RefusalRateShift,
            &data(4, 60, NOW - 3 * HOUR_MS, 0.15, 0.01),
        );
        assert!(v.direct, "{:?}", v.finding);
    }

    #[test]
    fn too_few_records_is_insufficient_data() {
        let v = eval(
            Rule::RefusalRateShift,
            &data(5, 2, NOW - 24 * HOUR_MS, 0.5, 0.01),
        );
        assert_eq!(v.finding.status, Status::InsufficientData);
    }
}
