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
    /// The baseline ends where the older of the current window and the
    /// sequential span begins: the charts never test hours that are also
    /// their baseline.
    pub fn new(now_ms: i64, cfg: &DetectorConfig) -> Windows {
        let end = ceil_hour(now_ms);
        let cur_from = end - i64::from(cfg.window_hours.max(1)) * HOUR_MS;
        let seq_from = end - i64::from(cfg.sequential.lookback_hours.max(1)) * HOUR_MS;
        let base_to = cur_from.min(seq_from);
        let base_from = base_to - i64::from(cfg.baseline_days.max(1)) * 24 * HOUR_MS;
        Windows {
            now_ms,
            current: (cur_from, end),
            baseline: (base_from, base_to),
            sequential: (seq_from, end),
        }
    }

    /// How far back a baseline may reach to leave out the hours of an
    /// incident: three more baseline lengths.
    pub fn baseline_limit(&self) -> i64 {
        self.baseline.0 - 3 * (self.baseline.1 - self.baseline.0)
    }

    /// Everything any detector reads: the span to load from the store.
    pub fn span(&self) -> (i64, i64) {
        (self.baseline_limit().min(self.sequential.0), self.current.1)
    }
}

/// What every detector of one evaluation shares: the windows, the
/// settings, the sequential alarm threshold of the stream being evaluated,
/// and the spans its alert on this signal was open (left out of the
/// baseline, so a recovery is not measured against the incident).
#[derive(Debug, Clone, Copy)]
pub struct Look<'a> {
    pub w: &'a Windows,
    pub cfg: &'a DetectorConfig,
    /// CUSUM threshold: ln(arl_hours × charts of this stream).
    pub h: f64,
    pub quiet: &'a [(i64, i64)],
}

impl Look<'_> {
    /// The baseline span: `baseline_days` of hours outside the quiet spans
    /// (which the detectors skip), ending where the windows' baseline ends.
    pub fn baseline(&self) -> (i64, i64) {
        let days = (self.w.baseline.1 - self.w.baseline.0) / (24 * HOUR_MS);
        let from = super::sequential::baseline_from(
            self.w.baseline.1,
            days as u32,
            self.quiet,
            self.w.baseline_limit(),
        );
        (from, self.w.baseline.1)
    }

    /// When the alert on this signal that is still open opened, if one is.
    pub fn opened(&self) -> Option<i64> {
        super::evaluate::opened_at(self.quiet, self.cfg)
    }

    /// Where the evidence that an open alert's signal has returned may
    /// start: its opening (what came before cannot show a return), or the
    /// start of the sequential span when no alert is open.
    pub fn return_from(&self) -> i64 {
        let end = self.w.current.1;
        match self.opened() {
            Some(o) if o < end => o.max(self.w.sequential.0),
            _ => self.w.sequential.0,
        }
    }

    /// Whether an open alert on this signal has been open for
    /// `resolve_after_hours`, the span its resolution is measured over (no
    /// alert open: `true`). Before that the span since it opened is shorter
    /// than the resolve span, and resolving on it is the fixed-sample look
    /// the hysteresis exists to avoid.
    pub fn settled(&self) -> bool {
        let span = super::evaluate::resolve_span(self.cfg);
        self.opened().is_none_or(|o| self.w.now_ms - o >= span)
    }

    /// Start of the span whose effect decides resolution (see
    /// [`super::sequential::recent_from`]); never before the sequential span
    /// nor, while an alert on this signal is open, before it opened: an
    /// alert that fired an hour after the change otherwise resolved an hour
    /// later on a span of mostly pre-change hours (a flap, issue 13).
    pub fn recent<V>(
        &self,
        map: &std::collections::BTreeMap<i64, V>,
        min_n: f64,
        n: impl Fn(&V) -> f64,
    ) -> (i64, i64) {
        let end = self.w.current.1;
        let from = super::sequential::recent_from(
            map,
            end,
            self.cfg.resolve_after_hours,
            self.w.sequential.0,
            min_n,
            n,
        );
        (from.max(self.return_from()), end)
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
        assert_eq!(w.sequential, (953 * HOUR_MS, 1_001 * HOUR_MS));
        assert_eq!(w.baseline, (953 * HOUR_MS - 168 * HOUR_MS, 953 * HOUR_MS));
        let aligned = Windows::new(1_000 * HOUR_MS, &cfg);
        assert_eq!(aligned.current.1, 1_000 * HOUR_MS);
    }
}
