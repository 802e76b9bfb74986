//! The time windows a detector compares, computed from `now` (never from
//! the clock): the current window ends at `now`, the baseline is the span
//! just before it. Both are whole hours because the roll-ups are hourly; an
//! hour that has started before `now` belongs to the current window.

use super::DetectorConfig;

pub const HOUR_MS: i64 = 3_600_000;

/// Half-open `[from_ms, to_ms)` spans of hour starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub now_ms: i64,
    pub current: (i64, i64),
    pub baseline: (i64, i64),
    /// Hours the sequential statistics run over (the last ones of `current`).
    pub sequential: (i64, i64),
}

/// The first hour start at or after `ms`.
pub fn ceil_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
        + if ms.rem_euclid(HOUR_MS) == 0 {
            0
        } else {
            HOUR_MS
        }
}

pub fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

impl Windows {
    pub fn new(now_ms: i64, cfg: &DetectorConfig) -> Windows {
        let end = ceil_hour(now_ms);
        let cur_from = end - i64::from(cfg.window_hours.max(1)) * HOUR_MS;
        let base_from = cur_from - i64::from(cfg.baseline_days.max(1)) * 24 * HOUR_MS;
        let seq_from = end - i64::from(cfg.sequential.lookback_hours.max(1)) * HOUR_MS;
        Windows {
            now_ms,
            current: (cur_from, end),
            baseline: (base_from, cur_from),
            sequential: (seq_from.max(base_from), end),
        }
    }

    /// Everything any detector reads: the span to load from the store.
    pub fn span(&self) -> (i64, i64) {
        (self.baseline.0.min(self.sequential.0), self.current.1)
    }
}

pub fn contains(span: (i64, i64), t: i64) -> bool {
    t >= span.0 && t < span.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_at_now_and_abut() {
        let cfg = DetectorConfig::default();
        let now = 1_000 * HOUR_MS + 60_000; // one minute into an hour
        let w = Windows::new(now, &cfg);
        assert_eq!(w.current, (977 * HOUR_MS, 1_001 * HOUR_MS));
        assert_eq!(w.baseline, (977 * HOUR_MS - 168 * HOUR_MS, 977 * HOUR_MS));
        let aligned = Windows::new(1_000 * HOUR_MS, &cfg);
        assert_eq!(aligned.current.1, 1_000 * HOUR_MS);
    }
}
