//! View models of the suite, response and alerts pages. Like `view`, pure
//! functions of stored data and `now`; all strings are plain text for the
//! autoescaping templates.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::charts::{LineChart, Marker, MarkerKind, Series, YFormat};
use super::fmt::{enc, fmt_ago, fmt_num, fmt_time, model_change_label};
use super::view::{
    ChartView, EventView, FindingView, HealthCell, Periods, findings_view, pass_rate,
};
use crate::alert::evidence::Example;
use crate::signals::Finding;
use crate::store::{
    AlertRow, CaseResultRow, ModelEvent, ResponseRow, RunRow, RunTargetCount, ScoreDetail,
};

/// Link to the page of a detector subject: `suite:<name>` is a suite, anything else a stream.
pub fn subject_href(stream: &str) -> String {
    match stream.strip_prefix("suite:") {
        Some(suite) => format!("/suites/{}", enc(suite)),
        None => format!("/streams/{}", enc(stream)),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TargetCounts {
    pub target: String,
    pub pass: i64,
    pub fail: i64,
    pub provider_error: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    pub id: i64,
    pub when: String,
    pub ago: String,
    pub version: i64,
    pub trigger: String,
    pub status: String,
    pub targets: Vec<TargetCounts>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellView {
    pub target: String,
    pub outcome: String,
    pub answer: String,
    pub verdicts: Vec<String>,
    pub model: String,
    pub agrees: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseView {
    pub case_id: String,
    pub cells: Vec<CellView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestRun {
    pub id: i64,
    pub when: String,
    pub targets: Vec<String>,
    pub cases: Vec<CaseView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteView {
    pub name: String,
    pub health: HealthCell,
    pub pass_chart: ChartView,
    pub runs: Vec<RunView>,
    pub latest: Option<LatestRun>,
    pub events: Vec<EventView>,
    pub findings: Vec<FindingView>,
}

/// Everything the suite page reads.
#[derive(Debug, Clone, Default)]
pub struct SuiteData {
    pub suite: String,
    /// Newest first.
    pub runs: Vec<RunRow>,
    pub counts: Vec<RunTargetCount>,
    /// Results of the newest finished run.
    pub latest_results: Vec<CaseResultRow>,
    pub events: Vec<ModelEvent>,
    /// The detectors' latest verdicts for `suite:<name>`.
    pub findings: Vec<Finding>,
    /// Every alert (`None`: not readable), for the verdicts' alert states.
    pub alerts: Option<Vec<AlertRow>>,
}

/// One expectation verdict as a line of text. The runner's JSON shape is
/// its own business; known fields are shown first, anything else as `key: value`.
pub fn verdict_text(v: &Value) -> String {
    let Value::Object(map) = v else {
        return match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    };
    let mut parts = vec![];
    for key in ["pass", "passed", "ok"] {
        if let Some(Value::Bool(b)) = map.get(key) {
            parts.push(if *b {
                "✓".to_string()
            } else {
                "✗".to_string()
            });
        }
    }
    for (k, val) in map {
        if matches!(k.as_str(), "pass" | "passed" | "ok") {
            continue;
        }
        let text = match val {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        parts.push(format!("{k}: {text}"));
    }
    parts.join(" · ")
}

fn verdicts(json: &str) -> Vec<String> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Array(items)) => items.iter().map(verdict_text).collect(),
        Ok(Value::Null) => vec![],
        Ok(other) => vec![verdict_text(&other)],
        Err(_) if json.trim().is_empty() => vec![],
        Err(_) => vec![json.to_string()],
    }
}

/// Targets in display order: the baseline (never compared with the pinned
/// answer, so `agrees_with_pinned` is always NULL) first, then by name.
fn target_order(results: &[CaseResultRow]) -> Vec<String> {
    let mut compared: BTreeMap<&str, bool> = BTreeMap::new();
    for r in results {
        *compared.entry(&r.target).or_default() |= r.agrees_with_pinned.is_some();
    }
    let mut t: Vec<(&str, bool)> = compared.into_iter().collect();
    t.sort_by_key(|(name, compared)| (*compared, *name));
    t.into_iter().map(|(n, _)| n.to_string()).collect()
}

pub fn build_suite(d: &SuiteData, p: &Periods) -> SuiteView {
    let mut counts: BTreeMap<i64, BTreeMap<String, TargetCounts>> = BTreeMap::new();
    for c in &d.counts {
        let t = counts
            .entry(c.run_id)
            .or_default()
            .entry(c.target.clone())
            .or_insert_with(|| TargetCounts {
                target: c.target.clone(),
                ..Default::default()
            });
        match c.outcome.as_str() {
            "pass" => t.pass += c.n,
            "fail" => t.fail += c.n,
            _ => t.provider_error += c.n,
        }
    }
    let runs: Vec<RunView> = d
        .runs
        .iter()
        .map(|r| RunView {
            id: r.id,
            when: fmt_time(r.started_ms),
            ago: fmt_ago(p.now_ms, r.started_ms),
            version: r.suite_version,
            trigger: r.trigger.clone(),
            status: r.status.clone(),
            targets: counts
                .get(&r.id)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
        })
        .collect();
    // Pass rate per target per run, over the chart period.
    // Baseline target first so the others draw on top of it where they agree.
    let mut targets = target_order(&d.latest_results);
    let counted: BTreeSet<&str> = d.counts.iter().map(|c| c.target.as_str()).collect();
    targets.retain(|t| counted.contains(t.as_str()));
    for t in counted {
        if !targets.iter().any(|x| x == t) {
            targets.push(t.to_string());
        }
    }
    let series = targets
        .iter()
        .map(String::as_str)
        .map(|t| Series {
            label: t.to_string(),
            points: d
                .runs
                .iter()
                .rev()
                .filter(|r| r.started_ms >= p.chart_from_ms)
                .map(|r| {
                    let c = counts.get(&r.id).and_then(|m| m.get(t));
                    let v = c.and_then(|c| {
                        let judged = c.pass + c.fail;
                        (judged > 0).then(|| c.pass as f64 / judged as f64)
                    });
                    (r.started_ms, v)
                })
                .collect(),
        })
        .collect();
    let pass_chart = ChartView::line(
        "Pass rate per target",
        "Share of passing cases per run (provider errors excluded); red marks are model changes.",
        &LineChart {
            title: "canary pass rate".into(),
            x_range: (p.chart_from_ms, p.end_ms),
            y_range: Some((0.0, 1.0)),
            y_format: YFormat::Percent,
            series,
            band: None,
            markers: d
                .events
                .iter()
                .map(|e| Marker {
                    at_ms: e.at_ms,
                    label: format!("{}: {}", e.scope, model_change_label(e)),
                    kind: MarkerKind::ModelChange,
                })
                .collect(),
        },
    );
    let latest = d.latest_results.first().map(|first| {
        let targets = target_order(&d.latest_results);
        let mut cases: Vec<CaseView> = vec![];
        for r in &d.latest_results {
            let cell = CellView {
                target: r.target.clone(),
                outcome: r.outcome.clone(),
                answer: r.answer.clone().unwrap_or_default(),
                verdicts: verdicts(&r.verdicts),
                model: match (&r.response_model, &r.system_fingerprint) {
                    (Some(m), Some(fp)) => format!("{m} ({fp})"),
                    (Some(m), None) => m.clone(),
                    (None, _) => r.requested_model.clone(),
                },
                agrees: match r.agrees_with_pinned {
                    Some(true) => "agrees with pinned".into(),
                    Some(false) => "differs from pinned".into(),
                    None => String::new(),
                },
                error: r.error.clone().unwrap_or_default(),
            };
            match cases.iter_mut().find(|c| c.case_id == r.case_id) {
                Some(c) => c.cells.push(cell),
                None => cases.push(CaseView {
                    case_id: r.case_id.clone(),
                    cells: vec![cell],
                }),
            }
        }
        for c in &mut cases {
            c.cells.sort_by_key(|cell| {
                targets
                    .iter()
                    .position(|t| *t == cell.target)
                    .unwrap_or(usize::MAX)
            });
        }
        LatestRun {
            id: first.run_id,
            when: fmt_time(first.created_ms),
            targets,
            cases,
        }
    });
    SuiteView {
        name: d.suite.clone(),
        health: HealthCell::of(d.runs.iter().find_map(pass_rate)),
        findings: findings_view(&d.findings, d.alerts.as_deref(), p.now_ms),
        pass_chart,
        runs,
        latest,
        events: d
            .events
            .iter()
            .rev()
            .map(|e| EventView {
                when: fmt_time(e.at_ms),
                label: format!("{}: {}", e.scope, model_change_label(e)),
                requested_model: e.requested_model.clone(),
            })
            .collect(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreView {
    pub judge: String,
    pub score: String,
    pub reasoning: String,
    pub error: String,
    pub judge_model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseView {
    pub id: i64,
    pub stream: String,
    pub stream_href: String,
    pub when: String,
    pub input: Vec<Message>,
    pub context: Vec<String>,
    pub output: String,
    pub signals: Vec<(String, String)>,
    pub scores: Vec<ScoreView>,
}

fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // Multi-part content: the text parts, one per line.
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("text") {
                Some(Value::String(s)) => s.clone(),
                _ => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// The stored input (a JSON string or chat messages) as messages to show.
pub fn input_messages(input: Option<&str>) -> Vec<Message> {
    let Some(raw) = input else { return vec![] };
    let msg = |role: &str, content: String| Message {
        role: role.into(),
        content,
    };
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(s)) => vec![msg("input", s)],
        Ok(Value::Array(items)) if items.iter().all(|m| m.get("content").is_some()) => items
            .iter()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("message");
                msg(role, content_text(&m["content"]))
            })
            .collect(),
        Ok(other) => vec![msg("input", content_text(&other))],
        Err(_) => vec![msg("input", raw.to_string())],
    }
}

/// The stored context (a JSON array of passages) as passages to show.
pub fn context_passages(context: Option<&str>) -> Vec<String> {
    let Some(raw) = context else { return vec![] };
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Array(items)) => items
            .iter()
            .map(|p| match p.get("text").or_else(|| p.get("content")) {
                Some(v) => content_text(v),
                None => content_text(p),
            })
            .collect(),
        Ok(other) => vec![content_text(&other)],
        Err(_) => vec![raw.to_string()],
    }
}

pub fn build_response(r: &ResponseRow, scores: &[ScoreDetail]) -> ResponseView {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let opt_n = |v: Option<i64>| v.map_or_else(|| "—".into(), |n| n.to_string());
    ResponseView {
        id: r.id,
        stream: r.stream.clone(),
        stream_href: format!("/streams/{}", enc(&r.stream)),
        when: fmt_time(r.ts_ms),
        input: input_messages(r.input.as_deref()),
        context: context_passages(r.context.as_deref()),
        output: r.output.clone(),
        signals: vec![
            ("output tokens".into(), r.output_tokens.to_string()),
            ("input tokens".into(), opt_n(r.input_tokens)),
            (
                "refusal".into(),
                if r.refusal { "yes" } else { "no" }.into(),
            ),
            ("finish reason".into(), opt(&r.finish_reason)),
            ("requested model".into(), opt(&r.request_model)),
            ("response model".into(), opt(&r.response_model)),
            ("fingerprint".into(), opt(&r.system_fingerprint)),
            (
                "latency".into(),
                r.latency_ms.map_or("—".into(), |l| format!("{l} ms")),
            ),
            ("prompt version".into(), opt(&r.prompt_version)),
            ("session".into(), opt(&r.session_id)),
            ("external id".into(), opt(&r.ext_id)),
        ],
        scores: scores
            .iter()
            .map(|s| ScoreView {
                judge: format!("{} v{}", s.judge, s.judge_version),
                score: s.score.map_or_else(|| "—".into(), fmt_num),
                reasoning: s.reasoning.clone().unwrap_or_default(),
                error: s.error.clone().unwrap_or_default(),
                judge_model: opt(&s.judge_model),
            })
            .collect(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub rule: String,
    pub stream: String,
    pub stream_href: String,
    pub dimension: String,
    /// The session page, for `tool_call_loop` and `session_budget` alerts
    /// (their dimension is the session id).
    pub session_href: Option<String>,
    pub state: String,
    pub severity: String,
    pub summary: String,
    pub evidence: String,
    pub since: String,
    /// The worst examples behind the alert (open alerts only).
    pub examples: Vec<Example>,
    /// A score drop attributed to its judge's own change (`judge_drift`).
    pub judge_changed: bool,
    /// The Markdown post-mortem (`canaryd incident export`).
    pub postmortem_href: String,
    /// The triage section (open alerts only; `alert::triage::lines`).
    pub triage: Vec<crate::alert::triage::TriageLine>,
}

fn state_rank(state: &str) -> u8 {
    match state {
        "firing" => 0,
        "pending" => 1,
        _ => 2,
    }
}

/// Alerts firing first, then pending, then resolved; newest first within each.
/// `examples` maps alert ids to their evidence.
pub fn build_alerts(
    alerts: &[AlertRow],
    examples: &BTreeMap<i64, Vec<Example>>,
    now_ms: i64,
) -> Vec<AlertView> {
    build_alerts_with(alerts, examples, &BTreeMap::new(), now_ms)
}

/// [`build_alerts`] with each open alert's triage lines (by alert id).
pub fn build_alerts_with(
    alerts: &[AlertRow],
    examples: &BTreeMap<i64, Vec<Example>>,
    triage: &BTreeMap<i64, Vec<crate::alert::triage::TriageLine>>,
    now_ms: i64,
) -> Vec<AlertView> {
    let mut sorted: Vec<&AlertRow> = alerts.iter().collect();
    sorted.sort_by_key(|a| (state_rank(&a.state), -a.last_eval_ms, -a.id));
    sorted
        .into_iter()
        .map(|a| {
            let mut evidence = format!(
                "current {} vs baseline {} (threshold {}); n={} vs {}",
                fmt_num(a.value),
                fmt_num(a.baseline),
                fmt_num(a.threshold),
                a.samples,
                a.baseline_samples
            );
            if let Some(p) = a.p_value {
                evidence.push_str(&format!("; p={p:.2e}"));
            }
            let since = match a.state.as_str() {
                "resolved" => a
                    .resolved_ms
                    .map(|t| format!("resolved {}", fmt_ago(now_ms, t))),
                "firing" => a
                    .firing_ms
                    .map(|t| format!("firing since {}", fmt_ago(now_ms, t))),
                _ => a
                    .pending_ms
                    .map(|t| format!("pending since {}", fmt_ago(now_ms, t))),
            };
            AlertView {
                id: a.id,
                judge_changed: a.summary.contains(crate::signals::evaluate::JUDGE_CHANGED),
                postmortem_href: format!("/alerts/{}/postmortem.md", a.id),
                rule: a.rule.clone(),
                stream: a.stream.clone(),
                stream_href: subject_href(&a.stream),
                dimension: a.dimension.clone(),
                session_href: (crate::alert::hook::applies(&a.rule) && !a.dimension.is_empty())
                    .then(|| crate::alert::hook::session_path(&a.stream, &a.dimension)),
                state: a.state.clone(),
                severity: a.severity.clone(),
                summary: a.summary.clone(),
                evidence,
                since: since.unwrap_or_else(|| fmt_time(a.last_eval_ms)),
                examples: examples.get(&a.id).cloned().unwrap_or_default(),
                triage: triage.get(&a.id).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "detail_tests.rs"]
mod tests;
