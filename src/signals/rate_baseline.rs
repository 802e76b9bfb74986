//! The baseline a rate hour is compared with: counts per UTC day class
//! (weekdays, weekends) and pooled, the classes used apart only where a
//! weekly rhythm in the rate is established.

use super::sequential::{day_class, wilson};
use super::stats::two_proportions;

/// Level at which a weekly rhythm in a rate must be established before
/// weekend hours are compared with weekend baseline hours only.
pub const CLASS_ALPHA: f64 = 0.01;

/// Baseline counts (n, k) per day class and pooled.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateBaseline {
    pub class: [(u64, u64); 2],
    pub pooled: (u64, u64),
    pub hours: usize,
    /// [`RateBaseline::by_class`], once the baseline is complete.
    pub split: Option<bool>,
}

impl RateBaseline {
    /// From the baseline hours (t, n, k), weekend hours apart when
    /// `weekly`; whether the classes are used apart is decided here, once
    /// (`of` is asked for every hour), for a threshold of `threshold`.
    pub fn new(hours: impl Iterator<Item = (i64, u64, u64)>, weekly: bool, threshold: f64) -> Self {
        let mut base = RateBaseline::default();
        for (t, n, k) in hours {
            let cl = &mut base.class[if weekly { day_class(t) } else { 0 }];
            cl.0 += n;
            cl.1 += k;
            base.pooled.0 += n;
            base.pooled.1 += k;
            base.hours += 1;
        }
        base.split = Some(base.by_class(threshold));
        base
    }
    /// (n, k) hour `t` is compared with: its class when the classes are
    /// used apart ([`RateBaseline::by_class`]), else pooled.
    pub fn of(&self, t: i64, threshold: f64) -> (u64, u64) {
        if self.split.unwrap_or_else(|| self.by_class(threshold)) {
            self.class[day_class(t)]
        } else {
            self.pooled
        }
    }
    /// Whether the day classes are used apart: each precise enough on its
    /// own, and their rates differ (two-proportion test at
    /// [`CLASS_ALPHA`]). Weekend hours are 2/7 of a week: compared with
    /// the weekend baseline alone, a weekend hour meets a baseline with
    /// 3.5 times the variance of the pooled one (both sub-threshold
    /// refusal fires in 40 corpus seeds were on a weekend, against a
    /// weekend-only baseline). Where no weekly rhythm in the rate
    /// is established, the pooled rate is the better estimate for both
    /// classes; a rhythm of half the threshold (1 % against 2 %) is
    /// established at 40 records an hour over a week (about 3.2 standard
    /// errors; the test needs 2.6).
    pub fn by_class(&self, threshold: f64) -> bool {
        let precise = |(n, k): (u64, u64)| {
            let (lo, hi) = wilson(k, n, 2.0);
            n > 0 && (hi - lo) / 2.0 <= threshold
        };
        let [(n0, k0), (n1, k1)] = self.class;
        n1 > 0
            && precise(self.class[0])
            && precise(self.class[1])
            && two_proportions(k0, n0, k1, n1) < CLASS_ALPHA
    }
    pub fn rate(&self, t: i64, threshold: f64) -> f64 {
        let (n, k) = self.of(t, threshold);
        k as f64 / n.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekend_hours_meet_their_own_baseline_only_under_an_established_rhythm() {
        // A week at 40 records an hour: 6,720 records, 1,920 on the weekend.
        let week = |weekday: u64, weekend: u64| RateBaseline {
            class: [(4_800, weekday), (1_920, weekend)],
            pooled: (6_720, weekday + weekend),
            hours: 168,
            split: None,
        };
        // 1 % on both, the weekend reading 0.7 % (13 refusals, as on a
        // corpus seed): no rhythm established, the pooled rate serves both.
        let flat = week(48, 13);
        assert!(!flat.by_class(0.02));
        let saturday = 1_774_051_200_000; // 2026-03-21T00:00Z
        assert!((flat.rate(saturday, 0.02) - 61.0 / 6_720.0).abs() < 1e-12);
        // Weekends at 2 % against weekdays at 1 %: a rhythm, compared like
        // with like.
        let weekly = week(48, 38);
        assert!(weekly.by_class(0.02));
        assert!((weekly.rate(saturday, 0.02) - 38.0 / 1_920.0).abs() < 1e-12);
    }
}
