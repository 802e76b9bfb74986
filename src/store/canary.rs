//! Canary suites, runs and case results.

use serde::Serialize;

use super::BeginWrite;
use super::{Result, Store};
use crate::on_db;

/// A suite's identity as stored: results of different versions never mix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SuiteVersion {
    pub id: i64,
    pub suite: String,
    pub version: i64,
    pub content_hash: String,
    pub first_seen_ms: i64,
}

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunTrigger {
    Schedule,
    Catchup,
    Manual,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Schedule => "schedule",
            RunTrigger::Catchup => "catchup",
            RunTrigger::Manual => "manual",
        }
    }
}

/// A new run to start.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub suite: &'a str,
    pub suite_version: i64,
    pub content_hash: &'a str,
    pub trigger: RunTrigger,
    /// The cron tick this run serves; unique per suite across replicas.
    pub scheduled_for_ms: Option<i64>,
    pub owner: &'a str,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub id: i64,
    pub suite: String,
    pub suite_version: i64,
    pub content_hash: String,
    pub trigger: String,
    pub scheduled_for_ms: Option<i64>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub status: String,
    pub owner: String,
    pub cases_total: i64,
    pub passed: i64,
    pub failed: i64,
    pub provider_errors: i64,
    /// Why the run ended as it did (timeout, shutdown).
    pub note: Option<String>,
}

/// One case result to store.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct CaseResultRow {
    pub id: i64,
    pub run_id: i64,
    pub suite: String,
    pub case_id: String,
    pub target: String,
    pub requested_model: String,
    pub response_model: Option<String>,
    pub system_fingerprint: Option<String>,
    pub finish_reason: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub request: String,
    pub answer: Option<String>,
    /// pass | fail | provider_error
    pub outcome: String,
    pub verdicts: String,
    pub error: Option<String>,
    pub agrees_with_pinned: Option<bool>,
    pub created_ms: i64,
    /// Token Jaccard similarity to the baseline target's answer.
    pub similarity_to_pinned: Option<f64>,
    /// Provider attempts for this answer (1 = no retry).
    pub attempts: Option<i64>,
    /// `ProviderError::kind()`, or `judge`/`embedder`, for provider errors.
    pub error_kind: Option<String>,
}

const RUN_COLUMNS: &str = "id, suite, suite_version, content_hash, trigger, scheduled_for_ms, started_ms, finished_ms, status, owner, cases_total, passed, failed, provider_errors, note";

const RESULT_COLUMNS: &str = "id, run_id, suite, case_id, target, requested_model, response_model, system_fingerprint, finish_reason, \
     input_tokens, output_tokens, latency_ms, request, answer, outcome, verdicts, error, agrees_with_pinned, created_ms, \
     similarity_to_pinned, attempts, error_kind";

impl Store {
    /// Stores this content of a suite if it is new; returns its row either way.
    pub async fn upsert_suite_version(
        &self,
        suite: &str,
        version: i64,
        content_hash: &str,
        body: &str,
        now_ms: i64,
    ) -> Result<SuiteVersion> {
        on_db!(self.db(), pool => {
            sqlx::query(
                "INSERT INTO suite_versions (suite, version, content_hash, body, first_seen_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (suite, version, content_hash) DO NOTHING",
            )
            .bind(suite)
            .bind(version)
            .bind(content_hash)
            .bind(body)
            .bind(now_ms)
            .execute(pool)
            .await?;
            Ok(sqlx::query_as::<_, SuiteVersion>(
                "SELECT id, suite, version, content_hash, first_seen_ms FROM suite_versions \
                 WHERE suite = $1 AND version = $2 AND content_hash = $3",
            )
            .bind(suite)
            .bind(version)
            .bind(content_hash)
            .fetch_one(pool)
            .await?)
        })
    }

    /// The most recently first-seen content stored for `suite`.
    pub async fn latest_suite_version(&self, suite: &str) -> Result<Option<SuiteVersion>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as::<_, SuiteVersion>(
            "SELECT id, suite, version, content_hash, first_seen_ms FROM suite_versions \
             WHERE suite = $1 ORDER BY first_seen_ms DESC, id DESC LIMIT 1",
        )
        .bind(suite)
        .fetch_optional(pool)
        .await)?)
    }

    /// Starts a run. For a scheduled tick another replica may have taken
    /// already, returns `None`: that is how a tick runs exactly once.
    pub async fn start_run(&self, run: &NewRun<'_>) -> Result<Option<i64>> {
        let id: Option<(i64,)> = on_db!(self.db(), pool => sqlx::query_as(
            "INSERT INTO canary_runs (suite, suite_version, content_hash, trigger, scheduled_for_ms, started_ms, status, owner, heartbeat_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $6) \
             ON CONFLICT (suite, scheduled_for_ms) WHERE scheduled_for_ms IS NOT NULL DO NOTHING RETURNING id",
        )
        .bind(run.suite)
        .bind(run.suite_version)
        .bind(run.content_hash)
        .bind(run.trigger.as_str())
        .bind(run.scheduled_for_ms)
        .bind(run.now_ms)
        .bind(run.owner)
        .fetch_optional(pool)
        .await)?;
        Ok(id.map(|r| r.0))
    }

    /// Stores the results of a run and closes it in one transaction, so a run
    /// is either complete or has no results at all.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: &str,
        results: &[CaseResultRow],
        now_ms: i64,
    ) -> Result<()> {
        self.finish_run_with_note(run_id, status, None, results, now_ms)
            .await
    }

    /// [`Store::finish_run`] with a note saying why the run ended as it did.
    pub async fn finish_run_with_note(
        &self,
        run_id: i64,
        status: &str,
        note: Option<&str>,
        results: &[CaseResultRow],
        now_ms: i64,
    ) -> Result<()> {
        let passed = results.iter().filter(|r| r.outcome == "pass").count() as i64;
        let failed = results.iter().filter(|r| r.outcome == "fail").count() as i64;
        let errors = results
            .iter()
            .filter(|r| r.outcome == "provider_error")
            .count() as i64;
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            for r in results {
                sqlx::query(
                    "INSERT INTO canary_results (run_id, suite, case_id, target, requested_model, response_model, system_fingerprint, \
                     finish_reason, input_tokens, output_tokens, latency_ms, request, answer, outcome, verdicts, error, agrees_with_pinned, created_ms, \
                     similarity_to_pinned, attempts, error_kind) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
                )
                .bind(run_id)
                .bind(&r.suite)
                .bind(&r.case_id)
                .bind(&r.target)
                .bind(&r.requested_model)
                .bind(&r.response_model)
                .bind(&r.system_fingerprint)
                .bind(&r.finish_reason)
                .bind(r.input_tokens)
                .bind(r.output_tokens)
                .bind(r.latency_ms)
                .bind(&r.request)
                .bind(&r.answer)
                .bind(&r.outcome)
                .bind(&r.verdicts)
                .bind(&r.error)
                .bind(r.agrees_with_pinned)
                .bind(r.created_ms)
                .bind(r.similarity_to_pinned)
                .bind(r.attempts)
                .bind(&r.error_kind)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE canary_runs SET status = $2, finished_ms = $3, heartbeat_ms = $3, cases_total = $4, passed = $5, failed = $6, provider_errors = $7, note = $8 WHERE id = $1",
            )
            .bind(run_id)
            .bind(status)
            .bind(now_ms)
            .bind(results.len() as i64)
            .bind(passed)
            .bind(failed)
            .bind(errors)
            .bind(note)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The latest runs of a suite, newest first.
    pub async fn recent_runs(&self, suite: &str, limit: i64) -> Result<Vec<RunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM canary_runs WHERE suite = $1 ORDER BY started_ms DESC, id DESC LIMIT $2"
        );
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql))
            .bind(suite)
            .bind(limit)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Results of one run in the order they were stored (case order).
    pub async fn run_results(&self, run_id: i64) -> Result<Vec<CaseResultRow>> {
        let sql =
            format!("SELECT {RESULT_COLUMNS} FROM canary_results WHERE run_id = $1 ORDER BY id");
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, CaseResultRow>(sqlx::AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// One run by id.
    pub async fn run(&self, run_id: i64) -> Result<Option<RunRow>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM canary_runs WHERE id = $1");
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// The latest cron tick any replica started a run for, for catch-up
    /// after downtime.
    pub async fn last_scheduled_tick(&self, suite: &str) -> Result<Option<i64>> {
        let row: (Option<i64>,) = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT MAX(scheduled_for_ms) FROM canary_runs WHERE suite = $1 AND scheduled_for_ms IS NOT NULL",
        )
        .bind(suite)
        .fetch_one(pool)
        .await)?;
        Ok(row.0)
    }

    /// Marks runs still `running` whose heartbeat is older than
    /// `stale_before_ms` as `abandoned`: their process died mid-run (a live
    /// run finishes or is cancelled within its timeout). Returns how many.
    pub async fn abandon_stale_runs(&self, stale_before_ms: i64, now_ms: i64) -> Result<u64> {
        let done = on_db!(self.db(), pool => sqlx::query(
            "UPDATE canary_runs SET status = 'abandoned', finished_ms = $2, note = 'process stopped during the run' \
             WHERE status = 'running' AND heartbeat_ms < $1",
        )
        .bind(stale_before_ms)
        .bind(now_ms)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done)
    }
}
