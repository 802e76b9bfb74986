//! The alert lifecycle: findings move alerts between states, and due
//! alerts become notifications in the outbox.
//!
//! States, per (rule, stream, dimension):
//!
//! - a `Firing` finding opens an episode: **pending** (waiting `group_wait`
//!   so alerts of one incident travel together);
//! - when the oldest pending alert of a stream has waited `group_wait`, every
//!   pending alert of that stream becomes **firing** and is notified together;
//! - an `Ok` finding whose effect is below the resolve level (`resolve`:
//!   the detector's hysteresis, half the threshold by default, measured over
//!   `resolve_after_hours`) **resolves** it; an `Ok` finding without it
//!   keeps it firing. A resolve notice is owed only when its firing was
//!   notified (an alert that cleared while pending, or while silenced, was
//!   never heard of);
//! - a `Firing` finding within `flap_window` of the alert resolving
//!   **reopens** it: the same alert goes back to firing (notified again as
//!   the same alert) instead of a new incident.
//!
//! `InsufficientData` and `WarmingUp` change nothing: "we cannot tell right now" (a quiet
//! night, a paused suite) is not recovery, and resolving on it would page
//! again when traffic returns. A key absent from a batch keeps its state too.
//!
//! Repeats: a firing alert is notified again only after `repeat_interval`.
//! Silences skip the notification step; the states still move and are stored.

use std::collections::BTreeMap;

use super::message::{self, Message};
use super::render::Renderer;
use super::route::{self, Labels};
use super::settings::AlertsConfig;
use super::{AlertError, evidence, silence};
use crate::signals::{Finding, Status};
use crate::store::{AlertChange, AlertRow, NewNotification, Store};

/// What one call of [`process`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcessOutcome {
    /// State changes written.
    pub transitions: usize,
    /// Notifications put in the outbox.
    pub enqueued: usize,
    /// Writes skipped because another replica changed the alert first; the
    /// next call sees its result.
    pub raced: usize,
}

fn labels(a: &AlertRow) -> Labels<'_> {
    Labels {
        rule: &a.rule,
        stream: &a.stream,
        severity: &a.severity,
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Applies `findings` at `now_ms`, then enqueues the notifications that are
/// due. Call it after each evaluation; call it with no findings from a timer
/// so `group_wait` and `repeat_interval` elapse without new findings.
pub async fn process(
    store: &Store,
    findings: &[Finding],
    now_ms: i64,
    cfg: &AlertsConfig,
) -> Result<ProcessOutcome, AlertError> {
    let mut out = ProcessOutcome::default();
    apply_findings(store, findings, now_ms, cfg, &mut out).await?;
    let renderer = Renderer::new(cfg)?;
    flush(store, now_ms, cfg, &renderer, &mut out).await?;
    Ok(out)
}

/// A number an alert row can store. Detectors report "unknown" as NaN (a
/// canary case that flips in a suite with no baseline runs yet has no
/// baseline rate); SQLite binds NaN as NULL, the columns are NOT NULL, and
/// the whole batch of alert changes would fail with it — every stream's
/// alerts held back by one unknown number. Unknown is stored as 0; the
/// summary and the sample counts say what was known.
fn storable(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// The next state of one alert given one finding, or `None` for no change.
/// The one state machine: the daemon applies it to stored alerts, the
/// backtest to alerts held in memory.
pub fn transition(
    existing: Option<&AlertRow>,
    f: &Finding,
    now_ms: i64,
    cfg: &AlertsConfig,
) -> Option<AlertChange> {
    let state = existing.map(|a| a.state.as_str());
    let mut row = match existing {
        Some(a) => a.clone(),
        None => AlertRow {
            id: 0,
            rule: f.rule.as_str().into(),
            stream: f.stream.clone(),
            dimension: f.dimension.clone().unwrap_or_default(),
            state: "resolved".into(),
            severity: f.severity.as_str().into(),
            value: storable(f.value),
            baseline: storable(f.baseline),
            threshold: storable(f.threshold),
            p_value: f.p_value.filter(|p| p.is_finite()),
            samples: 0,
            baseline_samples: 0,
            summary: String::new(),
            pending_ms: None,
            firing_ms: None,
            resolved_ms: None,
            last_eval_ms: f.at_ms,
            last_notified_ms: None,
            resolve_pending: false,
            rev: 0,
        },
    };
    let copy_values = |row: &mut AlertRow| {
        row.severity = f.severity.as_str().into();
        row.value = storable(f.value);
        row.baseline = storable(f.baseline);
        row.threshold = storable(f.threshold);
        row.p_value = f.p_value.filter(|p| p.is_finite());
        row.samples = i64::try_from(f.samples).unwrap_or(i64::MAX);
        row.baseline_samples = i64::try_from(f.baseline_samples).unwrap_or(i64::MAX);
        row.summary = f.summary.clone();
        row.last_eval_ms = f.at_ms;
    };
    let history = |from: Option<&str>, to: &str, note: String| {
        Some((from.map(String::from), to.to_string(), Some(note)))
    };
    let change = |row, history| {
        Some(AlertChange {
            row,
            history,
            at_ms: now_ms,
        })
    };
    let reopen = existing.is_some_and(|a| {
        a.state == "resolved"
            && a.firing_ms.is_some()
            && a.resolved_ms
                .is_some_and(|r| now_ms - r <= ms(cfg.flap_window.0))
    });
    match (state, f.status) {
        (Some("resolved"), Status::Firing) if reopen => {
            copy_values(&mut row);
            row.state = "firing".into();
            row.resolved_ms = None;
            row.resolve_pending = false;
            // Notified again (a resolve notice may have gone out), as the same alert.
            row.last_notified_ms = None;
            change(
                row,
                history(state, "firing", format!("reopened: {}", f.summary)),
            )
        }
        (None | Some("resolved"), Status::Firing) => {
            copy_values(&mut row);
            row.state = "pending".into();
            row.pending_ms = Some(now_ms);
            row.firing_ms = None;
            row.resolved_ms = None;
            row.last_notified_ms = None;
            row.resolve_pending = false;
            change(row, history(state, "pending", f.summary.clone()))
        }
        (Some("pending" | "firing"), Status::Firing) => {
            let escalated = row.severity != f.severity.as_str();
            let note = format!("severity {} → {}", row.severity, f.severity.as_str());
            copy_values(&mut row);
            let h = if escalated {
                history(state, state.unwrap_or_default(), note)
            } else {
                None
            };
            change(row, h)
        }
        (Some(s @ ("pending" | "firing")), Status::Ok) if f.resolve => {
            copy_values(&mut row);
            row.state = "resolved".into();
            row.resolved_ms = Some(now_ms);
            row.resolve_pending = s == "firing" && row.last_notified_ms.is_some();
            let note = if s == "pending" {
                format!("cleared before it was notified: {}", f.summary)
            } else {
                f.summary.clone()
            };
            change(row, history(state, "resolved", note))
        }
        // InsufficientData and WarmingUp keep the state, so does an Ok whose
        // effect is still above the resolve level; Ok on a resolved alert is
        // no news.
        _ => None,
    }
}

async fn apply_findings(
    store: &Store,
    findings: &[Finding],
    now_ms: i64,
    cfg: &AlertsConfig,
    out: &mut ProcessOutcome,
) -> Result<(), AlertError> {
    // The latest finding per key wins.
    let mut latest: BTreeMap<(&str, &str, &str), &Finding> = BTreeMap::new();
    for f in findings {
        let key = (
            f.rule.as_str(),
            f.stream.as_str(),
            f.dimension.as_deref().unwrap_or(""),
        );
        if latest.get(&key).is_none_or(|old| old.at_ms <= f.at_ms) {
            latest.insert(key, f);
        }
    }
    let mut streams: Vec<String> = latest.keys().map(|k| k.1.to_string()).collect();
    streams.sort();
    streams.dedup();
    let existing = store.alerts_of_streams(&streams).await?;
    for (key, f) in latest {
        let current = existing
            .iter()
            .find(|a| (a.rule.as_str(), a.stream.as_str(), a.dimension.as_str()) == key);
        if let Some(change) = transition(current, f, now_ms, cfg) {
            match store.write_alerts(&[change], &[]).await? {
                Some(_) => out.transitions += 1,
                None => out.raced += 1,
            }
        }
    }
    Ok(())
}

/// Promotes pending groups whose `group_wait` is over and enqueues what is due.
async fn flush(
    store: &Store,
    now_ms: i64,
    cfg: &AlertsConfig,
    renderer: &Renderer,
    out: &mut ProcessOutcome,
) -> Result<(), AlertError> {
    let silences = store.list_silences(now_ms, false).await?;
    for stream in store.streams_with_open_alerts().await? {
        let rows = store
            .alerts_of_streams(std::slice::from_ref(&stream))
            .await?;
        let mut changes: BTreeMap<i64, AlertChange> = BTreeMap::new();
        let oldest_pending = rows
            .iter()
            .filter(|a| a.state == "pending")
            .filter_map(|a| a.pending_ms)
            .min();
        let mut promoted = Vec::new();
        if let Some(oldest) = oldest_pending
            && oldest.saturating_add(ms(cfg.group_wait.0)) <= now_ms
        {
            for a in rows.iter().filter(|a| a.state == "pending") {
                let mut row = a.clone();
                row.state = "firing".into();
                row.firing_ms = Some(now_ms);
                promoted.push(a.id);
                changes.insert(
                    a.id,
                    AlertChange {
                        row,
                        history: Some((Some("pending".into()), "firing".into(), None)),
                        at_ms: now_ms,
                    },
                );
            }
        }
        let current = |a: &AlertRow| {
            changes
                .get(&a.id)
                .map(|c| c.row.clone())
                .unwrap_or_else(|| a.clone())
        };
        let rows: Vec<AlertRow> = rows.iter().map(current).collect();
        let repeat = ms(cfg.repeat_interval.0);

        // Per channel: the alerts it shows, and whether anything in them is news.
        let mut per_channel: BTreeMap<String, (Vec<AlertRow>, Vec<AlertRow>, bool)> =
            BTreeMap::new();
        let mut notified_firing = Vec::new();
        let mut notified_resolved = Vec::new();
        for a in &rows {
            let silenced = silence::find(&silences, labels(a), now_ms).is_some();
            if a.state == "firing" && !silenced {
                let due = a
                    .last_notified_ms
                    .is_none_or(|t| t.saturating_add(repeat) <= now_ms);
                for ch in route::channels_for(cfg, labels(a)) {
                    let e = per_channel.entry(ch).or_default();
                    e.0.push(a.clone());
                    e.2 |= due;
                }
            } else if a.state == "resolved" && a.resolve_pending {
                if silenced {
                    // Muted like its firing would be; the notice is dropped on purpose.
                    let mut row = a.clone();
                    row.resolve_pending = false;
                    let note = Some("resolve notice silenced".to_string());
                    changes.insert(
                        a.id,
                        AlertChange {
                            row,
                            history: Some((Some("resolved".into()), "resolved".into(), note)),
                            at_ms: now_ms,
                        },
                    );
                    continue;
                }
                let channels = route::channels_for(cfg, labels(a));
                if channels.is_empty() {
                    // No channel takes it: nothing is owed.
                    let mut row = a.clone();
                    row.resolve_pending = false;
                    changes.insert(
                        a.id,
                        AlertChange {
                            row,
                            history: None,
                            at_ms: now_ms,
                        },
                    );
                }
                for ch in channels {
                    let e = per_channel.entry(ch).or_default();
                    e.1.push(a.clone());
                    e.2 = true;
                }
            }
        }
        per_channel.retain(|_, v| v.2);
        let mut notifications = Vec::new();
        if !per_channel.is_empty() {
            let model_change = rows.iter().any(|a| {
                a.rule == crate::signals::Rule::ModelChange.as_str()
                    && matches!(a.state.as_str(), "pending" | "firing")
            });
            let since = now_ms - ms(cfg.evidence_window.0);
            let events = evidence::model_events(store, &stream, since).await?;
            let annotations = evidence::annotations(store, &stream, &rows).await?;
            // The triage section is help, not the alert: a failed read
            // leaves it out rather than holding the notification back.
            let triage = match evidence::triage_data(store, &stream, &rows, now_ms).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(stream = %stream, error = %e, "cannot read the triage records; notifying without them");
                    None
                }
            };
            let mut examples = BTreeMap::new();
            for (firing, _, _) in per_channel.values() {
                for a in firing {
                    if let std::collections::btree_map::Entry::Vacant(slot) = examples.entry(a.id) {
                        slot.insert(evidence::examples(store, a, cfg, now_ms).await?);
                    }
                }
            }
            for (channel, (firing, resolved, _)) in &per_channel {
                let msg: Message = message::build(message::Input {
                    stream: &stream,
                    firing,
                    resolved,
                    examples: &examples,
                    model_change,
                    model_events: &events,
                    annotations: &annotations,
                    base_url: cfg.base_url.as_deref(),
                    now_ms,
                    new_ids: &promoted,
                    max_chars: cfg.max_example_chars,
                });
                let mut msg = msg;
                if let Some(t) = &triage {
                    msg.triage = message::link_triage(
                        super::triage::lines(t, firing),
                        cfg.base_url.as_deref(),
                    );
                }
                let kind = cfg.channels[channel].kind();
                let body = renderer.body(kind, &msg)?;
                notified_firing.extend(firing.iter().map(|a| a.id));
                notified_resolved.extend(resolved.iter().map(|a| a.id));
                notifications.push(NewNotification {
                    channel: channel.clone(),
                    kind: kind.into(),
                    stream: stream.clone(),
                    status: msg.status.clone(),
                    title: msg.title.clone(),
                    body,
                    alert_ids: firing.iter().chain(resolved).map(|a| a.id).collect(),
                    created_ms: now_ms,
                });
            }
        }
        // The kill-switch hook: once per episode, when the alert starts firing.
        if cfg.hook.is_some() {
            for a in rows.iter().filter(|a| {
                promoted.contains(&a.id)
                    && super::hook::applies(&a.rule)
                    && silence::find(&silences, labels(a), now_ms).is_none()
            }) {
                notifications.push(super::hook::notification(
                    a,
                    cfg.base_url.as_deref(),
                    now_ms,
                ));
            }
        }
        for a in &rows {
            if notified_firing.contains(&a.id) {
                let c = changes.entry(a.id).or_insert_with(|| AlertChange {
                    row: a.clone(),
                    history: None,
                    at_ms: now_ms,
                });
                c.row.last_notified_ms = Some(now_ms);
            } else if notified_resolved.contains(&a.id) {
                let c = changes.entry(a.id).or_insert_with(|| AlertChange {
                    row: a.clone(),
                    history: None,
                    at_ms: now_ms,
                });
                c.row.resolve_pending = false;
            }
        }
        if changes.is_empty() && notifications.is_empty() {
            continue;
        }
        // Rows keep the rev they were read at; a concurrent writer makes this a no-op.
        let changes: Vec<AlertChange> = changes.into_values().collect();
        match store.write_alerts(&changes, &notifications).await? {
            Some(_) => {
                out.transitions += promoted.len();
                out.enqueued += notifications.len();
            }
            None => out.raced += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{Rule, Severity};

    fn f(status: Status, severity: Severity) -> Finding {
        Finding {
            rule: Rule::LengthDrift,
            stream: "s".into(),
            dimension: None,
            status,
            severity,
            at_ms: 5,
            value: 1.0,
            baseline: 2.0,
            threshold: 0.1,
            p_value: None,
            samples: 1,
            baseline_samples: 1,
            summary: "x".into(),
            resolve: true,
        }
    }

    fn cfg() -> AlertsConfig {
        AlertsConfig::default()
    }

    fn step(a: Option<&AlertRow>, status: Status) -> Option<AlertRow> {
        transition(a, &f(status, Severity::Warning), 100, &cfg()).map(|c| c.row)
    }

    #[test]
    fn an_ok_above_the_resolve_level_keeps_the_alert_firing() {
        let firing = AlertRow {
            state: "firing".into(),
            last_notified_ms: Some(50),
            ..step(None, Status::Firing).unwrap()
        };
        let hovering = Finding {
            resolve: false,
            ..f(Status::Ok, Severity::Warning)
        };
        assert!(transition(Some(&firing), &hovering, 100, &cfg()).is_none());
        let clear = transition(
            Some(&firing),
            &f(Status::Ok, Severity::Warning),
            100,
            &cfg(),
        );
        assert_eq!(clear.unwrap().row.state, "resolved");
    }

    #[test]
    fn firing_again_within_the_flap_window_reopens_the_same_alert() {
        let hour = 3_600_000;
        let resolved = AlertRow {
            id: 7,
            state: "resolved".into(),
            firing_ms: Some(0),
            resolved_ms: Some(hour),
            last_notified_ms: Some(0),
            ..step(None, Status::Firing).unwrap()
        };
        let again = transition(
            Some(&resolved),
            &f(Status::Firing, Severity::Warning),
            3 * hour,
            &cfg(),
        )
        .unwrap();
        assert_eq!((again.row.id, again.row.state.as_str()), (7, "firing"));
        assert_eq!(again.row.firing_ms, Some(0), "the incident keeps its start");
        assert!(again.history.unwrap().2.unwrap().starts_with("reopened"));
        // After the flap window it is a new incident.
        let later = transition(
            Some(&resolved),
            &f(Status::Firing, Severity::Warning),
            hour + 13 * hour,
            &cfg(),
        )
        .unwrap();
        assert_eq!(later.row.state, "pending");
    }

    #[test]
    fn unknown_numbers_are_stored_as_zero_not_null() {
        let unknown = Finding {
            value: f64::INFINITY,
            baseline: f64::NAN,
            p_value: Some(f64::NAN),
            ..f(Status::Firing, Severity::Warning)
        };
        let row = transition(None, &unknown, 100, &cfg()).unwrap().row;
        assert_eq!((row.value, row.baseline, row.p_value), (0.0, 0.0, None));
        assert_eq!(row.threshold, 0.1);
    }

    #[test]
    fn insufficient_data_keeps_the_state() {
        let pending = step(None, Status::Firing).unwrap();
        assert_eq!(pending.state, "pending");
        assert!(step(Some(&pending), Status::InsufficientData).is_none());
        let firing = AlertRow {
            state: "firing".into(),
            last_notified_ms: Some(50),
            ..pending.clone()
        };
        assert!(step(Some(&firing), Status::InsufficientData).is_none());
        assert!(
            step(None, Status::InsufficientData).is_none(),
            "no row for a subject without data"
        );
        assert!(
            step(None, Status::Ok).is_none(),
            "no row for a healthy subject"
        );
    }

    #[test]
    fn a_resolve_notice_is_owed_only_after_a_notified_firing() {
        let pending = step(None, Status::Firing).unwrap();
        let cleared = step(Some(&pending), Status::Ok).unwrap();
        assert_eq!(
            (cleared.state.as_str(), cleared.resolve_pending),
            ("resolved", false)
        );
        let silent = AlertRow {
            state: "firing".into(),
            ..pending.clone()
        };
        assert!(
            !step(Some(&silent), Status::Ok).unwrap().resolve_pending,
            "never notified (silenced)"
        );
        let notified = AlertRow {
            state: "firing".into(),
            last_notified_ms: Some(50),
            ..pending.clone()
        };
        let resolved = step(Some(&notified), Status::Ok).unwrap();
        assert!(resolved.resolve_pending);
        assert_eq!(resolved.resolved_ms, Some(100));
        // Firing again after the flap window opens a new episode: pending,
        // notice forgotten (within it, it reopens: see below).
        let again = transition(
            Some(&resolved),
            &f(Status::Firing, Severity::Warning),
            100 + 13 * 3_600_000,
            &cfg(),
        )
        .unwrap()
        .row;
        assert_eq!(
            (
                again.state.as_str(),
                again.resolve_pending,
                again.last_notified_ms
            ),
            ("pending", false, None)
        );
    }

    #[test]
    fn still_firing_updates_values_and_records_escalation() {
        let firing = AlertRow {
            state: "firing".into(),
            ..step(None, Status::Firing).unwrap()
        };
        let same = transition(
            Some(&firing),
            &f(Status::Firing, Severity::Warning),
            100,
            &cfg(),
        )
        .unwrap();
        assert_eq!(same.row.state, "firing");
        assert!(same.history.is_none());
        let worse = transition(
            Some(&firing),
            &f(Status::Firing, Severity::Critical),
            100,
            &cfg(),
        )
        .unwrap();
        assert_eq!(worse.row.severity, "critical");
        assert_eq!(
            worse.history.unwrap().2.unwrap(),
            "severity warning → critical"
        );
    }
}
