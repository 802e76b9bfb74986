//! The daemon replayed: at every step of simulated time, the detectors
//! evaluate the snapshot (with the spans in which alerts were open left out
//! of baselines, as the daemon's store reads them) and every finding goes
//! through the alert lifecycle's own [`transition`] — the one state machine
//! — applied to alerts held in memory. Notification grouping
//! (`group_wait`) is shorter than a step, so a pending alert is firing at
//! once.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::alert::AlertsConfig;
use crate::alert::lifecycle::transition;
use crate::signals::{
    DetectorConfig, Finding, QuietKey, Rule, Severity, Snapshot, evaluate_snapshot, fmt_time,
    quiet_span,
};
use crate::store::AlertRow;

/// One line of `canaryd backtest` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `firing`, `reopened` (fired again within `flap_window` of resolving:
    /// the same alert) or `resolved`.
    pub event: &'static str,
    pub rule: Rule,
    pub stream: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// RFC 3339 time of the evaluation step.
    pub at: String,
    #[serde(skip)]
    pub at_ms: i64,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    pub threshold: f64,
    pub p_value: Option<f64>,
    pub samples: u64,
    pub baseline_samples: u64,
    pub severity: Severity,
    pub summary: String,
}

impl Event {
    fn from(kind: &'static str, f: &Finding, now_ms: i64) -> Event {
        let round = |x: f64| x.is_finite().then(|| (x * 1e4).round() / 1e4);
        Event {
            event: kind,
            rule: f.rule,
            stream: f.stream.clone(),
            dimension: f.dimension.clone(),
            at: fmt_time(now_ms),
            at_ms: now_ms,
            value: round(f.value),
            baseline: round(f.baseline),
            threshold: f.threshold,
            p_value: f.p_value,
            samples: f.samples,
            baseline_samples: f.baseline_samples,
            severity: f.severity,
            summary: f.summary.clone(),
        }
    }
}

/// Evaluates at `from_ms`, `from_ms + every_ms`, … up to `to_ms` inclusive
/// and returns the alert lifecycle's events in time order.
pub fn replay(
    mut snap: Snapshot,
    (from_ms, to_ms, every_ms): (i64, i64, i64),
    cfg: &DetectorConfig,
    alerts: &AlertsConfig,
    mut on_step: impl FnMut(i64, &[Finding]),
) -> Vec<Event> {
    let mut rows: BTreeMap<QuietKey, AlertRow> = BTreeMap::new();
    // Spans of the episodes that resolved, per alert (the row holds the latest).
    let mut closed: BTreeMap<QuietKey, Vec<(i64, i64)>> = BTreeMap::new();
    let mut next_id = 1;
    let mut events = Vec::new();
    let mut now = from_ms;
    while now <= to_ms {
        snap.quiet = closed.clone();
        for (k, a) in &rows {
            if let (Some(p), None) = (a.pending_ms, a.resolved_ms) {
                snap.quiet
                    .entry(k.clone())
                    .or_default()
                    .push(quiet_span(p, None, cfg));
            }
        }
        let findings = evaluate_snapshot(&snap, now, cfg);
        on_step(now, &findings);
        for f in &findings {
            let key = (f.rule, f.stream.clone(), f.dimension.clone());
            let existing = rows.get(&key);
            let before = existing.map(|a| a.state.clone());
            let Some(change) = transition(existing, f, now, alerts) else {
                continue;
            };
            let mut row = change.row;
            if row.id == 0 {
                row.id = next_id;
                next_id += 1;
            }
            let kind = match (before.as_deref(), row.state.as_str()) {
                (_, "pending") => {
                    // group_wait is shorter than a step: firing at once.
                    row.state = "firing".into();
                    row.firing_ms = Some(now);
                    Some("firing")
                }
                (Some("resolved"), "firing") => Some("reopened"),
                (Some("firing"), "resolved") => {
                    if let Some(p) = row.pending_ms {
                        closed.entry(key.clone()).or_default().push(quiet_span(
                            p,
                            row.resolved_ms,
                            cfg,
                        ));
                    }
                    Some("resolved")
                }
                _ => None,
            };
            if let Some(kind) = kind {
                events.push(Event::from(kind, f, now));
            }
            rows.insert(key, row);
        }
        now += every_ms.max(1);
    }
    events
}
