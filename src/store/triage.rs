//! Reads behind an alert's triage section (`alert::triage`): the records of
//! a stream in the alert's window and in the baseline before it, reduced to
//! the small columns the triage questions need (model, prompt version,
//! finish reason, token budget, retrieval context size, labels, tool calls),
//! the judged ones with their score, when each prompt version was first
//! seen, the stream's model changes and the sessions whose alerts fired.
//!
//! Every read is bounded: the latest `limit` records of each period (a
//! sample of the period when it holds more), aggregates grouped by a
//! bounded key, and `LIMIT`s. Texts are never read: the context's size and
//! passage count are computed by the database.

use super::{Db, ModelEvent, Result, Store};
use crate::on_db;

/// One record as the triage reads it.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct TriageRow {
    pub ts_ms: i64,
    pub response_model: Option<String>,
    pub system_fingerprint: Option<String>,
    pub prompt_version: Option<String>,
    pub finish_reason: Option<String>,
    pub output_tokens: i64,
    pub max_tokens: Option<i64>,
    pub refusal: bool,
    /// Characters of the stored context (a JSON array), `None` without context.
    pub context_chars: Option<i64>,
    /// Passages in the context.
    pub passages: Option<i64>,
    /// The application's labels (a JSON object of strings).
    pub labels: Option<String>,
    pub session_id: Option<String>,
    /// The record's tool calls as sent (JSON).
    pub tool_calls: Option<String>,
    /// The judge's score (only in [`TriageData::judged`]).
    pub score: Option<f64>,
}

/// What to read: the periods and the judges whose scores are localised.
#[derive(Debug, Clone, PartialEq)]
pub struct TriageQuery {
    pub stream: String,
    /// The baseline is `[baseline_from_ms, window_from_ms)`, the window
    /// `[window_from_ms, to_ms]`.
    pub baseline_from_ms: i64,
    pub window_from_ms: i64,
    pub to_ms: i64,
    /// Judges of the firing `judge_score_drop` alerts.
    pub judges: Vec<String>,
    /// Most records read per period (and per judge and period).
    pub limit: i64,
}

/// A session of the stream, active in the window, whose session alerts fired.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FiredSession {
    pub session_id: String,
    /// Rules that fired for it, comma-separated (`tool_call_loop`).
    pub fired: String,
    pub calls: i64,
}

/// Everything the triage section is computed from (`alert::triage::lines`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriageData {
    pub stream: String,
    pub baseline_from_ms: i64,
    pub window_from_ms: i64,
    pub to_ms: i64,
    /// The latest records of the window and of the baseline, newest first.
    pub window: Vec<TriageRow>,
    pub baseline: Vec<TriageRow>,
    /// Per judge: its scored records of the window and of the baseline.
    pub judged: Vec<(String, Vec<TriageRow>, Vec<TriageRow>)>,
    /// Prompt versions seen from the baseline's start on, with the time
    /// each was first seen in that span.
    pub first_seen: Vec<(String, i64)>,
    /// The stream's model changes from the baseline's start on, oldest first.
    pub model_events: Vec<ModelEvent>,
    /// Sessions active in the window whose session alerts fired.
    pub fired_sessions: Vec<FiredSession>,
}

/// Most prompt versions and fired sessions read.
const MAX_VERSIONS: i64 = 50;
const MAX_SESSIONS: i64 = 20;

impl Store {
    /// The records and facts behind the triage of `q.stream`'s alerts.
    pub async fn triage_data(&self, q: &TriageQuery) -> Result<TriageData> {
        let passages = match self.db() {
            Db::Sqlite(_) => "json_array_length(r.context)",
            Db::Postgres(_) => "json_array_length(r.context::json)",
        };
        let columns = format!(
            "r.ts_ms, r.response_model, r.system_fingerprint, r.prompt_version, r.finish_reason, \
             r.output_tokens, r.max_tokens, r.refusal, CAST(LENGTH(r.context) AS BIGINT) AS context_chars, \
             CAST({passages} AS BIGINT) AS passages, r.labels, r.session_id, r.tool_calls"
        );
        let rows_sql = format!(
            "SELECT {columns}, CAST(NULL AS DOUBLE PRECISION) AS score FROM responses r \
             WHERE r.stream = $1 AND r.ts_ms >= $2 AND r.ts_ms <= $3 ORDER BY r.ts_ms DESC LIMIT $4"
        );
        let judged_sql = format!(
            "SELECT {columns}, s.score FROM judge_scores s JOIN responses r ON r.id = s.response_id \
             WHERE s.stream = $1 AND s.judge = $5 AND s.score IS NOT NULL AND s.ts_ms >= $2 AND s.ts_ms <= $3 \
             ORDER BY s.ts_ms DESC LIMIT $4"
        );
        let periods = [
            (q.window_from_ms, q.to_ms),
            (q.baseline_from_ms, q.window_from_ms - 1),
        ];
        let mut sides: Vec<Vec<TriageRow>> = Vec::new();
        for (from, to) in periods {
            let rows: Vec<TriageRow> = on_db!(self.db(), pool => sqlx::query_as(sqlx::AssertSqlSafe(rows_sql.clone()))
                .bind(&q.stream).bind(from).bind(to).bind(q.limit).fetch_all(pool).await)?;
            sides.push(rows);
        }
        let mut judged = Vec::new();
        for judge in &q.judges {
            let mut pair: Vec<Vec<TriageRow>> = Vec::new();
            for (from, to) in periods {
                let rows: Vec<TriageRow> = on_db!(self.db(), pool => sqlx::query_as(sqlx::AssertSqlSafe(judged_sql.clone()))
                    .bind(&q.stream).bind(from).bind(to).bind(q.limit).bind(judge).fetch_all(pool).await)?;
                pair.push(rows);
            }
            let baseline = pair.pop().unwrap_or_default();
            let window = pair.pop().unwrap_or_default();
            judged.push((judge.clone(), window, baseline));
        }
        let first_seen: Vec<(String, i64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT prompt_version, MIN(ts_ms) FROM responses \
             WHERE stream = $1 AND ts_ms >= $2 AND ts_ms <= $3 AND prompt_version IS NOT NULL \
             GROUP BY prompt_version ORDER BY MIN(ts_ms) DESC LIMIT $4",
        )
        .bind(&q.stream).bind(q.baseline_from_ms).bind(q.to_ms).bind(MAX_VERSIONS)
        .fetch_all(pool).await)?;
        let scope = format!("stream:{}", q.stream);
        let mut model_events = self.model_events(&scope, q.baseline_from_ms).await?;
        model_events.retain(|e| e.scope == scope && e.at_ms <= q.to_ms);
        let fired_sessions: Vec<FiredSession> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT session_id, fired, calls FROM sessions \
             WHERE stream = $1 AND last_ms >= $2 AND first_ms <= $3 AND fired <> '' \
             ORDER BY last_ms DESC LIMIT $4",
        )
        .bind(&q.stream).bind(q.window_from_ms).bind(q.to_ms).bind(MAX_SESSIONS)
        .fetch_all(pool).await)?;
        let baseline = sides.pop().unwrap_or_default();
        let window = sides.pop().unwrap_or_default();
        Ok(TriageData {
            stream: q.stream.clone(),
            baseline_from_ms: q.baseline_from_ms,
            window_from_ms: q.window_from_ms,
            to_ms: q.to_ms,
            window,
            baseline,
            judged,
            first_seen,
            model_events,
            fired_sessions,
        })
    }
}
