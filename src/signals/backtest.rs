//! Replaying history through the detectors: evaluate at every step of
//! simulated time and report when a (rule, stream, dimension) starts or
//! stops firing. The snapshot comes from the same store reads as the
//! daemon's and every step is the daemon's `evaluate_snapshot`, so a
//! backtest shows exactly what the daemon would have said.

use std::collections::BTreeMap;

use serde::Serialize;

use super::finding::{Finding, Rule, Status};
use super::{DetectorConfig, Snapshot, evaluate_snapshot, fmt_time};

/// One line of `canaryd backtest` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `firing` or `resolved`.
    pub event: &'static str,
    pub rule: Rule,
    pub stream: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// RFC 3339 time of the evaluation step.
    pub at: String,
    #[serde(skip)]
    pub at_ms: i64,
    pub value: f64,
    pub baseline: f64,
    pub threshold: f64,
    pub p_value: Option<f64>,
    pub samples: u64,
    pub baseline_samples: u64,
    pub severity: super::Severity,
    pub summary: String,
}

impl Event {
    fn from(kind: &'static str, f: &Finding) -> Event {
        Event {
            event: kind,
            rule: f.rule,
            stream: f.stream.clone(),
            dimension: f.dimension.clone(),
            at: fmt_time(f.at_ms),
            at_ms: f.at_ms,
            value: round(f.value),
            baseline: round(f.baseline),
            threshold: f.threshold,
            p_value: f.p_value.map(|p| (p * 1e6).round() / 1e6).map(|p| if p == 0.0 { f.p_value.unwrap_or(0.0) } else { p }),
            samples: f.samples,
            baseline_samples: f.baseline_samples,
            severity: f.severity,
            summary: f.summary.clone(),
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

type Key = (Rule, String, Option<String>);

/// Evaluates at `from_ms`, `from_ms + every_ms`, … up to `to_ms` inclusive
/// and returns the state changes in time order. Informational findings (a
/// lone model change) are reported like the others.
pub fn replay(snap: &Snapshot, from_ms: i64, to_ms: i64, every_ms: i64, cfg: &DetectorConfig, mut on_step: impl FnMut(i64, &[Finding])) -> Vec<Event> {
    let mut firing: BTreeMap<Key, Finding> = BTreeMap::new();
    let mut events = Vec::new();
    let mut now = from_ms;
    while now <= to_ms {
        let findings = evaluate_snapshot(snap, now, cfg);
        on_step(now, &findings);
        let mut seen: BTreeMap<Key, &Finding> = BTreeMap::new();
        for f in &findings {
            let key = (f.rule, f.stream.clone(), f.dimension.clone());
            if f.status == Status::Firing {
                if !firing.contains_key(&key) {
                    events.push(Event::from("firing", f));
                }
                seen.insert(key, f);
            }
        }
        let ended: Vec<Key> = firing.keys().filter(|k| !seen.contains_key(*k)).cloned().collect();
        for key in ended {
            if let Some(last) = firing.remove(&key) {
                // Report the resolve with the current (non-firing) values when present.
                let now_finding = findings.iter().find(|f| (f.rule, &f.stream, &f.dimension) == (key.0, &key.1, &key.2));
                let mut e = Event::from("resolved", now_finding.unwrap_or(&last));
                e.at = fmt_time(now);
                e.at_ms = now;
                events.push(e);
            }
        }
        for (k, f) in seen {
            firing.insert(k, f.clone());
        }
        now += every_ms.max(1);
    }
    events
}
