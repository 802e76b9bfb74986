//! Read queries behind the status pages (`crate::web`).
//!
//! Every query is bounded by a time range or a `LIMIT` so a page costs the
//! same on a month-old database as on a fresh one; the charts read the
//! roll-ups, never the raw responses. Sums are cast to BIGINT because
//! PostgreSQL widens `SUM(bigint)` to NUMERIC, which does not decode as i64.

use serde::Serialize;

use super::{Db, ResponseRow, Result, Store};
use crate::on_db;

/// One row of `rollup_hourly`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HourRow {
    pub stream: String,
    pub hour_ms: i64,
    pub n: i64,
    pub refusals: i64,
    pub truncations: i64,
    pub tokens_sum: f64,
}

/// One row of `rollup_scores`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ScoreHourRow {
    pub stream: String,
    pub judge: String,
    pub hour_ms: i64,
    pub n: i64,
    pub sum: f64,
    pub sumsq: f64,
}

/// Embedding sums of one stream and hour, partial rows already added up.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingHour {
    pub hour_ms: i64,
    pub n: i64,
    /// Sum of the embeddings of the hour (not yet divided by `n`).
    pub sum: Vec<f64>,
}

/// A judged response, for the "worst recent" table.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct JudgedResponse {
    pub response_id: i64,
    pub judge: String,
    pub score: f64,
    pub ts_ms: i64,
    pub output: String,
}

/// The refusal classifier against the judges' refusal labels on one
/// stream's judged records: counts of each (classifier, judge) pair and the
/// latest disagreements.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RefusalAgreement {
    /// Both say refusal.
    pub both: i64,
    /// Neither does.
    pub neither: i64,
    /// The classifier says refusal, the judge does not.
    pub classifier_only: i64,
    /// The judge says refusal, the classifier does not.
    pub judge_only: i64,
    /// Newest first, at most the limit asked for.
    pub disagreements: Vec<RefusalDisagreement>,
}

impl RefusalAgreement {
    pub fn labelled(&self) -> i64 {
        self.both + self.neither + self.classifier_only + self.judge_only
    }
}

/// One judged record on which the classifier and a judge disagree.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RefusalDisagreement {
    pub response_id: i64,
    pub judge: String,
    /// The classifier's verdict (`responses.refusal`).
    pub classifier: bool,
    /// The judge's label (`judge_scores.refusal`).
    pub judge_says: bool,
    pub ts_ms: i64,
    pub output: String,
}

/// One judge's verdict on one response, with its reasoning.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ScoreDetail {
    pub judge: String,
    pub judge_version: i64,
    pub judge_model: Option<String>,
    pub score: Option<f64>,
    pub reasoning: Option<String>,
    pub error: Option<String>,
    pub created_ms: i64,
}

/// Per run and target: how many cases ended in each outcome.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunTargetCount {
    pub run_id: i64,
    pub target: String,
    pub outcome: String,
    pub n: i64,
}

/// A point of the detectors' health score series.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HealthPoint {
    pub stream: String,
    pub at_ms: i64,
    pub score: f64,
}

const RESPONSE_COLUMNS: &str = "id, ext_id, stream, ts_ms, received_ms, prompt_version, request_model, response_model, \
     system_fingerprint, input, context, output, finish_reason, input_tokens, output_tokens, latency_ms, session_id, \
     tool_calls, refusal, sampled, embedding";

impl Store {
    /// Whether the migrations created `table` (tables of unmerged subsystems
    /// are optional for the pages).
    pub async fn has_table(&self, table: &str) -> Result<bool> {
        let n: (i64,) = match self.db() {
            Db::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(table)
                .fetch_one(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1",
                )
                .bind(table)
                .fetch_one(pool)
                .await?
            }
        };
        Ok(n.0 > 0)
    }

    /// Production streams with roll-ups since `since_ms`, by name.
    pub async fn active_streams(&self, since_ms: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT DISTINCT stream FROM rollup_hourly WHERE hour_ms >= $1 ORDER BY stream",
        )
        .bind(since_ms)
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Whether anything was ever recorded for `stream` (decides 404).
    pub async fn stream_exists(&self, stream: &str) -> Result<bool> {
        let n: (i64,) = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 AS x FROM rollup_hourly WHERE stream = $1 LIMIT 1) a) \
             + (SELECT COUNT(*) FROM (SELECT 1 AS x FROM responses WHERE stream = $1 LIMIT 1) b)",
        )
        .bind(stream)
        .fetch_one(pool)
        .await)?;
        Ok(n.0 > 0)
    }

    /// Hourly roll-ups of `stream` (or of every stream when `None`) in `[from_ms, to_ms)`.
    pub async fn hourly_rollups(
        &self,
        stream: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<HourRow>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as::<_, HourRow>(
            "SELECT stream, hour_ms, n, refusals, truncations, tokens_sum FROM rollup_hourly \
             WHERE ($1 IS NULL OR stream = $1) AND hour_ms >= $2 AND hour_ms < $3 ORDER BY stream, hour_ms",
        )
        .bind(stream)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pool)
        .await)?)
    }

    /// Hourly judge-score moments of `stream` (or all streams) in `[from_ms, to_ms)`.
    pub async fn score_rollups(
        &self,
        stream: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ScoreHourRow>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as::<_, ScoreHourRow>(
            "SELECT stream, judge, hour_ms, n, sum, sumsq FROM rollup_scores \
             WHERE ($1 IS NULL OR stream = $1) AND hour_ms >= $2 AND hour_ms < $3 ORDER BY stream, judge, hour_ms",
        )
        .bind(stream)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pool)
        .await)?)
    }

    /// The output-length histogram of `stream` over `[from_ms, to_ms)`: (bin, count).
    pub async fn length_histogram(
        &self,
        stream: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, i64)>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as::<_, (i64, i64)>(
            "SELECT bin, CAST(SUM(n) AS BIGINT) FROM rollup_length \
             WHERE stream = $1 AND hour_ms >= $2 AND hour_ms < $3 GROUP BY bin ORDER BY bin",
        )
        .bind(stream)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pool)
        .await)?)
    }

    /// Embedding sums of `stream` per hour in `[from_ms, to_ms)`. Rows whose
    /// dimension disagrees with the first one seen are skipped (a changed
    /// embedding model makes old and new sums incomparable).
    pub async fn embedding_rollups(
        &self,
        stream: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<EmbeddingHour>> {
        let rows: Vec<(i64, i64, i64, Vec<u8>)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT hour_ms, n, dims, sum FROM rollup_embedding \
             WHERE stream = $1 AND hour_ms >= $2 AND hour_ms < $3 ORDER BY hour_ms, id",
        )
        .bind(stream)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pool)
        .await)?;
        let mut out: Vec<EmbeddingHour> = Vec::new();
        let mut dims_seen: Option<usize> = None;
        for (hour_ms, n, dims, blob) in rows {
            let dims = usize::try_from(dims).unwrap_or(0);
            if dims == 0 || blob.len() != dims * 8 || *dims_seen.get_or_insert(dims) != dims {
                continue;
            }
            let values = blob
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")));
            match out.last_mut() {
                Some(last) if last.hour_ms == hour_ms => {
                    last.n += n;
                    last.sum.iter_mut().zip(values).for_each(|(a, b)| *a += b);
                }
                _ => out.push(EmbeddingHour {
                    hour_ms,
                    n,
                    sum: values.collect(),
                }),
            }
        }
        Ok(out)
    }

    /// The lowest-scored judged responses of `stream` since `since_ms`.
    pub async fn worst_judged(
        &self,
        stream: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<JudgedResponse>> {
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, JudgedResponse>(
            "SELECT s.response_id, s.judge, s.score, s.ts_ms, r.output FROM judge_scores s \
             JOIN responses r ON r.id = s.response_id \
             WHERE s.stream = $1 AND s.ts_ms >= $2 AND s.score IS NOT NULL \
             ORDER BY s.score, s.ts_ms DESC, s.id LIMIT $3",
        )
        .bind(stream)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(pool)
        .await)?,
        )
    }

    /// The classifier's refusal verdicts against the judges' labels on the
    /// records of `stream` judged since `since_ms` (sampled production
    /// records only; a record labelled by two judges counts twice), with the
    /// `limit` latest disagreements.
    pub async fn refusal_agreement(
        &self,
        stream: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<RefusalAgreement> {
        let counts: Vec<(bool, bool, i64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT r.refusal, s.refusal, COUNT(*) FROM judge_scores s JOIN responses r ON r.id = s.response_id \
             WHERE s.stream = $1 AND s.ts_ms >= $2 AND s.source = 'judge' AND s.refusal IS NOT NULL \
             GROUP BY r.refusal, s.refusal",
        )
        .bind(stream)
        .bind(since_ms)
        .fetch_all(pool)
        .await)?;
        let mut out = RefusalAgreement::default();
        for (classifier, judge, n) in counts {
            match (classifier, judge) {
                (true, true) => out.both += n,
                (false, false) => out.neither += n,
                (true, false) => out.classifier_only += n,
                (false, true) => out.judge_only += n,
            }
        }
        out.disagreements = on_db!(self.db(), pool => sqlx::query_as::<_, RefusalDisagreement>(
            "SELECT s.response_id, s.judge, r.refusal AS classifier, s.refusal AS judge_says, s.ts_ms, r.output \
             FROM judge_scores s JOIN responses r ON r.id = s.response_id \
             WHERE s.stream = $1 AND s.ts_ms >= $2 AND s.source = 'judge' AND s.refusal IS NOT NULL \
             AND r.refusal <> s.refusal ORDER BY s.ts_ms DESC, s.id DESC LIMIT $3",
        )
        .bind(stream)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(out)
    }

    /// One stored response by id.
    pub async fn response_by_id(&self, id: i64) -> Result<Option<ResponseRow>> {
        let sql = format!("SELECT {RESPONSE_COLUMNS} FROM responses WHERE id = $1");
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, ResponseRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// Every judge's verdict on response `id`.
    pub async fn response_scores(&self, id: i64) -> Result<Vec<ScoreDetail>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as::<_, ScoreDetail>(
            "SELECT judge, judge_version, judge_model, score, reasoning, error, created_ms FROM judge_scores \
             WHERE response_id = $1 ORDER BY judge, id",
        )
        .bind(id)
        .fetch_all(pool)
        .await)?)
    }

    /// Every suite that has ever run, by name.
    pub async fn suite_names(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT DISTINCT suite FROM canary_runs ORDER BY suite",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Outcome counts per target for the runs of `suite` with id ≥ `min_run_id`.
    pub async fn run_target_counts(
        &self,
        suite: &str,
        min_run_id: i64,
    ) -> Result<Vec<RunTargetCount>> {
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, RunTargetCount>(
            "SELECT run_id, target, outcome, COUNT(*) AS n FROM canary_results \
             WHERE suite = $1 AND run_id >= $2 GROUP BY run_id, target, outcome ORDER BY run_id, target, outcome",
        )
        .bind(suite)
        .bind(min_run_id)
        .fetch_all(pool)
        .await)?,
        )
    }

    /// The most recent model-change event per scope, for scopes starting with
    /// `stream:` or `suite:`.
    pub async fn latest_model_events(&self) -> Result<Vec<super::ModelEvent>> {
        Ok(super::models::events(
            on_db!(self.db(), pool => sqlx::query_as::<_, super::models::ModelEventRow>(
            "SELECT e.id, e.at_ms, e.scope, e.requested_model, e.old_model, e.new_model, e.old_fingerprint, e.new_fingerprint \
             FROM model_events e JOIN (SELECT scope, MAX(id) AS id FROM model_events GROUP BY scope) m ON m.id = e.id \
             ORDER BY e.scope",
        )
        .fetch_all(pool)
        .await)?,
        ))
    }

    /// The detectors' health scores since `since_ms` (only when the
    /// `health_scores` table exists).
    pub async fn health_scores(&self, since_ms: i64) -> Result<Vec<HealthPoint>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as::<_, HealthPoint>(
            "SELECT stream, at_ms, score FROM health_scores WHERE at_ms >= $1 ORDER BY stream, at_ms",
        )
        .bind(since_ms)
        .fetch_all(pool)
        .await)?)
    }
}
