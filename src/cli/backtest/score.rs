//! The one scorer of replayed alert events against planted changes, used by
//! `canaryd backtest --expect FILE` and by the scenario corpus alike:
//! per change, detected / late / missed, the delay, flaps (the expected
//! rule firing again while its change is in effect) and whether a revert
//! resolved within 24 h; per stream, false alarms (firing episodes no
//! planted change explains).
//!
//! A change *explains* every firing on its stream from its start to 24 h
//! after its revert (for ever, without one): another rule firing then is a
//! co-symptom (a refusal spike shortens answers), not a false alarm — unless
//! the change expects nothing (a sub-threshold shift that must not fire).

use std::fmt::Write;

use serde::Serialize;

use super::replay::Event;
use crate::signals::window::HOUR_MS;
use crate::signals::{Rule, fmt_time};

/// How long after a revert firings are still the change's and the expected
/// alert must have resolved.
pub const REVERT_GRACE_MS: i64 = 24 * HOUR_MS;

/// One planted change (or a stream that must stay quiet) and what must happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub stream: String,
    /// The rule that must fire, or `None`: nothing may fire on this stream
    /// for this change (a stationary stream, a sub-threshold shift).
    pub rule: Option<Rule>,
    /// Only this dimension of the rule (a judge name); any when `None`.
    pub dimension: Option<String>,
    /// When the change began (`None`: a stream that must stay quiet throughout).
    pub from_ms: Option<i64>,
    /// When it was reverted, if it was.
    pub to_ms: Option<i64>,
    /// Target delay from the change to the first firing, in hours.
    pub within_hours: Option<f64>,
}

impl Expectation {
    /// The stream must raise nothing.
    pub fn quiet(stream: &str) -> Expectation {
        Expectation {
            stream: stream.into(),
            rule: None,
            dimension: None,
            from_ms: None,
            to_ms: None,
            within_hours: None,
        }
    }

    /// `at` is within the span this change explains.
    fn explains(&self, at: i64) -> bool {
        self.from_ms
            .is_some_and(|from| at >= from && self.to_ms.is_none_or(|r| at <= r + REVERT_GRACE_MS))
    }

    fn matches(&self, e: &Event) -> bool {
        self.rule == Some(e.rule)
            && self
                .dimension
                .as_deref()
                .is_none_or(|d| e.dimension.as_deref() == Some(d))
    }
}

/// How one expectation scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub stream: String,
    pub expected: Option<Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// RFC 3339 start of the change, if one was planted.
    pub change_at: Option<String>,
    pub revert_at: Option<String>,
    /// `detected` (within the target), `late`, `missed`, or `-` when
    /// nothing was expected to fire.
    pub result: &'static str,
    /// Hours from the change to the first firing of the expected rule.
    pub delay_hours: Option<f64>,
    pub target_hours: Option<f64>,
    /// Firing episodes nothing planted explains.
    pub false_alarms: Vec<String>,
    /// Reopenings and repeated firings of the expected rule while its
    /// change is in effect.
    pub flaps: usize,
    /// After a revert: the expected rule's alert is resolved 24 h after the
    /// revert (its last event by then is a resolve).
    pub revert_resolved: Option<bool>,
}

impl Score {
    /// Detected within its target delay.
    pub fn detected(&self) -> bool {
        self.within(1.0)
    }

    /// Detected within `factor` times its target delay.
    pub fn within(&self, factor: f64) -> bool {
        match (self.delay_hours, self.target_hours) {
            (Some(d), Some(limit)) => d <= factor * limit,
            _ => false,
        }
    }

    /// Everything asked of this row holds: detected in time (if a rule was
    /// expected), no false alarm, no flap, the revert resolved.
    pub fn passed(&self) -> bool {
        (self.expected.is_none() || self.detected())
            && self.false_alarms.is_empty()
            && self.flaps == 0
            && self.revert_resolved != Some(false)
    }
}

/// Scores `events` (a replay's, in time order) against `expected`. Every
/// expectation gets a row; a stream with events but no expectation gets a
/// quiet row of its own, so nothing that fired goes unscored.
pub fn score(expected: &[Expectation], events: &[Event]) -> Vec<Score> {
    let mut rows: Vec<Expectation> = expected.to_vec();
    for e in events {
        if !rows.iter().any(|x| x.stream == e.stream) {
            rows.push(Expectation::quiet(&e.stream));
        }
    }
    let mut out: Vec<Score> = rows
        .iter()
        .map(|x| Score {
            stream: x.stream.clone(),
            expected: x.rule,
            dimension: x.dimension.clone(),
            change_at: x.from_ms.map(fmt_time),
            revert_at: x.to_ms.map(fmt_time),
            result: "-",
            delay_hours: None,
            target_hours: x.within_hours,
            false_alarms: Vec::new(),
            flaps: 0,
            revert_resolved: None,
        })
        .collect();
    for e in events {
        let idx: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].stream == e.stream)
            .collect();
        let on_stream = || idx.iter().copied();
        // The change this event belongs to: one that expects its rule and
        // explains its time; else any change that explains its time.
        let own = on_stream().find(|&i| rows[i].matches(e) && rows[i].explains(e.at_ms));
        if let Some(i) = own {
            if !matches!(e.event, "firing" | "reopened") {
                continue;
            }
            let from = rows[i].from_ms.unwrap_or(e.at_ms);
            if out[i].delay_hours.is_none() && e.event == "firing" {
                out[i].delay_hours = Some((e.at_ms - from) as f64 / HOUR_MS as f64);
            } else {
                out[i].flaps += 1;
            }
            continue;
        }
        if !matches!(e.event, "firing" | "reopened") {
            continue;
        }
        let explained = on_stream().any(|i| rows[i].rule.is_some() && rows[i].explains(e.at_ms));
        if explained {
            continue; // a co-symptom of a planted change
        }
        // Attribute the false alarm to the change of the same rule, if any
        // (a firing after the revert), else to the stream's first row.
        let (i, why) = match on_stream().find(|&i| rows[i].matches(e)) {
            Some(i) if rows[i].from_ms.is_some_and(|f| e.at_ms >= f) => (i, " (after the revert)"),
            Some(i) => (i, " (before the change)"),
            None => (on_stream().next().unwrap_or(0), ""),
        };
        out[i].false_alarms.push(format!(
            "{} {} at {}{why}: {}",
            e.rule.as_str(),
            e.event,
            e.at,
            e.summary
        ));
    }
    for (x, s) in rows.iter().zip(out.iter_mut()) {
        if x.rule.is_some() {
            s.result = if s.detected() {
                "detected"
            } else if s.delay_hours.is_some() {
                "late"
            } else {
                "missed"
            };
        }
        if let (Some(_), Some(r)) = (x.rule, x.to_ms) {
            // The alert's state 24 h after the revert (a later firing is
            // a false alarm of its own, counted above).
            let last = events.iter().rfind(|e| {
                x.matches(e)
                    && x.from_ms.is_some_and(|f| e.at_ms >= f)
                    && e.at_ms <= r + REVERT_GRACE_MS
            });
            s.revert_resolved = Some(last.is_some_and(|e| e.event == "resolved"));
        }
    }
    out
}

/// The totals line of a scorecard.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub planted: usize,
    pub detected: usize,
    pub late: usize,
    pub missed: usize,
    pub false_alarms: usize,
    pub flaps: usize,
    pub reverts_unresolved: usize,
}

pub fn totals(scores: &[Score]) -> Totals {
    let count = |r: &str| scores.iter().filter(|x| x.result == r).count();
    Totals {
        planted: scores.iter().filter(|x| x.expected.is_some()).count(),
        detected: count("detected"),
        late: count("late"),
        missed: count("missed"),
        false_alarms: scores.iter().map(|x| x.false_alarms.len()).sum(),
        flaps: scores.iter().map(|x| x.flaps).sum(),
        reverts_unresolved: scores
            .iter()
            .filter(|x| x.revert_resolved == Some(false))
            .count(),
    }
}

/// The scorecard as a table, one row per expectation, false alarms under
/// their row, and the totals.
pub fn render(scores: &[Score]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<28} {:<20} {:>9} {:>8} {:>8} {:>6} {:>6} {:>7}",
        "stream", "expected", "result", "delay h", "target h", "flaps", "false", "revert"
    );
    for x in scores {
        let expected = match (x.expected, &x.dimension) {
            (None, _) => "(nothing)".to_string(),
            (Some(r), None) => r.as_str().to_string(),
            (Some(r), Some(d)) => format!("{}[{d}]", r.as_str()),
        };
        let _ = writeln!(
            s,
            "{:<28} {:<20} {:>9} {:>8} {:>8} {:>6} {:>6} {:>7}",
            x.stream,
            expected,
            x.result,
            x.delay_hours.map_or("-".into(), |d| format!("{d:.0}")),
            x.target_hours.map_or("-".into(), |d| format!("{d:.0}")),
            x.flaps,
            x.false_alarms.len(),
            match x.revert_resolved {
                None => "-",
                Some(true) => "ok",
                Some(false) => "NO",
            }
        );
        for f in &x.false_alarms {
            let _ = writeln!(s, "    false alarm: {f}");
        }
    }
    let t = totals(scores);
    let _ = writeln!(
        s,
        "detected in time {}/{}, late {}, missed {}, false alarms {}, flaps {}, reverts unresolved {}",
        t.detected, t.planted, t.late, t.missed, t.false_alarms, t.flaps, t.reverts_unresolved
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Severity;

    const T0: i64 = 1_772_409_600_000;

    fn ev(event: &'static str, rule: Rule, stream: &str, hours: i64) -> Event {
        let at = T0 + hours * HOUR_MS;
        Event {
            event,
            rule,
            stream: stream.into(),
            dimension: None,
            at: fmt_time(at),
            at_ms: at,
            value: None,
            baseline: None,
            threshold: 0.0,
            p_value: None,
            samples: 0,
            baseline_samples: 0,
            severity: Severity::Warning,
            summary: String::new(),
        }
    }

    fn change(stream: &str, rule: Option<Rule>, at: i64, revert: Option<i64>) -> Expectation {
        Expectation {
            stream: stream.into(),
            rule,
            dimension: None,
            from_ms: Some(T0 + at * HOUR_MS),
            to_ms: revert.map(|r| T0 + r * HOUR_MS),
            within_hours: Some(3.0),
        }
    }

    #[test]
    fn detections_flaps_co_symptoms_and_false_alarms_are_told_apart() {
        use Rule::*;
        let x = [
            change("a", Some(JudgeScoreDrop), 10, Some(50)),
            change("b", Some(RefusalRateShift), 10, None),
            change("c", None, 10, None),
            Expectation::quiet("d"),
        ];
        let evs = [
            ev("firing", JudgeScoreDrop, "a", 12), // detected, 2 h
            ev("firing", LengthDrift, "a", 13),    // co-symptom
            ev("resolved", JudgeScoreDrop, "a", 20),
            ev("reopened", JudgeScoreDrop, "a", 22), // flap
            ev("resolved", JudgeScoreDrop, "a", 60), // revert resolved
            ev("firing", JudgeScoreDrop, "a", 100),  // after the revert's grace
            ev("firing", RefusalRateShift, "b", 18), // late (8 h > 3 h)
            ev("firing", RefusalRateShift, "c", 30), // must not fire
            ev("firing", LengthDrift, "e", 5),       // unlisted stream
        ];
        let s = score(&x, &evs);
        assert_eq!(s.len(), 5, "{s:#?}");
        assert_eq!((s[0].result, s[0].delay_hours), ("detected", Some(2.0)));
        assert_eq!(s[0].flaps, 1);
        assert_eq!(s[0].revert_resolved, Some(true));
        assert_eq!(s[0].false_alarms.len(), 1, "{s:#?}");
        assert!(s[0].false_alarms[0].contains("after the revert"));
        assert_eq!((s[1].result, s[1].delay_hours), ("late", Some(8.0)));
        assert_eq!((s[2].result, s[2].false_alarms.len()), ("-", 1));
        assert!(s[3].false_alarms.is_empty() && s[3].passed());
        assert_eq!((s[4].stream.as_str(), s[4].false_alarms.len()), ("e", 1));
        let t = totals(&s);
        assert_eq!((t.planted, t.detected, t.late, t.missed), (2, 1, 1, 0));
        assert_eq!((t.false_alarms, t.flaps), (3, 1));
        assert!(render(&s).contains("detected in time 1/2, late 1"));
    }

    #[test]
    fn a_change_never_reported_is_missed_and_an_unresolved_revert_counts() {
        let x = [change("a", Some(Rule::TruncationRate), 10, Some(20))];
        let s = score(&x, &[]);
        assert_eq!(s[0].result, "missed");
        assert_eq!(s[0].revert_resolved, Some(false));
        let s = score(&x, &[ev("firing", Rule::TruncationRate, "a", 11)]);
        assert_eq!(s[0].result, "detected");
        assert_eq!(
            s[0].revert_resolved,
            Some(false),
            "still firing after the revert"
        );
        assert!(!s[0].passed());
    }
}
