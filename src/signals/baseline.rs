//! A robust baseline. The baseline rolls: after a regression is reverted,
//! its days sit in the baseline for a week and make normal traffic look
//! like a change the other way (a refusal spike reverted reads as a refusal
//! *drop*). Each detector therefore splits the baseline into days and drops
//! the days that differ from the median day by at least its own effect
//! threshold; the rest is the baseline. Stateless, so a backtest step and a
//! daemon tick stay the same computation.

use super::window::{HOUR_MS, Windows};

/// The baseline as whole days, oldest first (a partial leading day is kept).
pub fn days(w: &Windows) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut end = w.baseline.1;
    while end > w.baseline.0 {
        let start = (end - 24 * HOUR_MS).max(w.baseline.0);
        out.push((start, end));
        end = start;
    }
    out.reverse();
    out
}

/// Keeps the days whose statistic is within `tolerance` of the median day's
/// (days without a statistic are kept; they add nothing anyway).
pub fn keep_typical(
    days: &[(i64, i64)],
    stat: impl Fn((i64, i64)) -> Option<f64>,
    tolerance: f64,
) -> Vec<(i64, i64)> {
    let values: Vec<Option<f64>> = days.iter().map(|&d| stat(d)).collect();
    let mut known: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if known.len() < 3 {
        return days.to_vec();
    }
    known.sort_by(f64::total_cmp);
    let median = known[known.len() / 2];
    days.iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none_or(|v| !v.is_finite() || (v - median).abs() < tolerance))
        .map(|(d, _)| *d)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::DetectorConfig;

    #[test]
    fn an_odd_day_is_dropped() {
        let w = Windows::new(1_000 * HOUR_MS, &DetectorConfig::default());
        let d = days(&w);
        assert_eq!(d.len(), 7);
        assert_eq!(d[6].1, w.baseline.1);
        let odd = d[3];
        let kept = keep_typical(&d, |s| Some(if s == odd { 0.2 } else { 0.03 }), 0.02);
        assert_eq!(kept.len(), 6);
        assert!(!kept.contains(&odd));
    }
}
