//! `spend_rate`: a stream's (or one user's) tokens or cost in the last
//! complete hour far above its baseline.
//!
//! Fires when the hour is at least `min_ratio` × the baseline mean (default
//! 3×) *and* statistically clear. Hourly spend is a sum of per-call amounts
//! over a Poisson number of calls, so it is over-dispersed: the test is a
//! quasi-Poisson one, Var = φ·μ with φ = max(1, baseline variance / mean)
//! estimated from the baseline hours themselves (daily cycles and bursty
//! callers widen it, which is the conservative direction), z = (x − μ) /
//! √(φμ), one-sided.
//!
//! Continuous monitoring: only complete hours are tested, so each hour is
//! one look however often the daemon evaluates, and the per-look alpha is
//! small (default 1e-4, Bonferroni-split between tokens and cost). An hour
//! with fewer than `min_calls` calls, or a baseline with fewer than
//! `min_baseline_hours` hours since the stream's first traffic, says
//! "insufficient data". Pure: (hours, now, settings) → verdict.

use serde::Deserialize;

use super::finding::{Rule, Severity, Status};
use super::stats::normal_cdf;
use super::verdict::Verdict;
const HOUR: i64 = 3_600_000;

/// One hour of a stream's (or a user's) spend, as `rollup_spend` holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct SpendHour {
    pub hour_ms: i64,
    pub calls: i64,
    pub tokens: i64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpendRateConfig {
    /// The hour must be at least this many times the baseline mean.
    pub min_ratio: f64,
    /// Days of baseline before the hour tested.
    pub baseline_days: u32,
    /// Baseline hours (since the stream's first traffic) needed to judge.
    pub min_baseline_hours: usize,
    /// Calls in the hour needed to judge (a handful of calls is not a spike).
    pub min_calls: i64,
    /// Per-look significance, split between tokens and cost.
    pub alpha: f64,
    /// Users tested per stream: the top spenders of the hour.
    pub top_users: usize,
}

impl Default for SpendRateConfig {
    fn default() -> Self {
        Self {
            min_ratio: 3.0,
            baseline_days: 7,
            min_baseline_hours: 24,
            min_calls: 20,
            alpha: 1e-4,
            top_users: 5,
        }
    }
}

/// The hour tested at `now_ms`: the last complete one.
pub fn tested_hour(now_ms: i64) -> i64 {
    now_ms.div_euclid(HOUR) * HOUR - HOUR
}

/// One metric's test: (ratio, z, p) or `None` without a usable baseline.
fn test(x: f64, baseline: &[f64]) -> Option<(f64, f64, f64)> {
    let n = baseline.len() as f64;
    let mean = baseline.iter().sum::<f64>() / n;
    if mean.is_nan() || mean <= 0.0 {
        return None;
    }
    let var = baseline.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let phi = (var / mean).max(1.0);
    let z = (x - mean) / (phi * mean).sqrt();
    Some((x / mean, z, 1.0 - normal_cdf(z)))
}

/// `spend_rate` for one subject (`dimension`: none for the stream, or
/// `user:<id>`) from its hourly spend, oldest first.
pub fn spend_rate(
    stream: &str,
    dimension: Option<&str>,
    hours: &[SpendHour],
    now_ms: i64,
    cfg: &SpendRateConfig,
) -> Verdict {
    let hour = tested_hour(now_ms);
    let from = hour - i64::from(cfg.baseline_days) * 24 * HOUR;
    let current = hours
        .iter()
        .find(|h| h.hour_ms == hour)
        .copied()
        .unwrap_or_default();
    // Baseline hours from the first with traffic (hours without a row are 0).
    let first = hours
        .iter()
        .filter(|h| h.hour_ms >= from && h.hour_ms < hour)
        .map(|h| h.hour_ms)
        .min();
    let insufficient = |why: String, n: usize| {
        Verdict::insufficient(
            super::verdict::Subject {
                rule: Rule::SpendRate,
                stream,
                dimension,
                at_ms: now_ms,
                samples: u64::try_from(current.calls).unwrap_or(0),
                baseline_samples: n as u64,
            },
            cfg.min_ratio,
            why,
        )
    };
    let Some(first) = first else {
        return insufficient("no baseline spend".into(), 0);
    };
    let slots = usize::try_from((hour - first) / HOUR).unwrap_or(0);
    if slots < cfg.min_baseline_hours {
        return insufficient(
            format!("{slots} baseline hours (need {})", cfg.min_baseline_hours),
            slots,
        );
    }
    if current.calls < cfg.min_calls {
        return insufficient(
            format!(
                "{} calls in the hour (need {})",
                current.calls, cfg.min_calls
            ),
            slots,
        );
    }
    let mut tokens = vec![0.0; slots];
    let mut cost = vec![0.0; slots];
    for h in hours
        .iter()
        .filter(|h| h.hour_ms >= first && h.hour_ms < hour)
    {
        let i = usize::try_from((h.hour_ms - first) / HOUR)
            .unwrap_or(0)
            .min(slots - 1);
        tokens[i] += h.tokens as f64;
        cost[i] += h.cost_usd;
    }
    let alpha = cfg.alpha / 2.0;
    let metrics = [
        (
            "tokens",
            current.tokens as f64,
            test(current.tokens as f64, &tokens),
        ),
        ("cost", current.cost_usd, test(current.cost_usd, &cost)),
    ];
    // The metric that fires, else the one with the largest ratio.
    let pick = metrics
        .iter()
        .filter_map(|(name, x, t)| t.map(|t| (*name, *x, t)))
        .max_by(|a, b| {
            let fires = |m: &(&str, f64, (f64, f64, f64))| m.2.0 >= cfg.min_ratio && m.2.2 < alpha;
            fires(a).cmp(&fires(b)).then(
                a.2.0
                    .partial_cmp(&b.2.0)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        });
    let Some((name, x, (ratio, z, p))) = pick else {
        return insufficient("no baseline spend".into(), slots);
    };
    let firing = ratio >= cfg.min_ratio && p < alpha;
    let base = x / ratio;
    let fmt = |v: f64| {
        if name == "cost" {
            format!("${v:.2}")
        } else {
            format!("{v:.0} tokens")
        }
    };
    let who = dimension.map(|d| format!("{d} ")).unwrap_or_default();
    Verdict {
        finding: super::Finding {
            rule: Rule::SpendRate,
            stream: stream.to_string(),
            dimension: dimension.map(str::to_string),
            status: if firing { Status::Firing } else { Status::Ok },
            severity: if firing {
                Severity::Critical
            } else {
                Severity::Info
            },
            at_ms: now_ms,
            value: x,
            baseline: base,
            threshold: cfg.min_ratio,
            p_value: Some(p),
            samples: u64::try_from(current.calls).unwrap_or(0),
            baseline_samples: slots as u64,
            summary: format!(
                "{who}{name} per hour {} vs baseline {} ({ratio:.1}×, z={z:.1}, p={p:.2e}, {} calls)",
                fmt(x),
                fmt(base),
                current.calls
            ),
            resolve: !firing,
        },
        window_effect: ratio >= cfg.min_ratio,
        direct: firing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    /// A week of hourly traffic with a daily cycle and noise (seeded).
    fn week(calls_per_hour: f64) -> Vec<SpendHour> {
        let hour = tested_hour(NOW);
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        (1..=168)
            .rev()
            .map(|k| {
                let t = hour - k * HOUR;
                let daily = 1.0 + 0.5 * ((t / HOUR) as f64 * std::f64::consts::TAU / 24.0).sin();
                let calls = (calls_per_hour * daily * (0.8 + 0.4 * rnd())).round() as i64;
                let tokens = calls * (400 + (rnd() * 200.0) as i64);
                SpendHour {
                    hour_ms: t,
                    calls,
                    tokens,
                    cost_usd: tokens as f64 * 5e-6,
                }
            })
            .collect()
    }

    fn with_current(mut h: Vec<SpendHour>, calls: i64, tokens: i64) -> Vec<SpendHour> {
        h.push(SpendHour {
            hour_ms: tested_hour(NOW),
            calls,
            tokens,
            cost_usd: tokens as f64 * 5e-6,
        });
        h
    }

    #[test]
    fn a_fivefold_hour_fires_and_a_busy_peak_does_not() {
        let cfg = SpendRateConfig::default();
        let base = week(100.0);
        let v = spend_rate(
            "s",
            None,
            &with_current(base.clone(), 500, 500 * 500 * 5),
            NOW,
            &cfg,
        );
        assert_eq!(v.finding.status, Status::Firing, "{}", v.finding.summary);
        assert!(
            v.finding.summary.contains("per hour"),
            "{}",
            v.finding.summary
        );
        // The daily peak (1.5× the mean) with noise is not a spike.
        let v = spend_rate(
            "s",
            None,
            &with_current(base.clone(), 160, 160 * 550),
            NOW,
            &cfg,
        );
        assert_eq!(v.finding.status, Status::Ok, "{}", v.finding.summary);
        // 2.5× is below the ratio even if clearly significant.
        let v = spend_rate("s", None, &with_current(base, 250, 250 * 500), NOW, &cfg);
        assert_eq!(v.finding.status, Status::Ok, "{}", v.finding.summary);
    }

    #[test]
    fn every_hour_of_a_quiet_month_stays_quiet() {
        // Continuous monitoring: test each hour of four weeks of ordinary
        // traffic against its own preceding week; none may fire.
        let cfg = SpendRateConfig::default();
        let mut all = week(40.0);
        let more: Vec<SpendHour> = (0..3).flat_map(|_| week(40.0)).collect();
        // Lay the extra weeks after the first, hour by hour.
        let start = all.last().unwrap().hour_ms + HOUR;
        for (i, mut h) in more.into_iter().enumerate() {
            h.hour_ms = start + i as i64 * HOUR;
            all.push(h);
        }
        let mut fired = 0;
        for h in all.iter().skip(168) {
            let now = h.hour_ms + HOUR + 1;
            let upto: Vec<SpendHour> = all
                .iter()
                .filter(|x| x.hour_ms <= h.hour_ms)
                .copied()
                .collect();
            if spend_rate("s", None, &upto, now, &cfg).finding.status == Status::Firing {
                fired += 1;
            }
        }
        assert_eq!(fired, 0);
    }

    #[test]
    fn small_or_new_streams_are_insufficient() {
        let cfg = SpendRateConfig::default();
        let base = week(0.5);
        let v = spend_rate("s", None, &with_current(base, 6, 6 * 500), NOW, &cfg);
        assert_eq!(
            v.finding.status,
            Status::InsufficientData,
            "{}",
            v.finding.summary
        );
        let young: Vec<SpendHour> = week(100.0).into_iter().rev().take(10).collect();
        let v = spend_rate("s", None, &with_current(young, 900, 900 * 500), NOW, &cfg);
        assert_eq!(v.finding.status, Status::InsufficientData);
    }
}
