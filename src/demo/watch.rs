//! Following the daemon from the outside: alert transitions, model-change
//! events and captured notifications become console lines, and the same
//! observations decide when the demo has shown what it came to show.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::store::{AlertRow, ModelEvent, Store};

/// Timestamped progress lines on stdout.
#[derive(Debug)]
pub struct Console {
    started: Instant,
}

impl Console {
    pub fn new() -> Console {
        Console {
            started: Instant::now(),
        }
    }
    pub fn elapsed_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
    pub fn line(&self, msg: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{:>6.1}s] {msg}", self.elapsed_secs());
        let _ = out.flush();
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

/// A file a capture server wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Captured {
    pub kind: String,
    pub path: PathBuf,
    pub at_ms: i64,
    pub description: String,
}

/// Shared list of captured files, appended to by the capture servers.
pub type CaptureLog = Arc<Mutex<Vec<Captured>>>;

/// The rules a silent model update must trip for the demo to have made its point.
pub const QUALITY_RULES: [&str; 2] = ["judge_score_drop", "refusal_rate_shift"];

/// One alert as the summary shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertLine {
    pub rule: String,
    pub stream: String,
    pub dimension: String,
    pub state: String,
    pub severity: String,
    pub summary: String,
    /// Seconds from the staged update to firing (negative: fired before it).
    pub fired_after_update_secs: Option<f64>,
}

/// What the demo observed, printed at the end and written to `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub dir: PathBuf,
    pub dashboard: String,
    pub elapsed_secs: f64,
    pub history_records: usize,
    pub live_records: u64,
    pub update_staged: bool,
    /// The demo saw a quality alert fire, a model change and both captures after the update.
    pub detected: bool,
    /// The agent pair's clarification loop after the update: `tool_call_loop`
    /// fired for its session and the kill-switch hook was called.
    pub session_loop_stopped: bool,
    pub alerts_fired: Vec<AlertLine>,
    pub model_change_events: Vec<ModelEvent>,
    pub captured: Vec<Captured>,
}

/// What the demo has observed so far after the update.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// A quality alert fired, a model change was recorded, and the stream's
    /// notification reached the mail relay and Slack.
    pub quality: bool,
    /// `tool_call_loop` fired for the agent pair's session and the
    /// kill-switch hook reached the orchestrator's end.
    pub session_loop: bool,
}

/// Polls the store and reports what changed since the last poll.
pub struct Watcher {
    store: Store,
    states: BTreeMap<i64, String>,
    events: BTreeSet<i64>,
    captures_seen: usize,
}

impl Watcher {
    pub fn new(store: Store) -> Watcher {
        Watcher {
            store,
            states: BTreeMap::new(),
            events: BTreeSet::new(),
            captures_seen: 0,
        }
    }

    /// Prints new alert states, model events and captured files; returns
    /// what of the demo's outcome is complete for an update staged at `update_ms`.
    pub async fn poll(
        &mut self,
        console: &Console,
        captures: &CaptureLog,
        update_ms: Option<i64>,
    ) -> Result<Progress, crate::store::StoreError> {
        let alerts = self.store.list_alerts(500).await?;
        for a in alerts.iter().rev() {
            if self.states.get(&a.id) != Some(&a.state) {
                self.states.insert(a.id, a.state.clone());
                console.line(&format!(
                    "alert {:<8} {} {}{} — {}",
                    a.state,
                    a.rule,
                    a.stream,
                    if a.dimension.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", a.dimension)
                    },
                    a.summary
                ));
            }
        }
        for e in self.store.model_events("", 0).await? {
            if self.events.insert(e.id) {
                console.line(&format!("model change: {}", describe_event(&e)));
            }
        }
        let log = captures.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for c in &log[self.captures_seen..] {
            console.line(&format!(
                "{} captured: {} ({})",
                c.kind,
                c.path.display(),
                c.description
            ));
        }
        self.captures_seen = log.len();
        let Some(update) = update_ms else {
            return Ok(Progress::default());
        };
        let session_loop = alerts.iter().any(|a| {
            a.rule == "tool_call_loop"
                && a.stream == super::traffic::AGENT_STREAM
                && a.firing_ms.is_some_and(|t| t >= update)
        }) && log
            .iter()
            .any(|c| c.kind == "hook" && c.description.contains(super::traffic::AGENT_STREAM));
        // A quality alert that fired after the update, and its stream's
        // notification delivered to both the mail relay and Slack.
        let fired: Vec<&AlertRow> = alerts
            .iter()
            .filter(|a| QUALITY_RULES.contains(&a.rule.as_str()))
            .filter(|a| a.firing_ms.is_some_and(|t| t >= update))
            .collect();
        if fired.is_empty() {
            return Ok(Progress {
                quality: false,
                session_loop,
            });
        }
        let changed = self.store.model_events("", update).await?;
        let delivered = |kind: &str| {
            log.iter().any(|c| {
                c.kind == kind
                    && fired.iter().any(|a| {
                        c.description.contains(&a.stream)
                            && a.firing_ms.is_some_and(|t| c.at_ms >= t)
                    })
            })
        };
        Ok(Progress {
            quality: !changed.is_empty() && delivered("email") && delivered("slack"),
            session_loop,
        })
    }

    /// Alerts that fired (ever), and the model events, for the summary.
    pub async fn outcome(
        &self,
        update_ms: Option<i64>,
    ) -> Result<(Vec<AlertLine>, Vec<ModelEvent>), crate::store::StoreError> {
        let alerts = self.store.list_alerts(500).await?;
        let fired = alerts
            .iter()
            .filter(|a| a.firing_ms.is_some())
            .map(|a| alert_line(a, update_ms))
            .collect();
        Ok((fired, self.store.model_events("", 0).await?))
    }
}

fn alert_line(a: &AlertRow, update_ms: Option<i64>) -> AlertLine {
    AlertLine {
        rule: a.rule.clone(),
        stream: a.stream.clone(),
        dimension: a.dimension.clone(),
        state: a.state.clone(),
        severity: a.severity.clone(),
        summary: a.summary.clone(),
        fired_after_update_secs: match (a.firing_ms, update_ms) {
            (Some(f), Some(u)) => Some((f - u) as f64 / 1000.0),
            _ => None,
        },
    }
}

pub fn describe_event(e: &ModelEvent) -> String {
    let fp = match (&e.old_fingerprint, &e.new_fingerprint) {
        (Some(a), Some(b)) if a != b => format!(", fingerprint {a} → {b}"),
        _ => String::new(),
    };
    format!(
        "{} asked for {}: {} → {}{fp}",
        e.scope,
        e.requested_model,
        e.old_model.as_deref().unwrap_or("?"),
        e.new_model.as_deref().unwrap_or("?"),
    )
}

/// The closing text of the demo.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let mut push = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    push("== canaryd demo summary ==".into());
    push(format!(
        "outcome: {}",
        if s.detected {
            "the silent model update was detected and notified"
        } else if s.update_staged {
            "the update was staged but not everything was observed in time"
        } else {
            "stopped before the update was staged"
        }
    ));
    push(format!(
        "agent loop: {}",
        if s.session_loop_stopped {
            "the agent pair's clarification loop fired tool_call_loop and called the kill-switch hook"
        } else {
            "not observed"
        }
    ));
    push(format!(
        "traffic: {} history records replayed, {} live records sent",
        s.history_records, s.live_records
    ));
    push(format!("alerts fired: {}", s.alerts_fired.len()));
    for a in &s.alerts_fired {
        let when = match a.fired_after_update_secs {
            Some(t) if t >= 0.0 => format!("{t:.0}s after the update"),
            Some(t) => format!("{:.0}s BEFORE the update", -t),
            None => String::new(),
        };
        push(format!(
            "  {} {} {} ({}, now {}) {when}: {}",
            a.rule, a.stream, a.dimension, a.severity, a.state, a.summary
        ));
    }
    push(format!(
        "model_change events: {}",
        s.model_change_events.len()
    ));
    for e in &s.model_change_events {
        push(format!("  {}", describe_event(e)));
    }
    for kind in ["email", "slack", "webhook", "hook"] {
        let files: Vec<_> = s.captured.iter().filter(|c| c.kind == kind).collect();
        push(format!("{kind} captured: {}", files.len()));
        for c in files {
            push(format!("  {}", c.path.display()));
        }
    }
    push(format!("dashboard (while running): {}", s.dashboard));
    push(format!("scratch directory: {}", s.dir.display()));
    out
}
