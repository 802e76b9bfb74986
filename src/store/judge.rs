//! The durable judge queue, judge scores and judge spend.
//!
//! Claiming is one statement on both backends (PostgreSQL adds `FOR UPDATE
//! SKIP LOCKED` so replicas never take the same job); a claim is a lease
//! that expires, so a dead worker's jobs are taken over. A job is finished
//! only by the worker that still holds it, and `judge_scores`' unique
//! (response_id, judge) index makes a second score impossible, so a job
//! interrupted at any point is scored exactly once.

use super::BeginWrite;
use super::rollups::{BatchRollup, upsert_score_rollups};
use super::{Db, Result, Store};
use crate::on_db;
use crate::signals::judge_drift::JudgeCanaryObs;

/// Which anchor pair a judge canary score is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgeAnchor {
    /// Index of the pair in the judge file.
    pub pair: i64,
    pub expected: f64,
    pub tolerance: f64,
}

/// A claimed judge job.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JudgeJob {
    pub id: i64,
    pub response_id: i64,
    pub judge: String,
    pub stream: String,
    pub ts_ms: i64,
    /// Attempts including this one.
    pub attempts: i64,
}

/// What a judge produced: a score, or an error (never both).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JudgeOutcome {
    pub judge_version: i64,
    pub judge_model: Option<String>,
    pub score: Option<f64>,
    pub reasoning: Option<String>,
    /// The judge's refusal label (`None`: none given).
    pub refusal: Option<bool>,
    pub error: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
}

/// Jobs by status, for `status` and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub skipped: i64,
}

const DAY_MS: i64 = 86_400_000;

/// Adds a reservation to the day's spend only when it stays within both
/// budgets: one conditional statement, so concurrent reservations can
/// never exceed them together.
const RESERVE_SQL: &str = "INSERT INTO judge_spend (day_ms, tokens, usd) SELECT $1, $2, $3 WHERE $2 <= $4 AND $3 <= $5 \
     ON CONFLICT (day_ms) DO UPDATE SET tokens = judge_spend.tokens + excluded.tokens, usd = judge_spend.usd + excluded.usd \
     WHERE judge_spend.tokens + excluded.tokens <= $4 AND judge_spend.usd + excluded.usd <= $5";

impl Store {
    /// Claims up to `limit` jobs that are due, or whose lease expired, with
    /// attempts left. Every claim counts as an attempt; first the expired
    /// leases are settled ([`Store::expire_judge_leases`]), so a job whose
    /// worker keeps dying or stalling is parked after `max_attempts` claims
    /// instead of being paid for again and again.
    pub async fn claim_judge_jobs(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        max_attempts: i64,
    ) -> Result<Vec<JudgeJob>> {
        self.expire_judge_leases(now_ms, max_attempts).await?;
        let sql = match self.db() {
            Db::Sqlite(_) => {
                "UPDATE judge_jobs SET status = 'running', lease_owner = $1, lease_expires_ms = $2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM judge_jobs WHERE ((status = 'pending' AND not_before_ms <= $3) \
                 OR (status = 'running' AND lease_expires_ms < $3)) AND attempts < $5 ORDER BY id LIMIT $4) \
                 RETURNING id, response_id, judge, stream, ts_ms, attempts"
            }
            Db::Postgres(_) => {
                "UPDATE judge_jobs SET status = 'running', lease_owner = $1, lease_expires_ms = $2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM judge_jobs WHERE ((status = 'pending' AND not_before_ms <= $3) \
                 OR (status = 'running' AND lease_expires_ms < $3)) AND attempts < $5 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, response_id, judge, stream, ts_ms, attempts"
            }
        };
        let mut jobs = on_db!(self.db(), pool => sqlx::query_as::<_, JudgeJob>(sql)
            .bind(owner)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(limit)
            .bind(max_attempts)
            .fetch_all(pool)
            .await)?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Settles jobs whose lease expired: gives back the spend their call
    /// reserved (nothing was reported for it), and parks as `failed`, with
    /// their last error, those that used every attempt. Returns how many
    /// were parked. Each give-back is a compare-and-set on the job row, so
    /// replicas settling at once give it back once.
    pub async fn expire_judge_leases(&self, now_ms: i64, max_attempts: i64) -> Result<u64> {
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            let expired: Vec<(i64, i64, i64, f64)> = sqlx::query_as(
                "SELECT id, reserved_day_ms, reserved_tokens, reserved_usd FROM judge_jobs \
                 WHERE status = 'running' AND lease_expires_ms < $1 AND reserved_day_ms IS NOT NULL",
            )
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            for (id, day, tokens, usd) in &expired {
                let taken = sqlx::query(
                    "UPDATE judge_jobs SET reserved_day_ms = NULL, reserved_tokens = 0, reserved_usd = 0 \
                     WHERE id = $1 AND reserved_day_ms = $2 AND status = 'running' AND lease_expires_ms < $3",
                )
                .bind(id)
                .bind(day)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken == 1 {
                    sqlx::query("UPDATE judge_spend SET tokens = tokens - $1, usd = usd - $2 WHERE day_ms = $3")
                        .bind(tokens)
                        .bind(usd)
                        .bind(day)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let parked = sqlx::query(
                "UPDATE judge_jobs SET status = 'failed', finished_ms = $1, lease_owner = NULL, lease_expires_ms = NULL, \
                 last_error = COALESCE(last_error || '; ', '') || 'lease expired on attempt ' || CAST(attempts AS TEXT) || ', the last allowed' \
                 WHERE status = 'running' AND lease_expires_ms < $1 AND attempts >= $2",
            )
            .bind(now_ms)
            .bind(max_attempts)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(parked)
        })
    }

    /// Extends the leases of jobs `owner` still holds to `until_ms` (the
    /// worker's heartbeat while their calls are in flight).
    pub async fn renew_judge_leases(&self, owner: &str, ids: &[i64], until_ms: i64) -> Result<()> {
        for id in ids {
            on_db!(self.db(), pool => sqlx::query(
                "UPDATE judge_jobs SET lease_expires_ms = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
            )
            .bind(until_ms)
            .bind(*id)
            .bind(owner)
            .execute(pool)
            .await
            .map(|_| ()))?;
        }
        Ok(())
    }

    /// Reserves an upper bound of a held job's call against the day's budget
    /// and notes it on the job, in one transaction: true when it fits.
    /// False as well, reserving nothing, when the lease was lost.
    #[allow(clippy::too_many_arguments)]
    pub async fn reserve_job_spend(
        &self,
        job: &JudgeJob,
        owner: &str,
        now_ms: i64,
        tokens: i64,
        usd: f64,
        max_tokens: i64,
        max_usd: f64,
    ) -> Result<bool> {
        let day = now_ms.div_euclid(DAY_MS) * DAY_MS;
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            let fits = sqlx::query(RESERVE_SQL)
                .bind(day)
                .bind(tokens)
                .bind(usd)
                .bind(max_tokens)
                .bind(max_usd)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            let held = fits
                && sqlx::query(
                    "UPDATE judge_jobs SET reserved_day_ms = $1, reserved_tokens = $2, reserved_usd = $3 \
                     WHERE id = $4 AND lease_owner = $5 AND status = 'running'",
                )
                .bind(day)
                .bind(tokens)
                .bind(usd)
                .bind(job.id)
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
            if held {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(held)
        })
    }

    /// Replaces a job's reservation with what its call actually cost (the
    /// provider's reported usage, or nothing). A reservation already given
    /// back because the lease expired is not given back twice; the actual
    /// cost is charged to today either way.
    pub async fn settle_job_spend(
        &self,
        job: &JudgeJob,
        owner: &str,
        now_ms: i64,
        tokens: i64,
        usd: f64,
    ) -> Result<()> {
        let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            let held: Option<(i64, i64, f64)> = sqlx::query_as(
                "SELECT reserved_day_ms, reserved_tokens, reserved_usd FROM judge_jobs \
                 WHERE id = $1 AND lease_owner = $2 AND reserved_day_ms IS NOT NULL",
            )
            .bind(job.id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((day, rt, ru)) = held {
                let taken = sqlx::query(
                    "UPDATE judge_jobs SET reserved_day_ms = NULL, reserved_tokens = 0, reserved_usd = 0 \
                     WHERE id = $1 AND lease_owner = $2 AND reserved_day_ms = $3",
                )
                .bind(job.id)
                .bind(owner)
                .bind(day)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken == 1 {
                    sqlx::query("UPDATE judge_spend SET tokens = tokens - $1, usd = usd - $2 WHERE day_ms = $3")
                        .bind(rt)
                        .bind(ru)
                        .bind(day)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if tokens != 0 || usd != 0.0 {
                sqlx::query(
                    "INSERT INTO judge_spend (day_ms, tokens, usd) VALUES ($1, $2, $3) \
                     ON CONFLICT (day_ms) DO UPDATE SET tokens = judge_spend.tokens + excluded.tokens, usd = judge_spend.usd + excluded.usd",
                )
                .bind(today)
                .bind(tokens)
                .bind(usd)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records the outcome of a job still held by `owner` and closes it
    /// (`done` for a score or a judge error, `failed` for a final provider
    /// error). Returns false, storing nothing, when the lease was lost.
    pub async fn finish_judge_job(
        &self,
        job: &JudgeJob,
        owner: &str,
        outcome: &JudgeOutcome,
        final_status: &str,
        now_ms: i64,
    ) -> Result<bool> {
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            let held = sqlx::query(
                "UPDATE judge_jobs SET status = $1, finished_ms = $2, last_error = $3, lease_expires_ms = NULL \
                 WHERE id = $4 AND lease_owner = $5 AND status = 'running'",
            )
            .bind(final_status)
            .bind(now_ms)
            .bind(&outcome.error)
            .bind(job.id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if held == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            let inserted = sqlx::query(
                "INSERT INTO judge_scores (response_id, stream, ts_ms, judge, judge_version, judge_model, score, reasoning, \
                 error, input_tokens, output_tokens, cost_usd, source, created_ms, refusal) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'judge', $13, $14) \
                 ON CONFLICT (response_id, judge) WHERE response_id IS NOT NULL DO NOTHING",
            )
            .bind(job.response_id)
            .bind(&job.stream)
            .bind(job.ts_ms)
            .bind(&job.judge)
            .bind(outcome.judge_version)
            .bind(&outcome.judge_model)
            .bind(outcome.score)
            .bind(&outcome.reasoning)
            .bind(&outcome.error)
            .bind(outcome.input_tokens)
            .bind(outcome.output_tokens)
            .bind(outcome.cost_usd)
            .bind(now_ms)
            .bind(outcome.refusal)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 && let Some(score) = outcome.score {
                let mut roll = BatchRollup::default();
                roll.add_score(&job.stream, &job.judge, job.ts_ms, score);
                upsert_score_rollups!(&mut *tx, &roll.scores);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Puts a held job back in the queue, due at `not_before_ms`.
    pub async fn retry_judge_job(
        &self,
        job: &JudgeJob,
        owner: &str,
        not_before_ms: i64,
        error: &str,
    ) -> Result<()> {
        on_db!(self.db(), pool => sqlx::query(
            "UPDATE judge_jobs SET status = 'pending', not_before_ms = $1, last_error = $2, lease_owner = NULL, lease_expires_ms = NULL \
             WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
        )
        .bind(not_before_ms)
        .bind(error)
        .bind(job.id)
        .bind(owner)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Closes a held job without a score row (its record is gone, or the
    /// daily budget is spent).
    pub async fn skip_judge_job(
        &self,
        job: &JudgeJob,
        owner: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<()> {
        on_db!(self.db(), pool => sqlx::query(
            "UPDATE judge_jobs SET status = 'skipped', last_error = $1, finished_ms = $2, lease_expires_ms = NULL \
             WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
        )
        .bind(reason)
        .bind(now_ms)
        .bind(job.id)
        .bind(owner)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Reserves an upper bound of a call's cost against the day's budget, in
    /// one conditional statement: true when it fits (and is now counted).
    pub async fn reserve_judge_spend(
        &self,
        now_ms: i64,
        tokens: i64,
        usd: f64,
        max_tokens: i64,
        max_usd: f64,
    ) -> Result<bool> {
        let day = now_ms.div_euclid(DAY_MS) * DAY_MS;
        let n = on_db!(self.db(), pool => sqlx::query(
            RESERVE_SQL,
        )
        .bind(day)
        .bind(tokens)
        .bind(usd)
        .bind(max_tokens)
        .bind(max_usd)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Corrects a reservation to what a call actually cost (deltas are ≤ 0
    /// when the reservation was an upper bound).
    pub async fn adjust_judge_spend(&self, now_ms: i64, tokens: i64, usd: f64) -> Result<()> {
        let day = now_ms.div_euclid(DAY_MS) * DAY_MS;
        on_db!(self.db(), pool => sqlx::query(
            "UPDATE judge_spend SET tokens = tokens + $1, usd = usd + $2 WHERE day_ms = $3",
        )
        .bind(tokens)
        .bind(usd)
        .bind(day)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Today's judge spend (tokens, USD).
    pub async fn judge_spend(&self, now_ms: i64) -> Result<(i64, f64)> {
        let day = now_ms.div_euclid(DAY_MS) * DAY_MS;
        let row: Option<(i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT tokens, usd FROM judge_spend WHERE day_ms = $1",
        )
        .bind(day)
        .fetch_optional(pool)
        .await)?;
        Ok(row.unwrap_or((0, 0.0)))
    }

    /// Stores the result of a judge canary (a fixed pair with a known
    /// expected score) as a `canary` score of stream `judge:<name>`, with
    /// the pair's index, expected score and tolerance (read by `judge_drift`).
    pub async fn insert_judge_canary_score(
        &self,
        judge: &str,
        ts_ms: i64,
        anchor: &JudgeAnchor,
        outcome: &JudgeOutcome,
    ) -> Result<()> {
        on_db!(self.db(), pool => sqlx::query(
            "INSERT INTO judge_scores (stream, ts_ms, judge, judge_version, judge_model, score, reasoning, error, \
             input_tokens, output_tokens, cost_usd, source, created_ms, canary_pair, canary_expected, canary_tolerance) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'canary', $2, $12, $13, $14)",
        )
        .bind(format!("judge:{judge}"))
        .bind(ts_ms)
        .bind(judge)
        .bind(outcome.judge_version)
        .bind(&outcome.judge_model)
        .bind(outcome.score)
        .bind(&outcome.reasoning)
        .bind(&outcome.error)
        .bind(outcome.input_tokens)
        .bind(outcome.output_tokens)
        .bind(outcome.cost_usd)
        .bind(anchor.pair)
        .bind(anchor.expected)
        .bind(anchor.tolerance)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Judge canary scores (with a score) in `[from_ms, to_ms)`, per judge.
    pub async fn judge_canaries(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<std::collections::BTreeMap<String, Vec<JudgeCanaryObs>>> {
        type Row = (String, i64, i64, i64, f64, f64, f64, Option<String>);
        let rows: Vec<Row> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT judge, ts_ms, judge_version, canary_pair, score, canary_expected, canary_tolerance, judge_model \
             FROM judge_scores WHERE source = 'canary' AND ts_ms >= $1 AND ts_ms < $2 AND score IS NOT NULL \
             AND canary_pair IS NOT NULL AND canary_expected IS NOT NULL AND canary_tolerance IS NOT NULL",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(pool)
        .await)?;
        let mut out: std::collections::BTreeMap<String, Vec<JudgeCanaryObs>> = Default::default();
        for (judge, at_ms, version, pair, score, expected, tolerance, model) in rows {
            out.entry(judge).or_default().push(JudgeCanaryObs {
                at_ms,
                pair: (version, pair),
                score,
                expected,
                tolerance,
                model,
            });
        }
        Ok(out)
    }

    pub async fn judge_job_counts(&self) -> Result<JobCounts> {
        let rows: Vec<(String, i64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT status, COUNT(*) FROM judge_jobs GROUP BY status",
        )
        .fetch_all(pool)
        .await)?;
        let mut c = JobCounts::default();
        for (s, n) in rows {
            match s.as_str() {
                "pending" => c.pending = n,
                "running" => c.running = n,
                "done" => c.done = n,
                "failed" => c.failed = n,
                "skipped" => c.skipped = n,
                _ => {}
            }
        }
        Ok(c)
    }
}

impl Store {
    /// Sampled responses without an embedding, after `after_id`, oldest first:
    /// (id, stream, ts_ms, output).
    pub async fn responses_to_embed(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, i64, String)>> {
        let rows = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT id, stream, ts_ms, output FROM responses WHERE id > $1 AND sampled AND embedding IS NULL ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(rows)
    }

    /// Stores computed embeddings and adds them to `rollup_embedding` (one
    /// partial-sum row per (stream, hour) of the batch), counting only rows
    /// that had none, so two replicas embedding the same row add it once.
    pub async fn store_embeddings(&self, items: &[(i64, String, i64, Vec<f32>)]) -> Result<()> {
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            let mut roll = BatchRollup::default();
            for (id, stream, ts_ms, v) in items {
                let n = sqlx::query("UPDATE responses SET embedding = $1 WHERE id = $2 AND embedding IS NULL")
                    .bind(super::embedding_bytes(v))
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    roll.add_embedding(stream, *ts_ms, v);
                }
            }
            for ((stream, hour, dims), (n, sum)) in &roll.embedding {
                sqlx::query("INSERT INTO rollup_embedding (stream, hour_ms, n, dims, sum) VALUES ($1, $2, $3, $4, $5)")
                    .bind(stream)
                    .bind(*hour)
                    .bind(*n)
                    .bind(*dims)
                    .bind(super::rollups::f64_bytes(sum))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
