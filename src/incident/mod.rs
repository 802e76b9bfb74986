//! `canaryd incident export ALERT_ID`: a Markdown post-mortem skeleton for
//! one alert — timeline, triage, the evidence records with everything
//! stored about them, and a ready-to-paste canary case built from the worst
//! example, so the corrective action ("a canary that would have caught it")
//! is one copy away.
//!
//! [`gather`] reads through `Store` (no SQL here); [`case::derive`] and
//! [`render::markdown`] are pure, so a test drives them with fixed data.
//! User and model text is never a template: the renderer fences it in
//! Markdown, and the canary case wraps a prompt that looks like Tera in a
//! `raw` block.

pub mod case;
pub mod render;

use crate::signals::Rule;
use crate::store::{
    AlertHistoryRow, AlertRow, Annotation, EvidencePick, ModelEvent, ResponseRow, ScoreDetail,
    Store, StoreError,
};

/// Records shown as evidence.
pub const MAX_RECORDS: i64 = 5;
/// Healthy answers a case's expectations are derived from.
pub const MAX_HEALTHY: i64 = 8;
/// How far before the alert's start records count as evidence.
pub const EVIDENCE_BEFORE_MS: i64 = 24 * 3_600_000;
/// Healthy answers end this long before the alert started (its change began
/// before the alarm) and reach back a week further.
pub const HEALTHY_GAP_MS: i64 = 6 * 3_600_000;
pub const HEALTHY_SPAN_MS: i64 = 7 * 24 * 3_600_000;

/// One evidence record and every judge's verdict on it.
#[derive(Debug, Clone)]
pub struct Record {
    pub row: ResponseRow,
    pub scores: Vec<ScoreDetail>,
}

/// Everything the post-mortem shows, read once.
#[derive(Debug, Clone)]
pub struct Incident {
    pub alert: AlertRow,
    pub history: Vec<AlertHistoryRow>,
    pub annotations: Vec<Annotation>,
    pub model_events: Vec<ModelEvent>,
    /// Most telling first.
    pub records: Vec<Record>,
    /// Earlier answers to the worst record's input, before the change.
    pub healthy: Vec<Record>,
    /// Lines of the triage section. Empty: the renderer builds it from
    /// the model changes and annotations (see [`render::triage_lines`]).
    pub triage: Vec<String>,
    /// Model names of the config for the case's `targets`.
    pub targets: Vec<String>,
    pub generated_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("no alert with id {0}: list them with `canaryd alerts`")]
    NoAlert(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// When the alert's episode started (pending, else firing, else last evaluated).
pub fn start_ms(a: &AlertRow) -> i64 {
    a.pending_ms.or(a.firing_ms).unwrap_or(a.last_eval_ms)
}

/// Which records are the evidence of `rule`, and the judge they are about.
pub fn pick(a: &AlertRow) -> (EvidencePick, &str) {
    match Rule::parse(&a.rule) {
        Some(Rule::JudgeScoreDrop) => (EvidencePick::WorstScored, a.dimension.as_str()),
        Some(Rule::RefusalRateShift) if a.value < a.baseline => (EvidencePick::Recent, ""),
        Some(Rule::RefusalRateShift) => (EvidencePick::Refusals, ""),
        Some(Rule::TruncationRate) => (EvidencePick::Truncated, ""),
        Some(Rule::LengthDrift) if a.value < a.baseline => (EvidencePick::Shortest, ""),
        Some(Rule::LengthDrift) => (EvidencePick::Longest, ""),
        _ => (EvidencePick::Recent, ""),
    }
}

async fn records(store: &Store, ids: &[i64]) -> Result<Vec<Record>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(row) = store.response_by_id(id).await? {
            let scores = store.response_scores(id).await?;
            out.push(Record { row, scores });
        }
    }
    Ok(out)
}

/// The configured models (name, provider model id) the case runs against:
/// those serving the worst record's requested (else response) model, else
/// the first configured model that is not a judge or embedder by name.
pub fn targets_for(inc: &Incident, models: &[(String, String)]) -> Vec<String> {
    let worst = inc.records.first().map(|r| &r.row);
    for wanted in [
        worst.and_then(|r| r.request_model.as_deref()),
        worst.and_then(|r| r.response_model.as_deref()),
    ]
    .into_iter()
    .flatten()
    {
        let hit: Vec<String> = models
            .iter()
            .filter(|(name, model)| model == wanted || name == wanted)
            .map(|(name, _)| name.clone())
            .collect();
        if !hit.is_empty() {
            return hit;
        }
    }
    models
        .iter()
        .map(|(name, _)| name)
        .find(|n| !matches!(n.as_str(), "judge" | "embedder"))
        .or(models.first().map(|(n, _)| n))
        .cloned()
        .into_iter()
        .collect()
}

/// The alert's triage section (`alert::triage`) over the records of its
/// window as it fired: from its start to its resolution (or `end`). A
/// resolved alert is read as the firing alert it was, so the lines answer
/// what its notification would have. Canary suites have no production
/// records: none.
async fn triage_lines(
    store: &Store,
    alert: &AlertRow,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<String>, IncidentError> {
    use crate::alert::triage;
    if alert.stream.starts_with("suite:") {
        return Ok(Vec::new());
    }
    let as_fired = [AlertRow {
        state: "firing".into(),
        ..alert.clone()
    }];
    let (baseline_from_ms, window_from_ms, to_ms) = triage::periods(start_ms, end_ms);
    let q = crate::store::TriageQuery {
        stream: alert.stream.clone(),
        baseline_from_ms,
        window_from_ms,
        to_ms,
        judges: triage::judges_of(&as_fired),
        limit: triage::ROW_LIMIT,
    };
    let data = store.triage_data(&q).await?;
    Ok(triage::lines(&data, &as_fired)
        .into_iter()
        .map(|l| l.text)
        .collect())
}

/// Reads what the post-mortem of alert `id` shows, at `now_ms` (the case's
/// `targets` are left empty: see [`targets_for`]).
pub async fn gather(store: &Store, id: i64, now_ms: i64) -> Result<Incident, IncidentError> {
    let alert = store
        .alert_by_id(id)
        .await?
        .ok_or(IncidentError::NoAlert(id))?;
    let history = store.alert_history(id).await?;
    let start = start_ms(&alert);
    let end = alert.resolved_ms.unwrap_or(now_ms).max(start);
    let from = start - EVIDENCE_BEFORE_MS;
    let annotations = store
        .annotations(
            Some(alert.stream.as_str()),
            from - crate::annotations::NEAR_BEFORE_MS,
            end,
            100,
        )
        .await?;
    let scope = match alert.stream.strip_prefix("suite:") {
        Some(suite) => format!("suite:{suite}:"),
        None => format!("stream:{}", alert.stream),
    };
    let mut model_events: Vec<ModelEvent> = store
        .model_events(&scope, from)
        .await?
        .into_iter()
        .filter(|e| e.at_ms <= end)
        .filter(|e| {
            alert.stream.starts_with("suite:") || e.scope == format!("stream:{}", alert.stream)
        })
        .collect();
    model_events.sort_by_key(|e| (e.at_ms, e.id));
    let triage = triage_lines(store, &alert, start, end).await?;
    let (how, judge) = pick(&alert);
    let ids = store
        .evidence_ids(&alert.stream, judge, how, from, end, MAX_RECORDS)
        .await?;
    let records = records(store, &ids).await?;
    let healthy = match records.first().and_then(|r| r.row.input.clone()) {
        Some(input) => {
            let before = start - HEALTHY_GAP_MS;
            let ids = store
                .healthy_answer_ids(
                    &alert.stream,
                    &input,
                    before - HEALTHY_SPAN_MS,
                    before,
                    MAX_HEALTHY,
                )
                .await?;
            self::records(store, &ids).await?
        }
        None => Vec::new(),
    };
    Ok(Incident {
        alert,
        history,
        annotations,
        model_events,
        records,
        healthy,
        triage,
        targets: Vec::new(),
        generated_ms: now_ms,
    })
}
