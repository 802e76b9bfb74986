//! Sequential detection beside the window tests. A 24-hour window mean needs
//! most of the window to be post-change before a step shows; a CUSUM of
//! per-hour log-likelihood ratios (Page's test; for rates it is the
//! Bernoulli SPRT restarted at zero) accumulates evidence hour by hour and
//! reacts within a few hours to a step of the configured size.
//!
//! Each chart is recomputed from zero over the last `lookback_hours` at every
//! evaluation, so it needs no stored state and a backtest step equals a
//! daemon tick. Increments are per hour and weighted by that hour's count,
//! so diurnal traffic (busy days, quiet nights) is handled exactly. The
//! in-control run length of a log-likelihood CUSUM with threshold h is at
//! least e^h hours. Hour-to-hour variation beyond sampling noise
//! (overdispersion, measured on the baseline) scales the increments down so
//! it cannot masquerade as evidence.

use super::stats::Moments;

/// State of one chart at the end of its lookback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cusum {
    /// The statistic at the last hour.
    pub stat: f64,
    /// First hour of the current excursion above zero (the change-point estimate).
    pub since_ms: Option<i64>,
}

impl Cusum {
    pub fn alarm(&self, h: f64) -> bool {
        self.stat > h
    }
}

/// Runs S_t = max(0, S_{t−1} + llr_t) over `(hour_ms, llr)` in time order.
pub fn cusum(increments: impl IntoIterator<Item = (i64, f64)>) -> Cusum {
    let mut s: f64 = 0.0;
    let mut since = None;
    for (hour, llr) in increments {
        if s == 0.0 && llr > 0.0 {
            since = Some(hour);
        }
        s = (s + llr).max(0.0);
        if s == 0.0 {
            since = None;
        }
    }
    Cusum {
        stat: s,
        since_ms: since,
    }
}

/// Log-likelihood ratio of an hour's mean `m` (n samples, variance `var`)
/// for mean μ0 + d against μ0.
pub fn normal_llr(m: Moments, mu0: f64, d: f64, var: f64) -> f64 {
    if m.n == 0.0 || var <= 0.0 {
        return 0.0;
    }
    m.n * d * (m.mean() - mu0 - d / 2.0) / var
}

/// Log-likelihood ratio of `k` events in `n` trials for rate p1 against p0.
pub fn bernoulli_llr(n: u64, k: u64, p0: f64, p1: f64) -> f64 {
    let (n, k) = (n as f64, k as f64);
    k * (p1 / p0).ln() + (n - k) * ((1.0 - p1) / (1.0 - p0)).ln()
}

/// A CUSUM compares with a baseline estimated from data; when that estimate
/// is as uncertain as the shift it looks for, the chart alarms on the
/// estimate's error (seen on a day-old baseline). Charts run only when the
/// baseline's standard error is at most a quarter of the shift.
pub fn baseline_precise(standard_error: f64, shift: f64) -> bool {
    standard_error.is_finite() && standard_error <= shift.abs() / 4.0
}

/// Hour-to-hour variance of hourly means relative to what `var`/n predicts
/// (at least 1). Needs a day of hours; otherwise assumes none.
pub fn normal_dispersion<'a>(
    hours: impl IntoIterator<Item = &'a Moments>,
    mu0: f64,
    var: f64,
) -> f64 {
    let (mut s, mut h) = (0.0, 0.0);
    for m in hours {
        if m.n >= 1.0 && var > 0.0 {
            let z = m.mean() - mu0;
            s += m.n * z * z / var;
            h += 1.0;
        }
    }
    if h < 24.0 {
        1.0
    } else {
        (s / (h - 1.0)).max(1.0)
    }
}

/// Pearson dispersion of hourly counts `(n, k)` around rate `p0` (at least 1).
pub fn binomial_dispersion(hours: impl IntoIterator<Item = (u64, u64)>, p0: f64) -> f64 {
    let (mut s, mut h) = (0.0, 0.0);
    for (n, k) in hours {
        if n > 0 {
            let e = n as f64 * p0;
            s += (k as f64 - e).powi(2) / (e * (1.0 - p0)).max(1e-12);
            h += 1.0;
        }
    }
    if h < 24.0 {
        1.0
    } else {
        (s / (h - 1.0)).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(n: f64, mean: f64) -> Moments {
        Moments {
            n,
            sum: n * mean,
            sumsq: n * mean * mean + n,
        }
    }

    #[test]
    fn cusum_stays_at_zero_in_control_and_climbs_after_a_step() {
        let flat = cusum((0..48).map(|h| (h, normal_llr(hour(30.0, 4.0), 4.0, -0.3, 1.0))));
        assert_eq!(flat.stat, 0.0);
        let step = cusum((0..48).map(|h| {
            let mean = if h < 40 { 4.0 } else { 3.6 };
            (h, normal_llr(hour(30.0, mean), 4.0, -0.3, 1.0))
        }));
        assert!(step.alarm(10.0), "{step:?}");
        assert_eq!(step.since_ms, Some(40));
    }

    #[test]
    fn bernoulli_llr_rewards_excess_events_only() {
        assert!(bernoulli_llr(100, 10, 0.05, 0.07) > 0.0);
        assert!(bernoulli_llr(100, 5, 0.05, 0.07) < 0.0);
    }

    #[test]
    fn dispersion_is_one_for_pure_sampling_noise() {
        let hours: Vec<Moments> = (0..48).map(|_| hour(25.0, 4.0)).collect();
        assert_eq!(normal_dispersion(&hours, 4.0, 1.0), 1.0);
        let wobbly: Vec<Moments> = (0..48)
            .map(|h| hour(25.0, if h % 2 == 0 { 3.5 } else { 4.5 }))
            .collect();
        assert!(normal_dispersion(&wobbly, 4.0, 1.0) > 5.0);
    }
}
