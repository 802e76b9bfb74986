//! Equality samples and tests (migration 0014; `crate::equality` says what
//! they are). Samples are stored in the transaction that stores the run's
//! tests, so a run's test and the samples behind it appear together.

use super::BeginWrite;
use super::{Result, Store, StoreError};
use crate::equality::mmd::CaseTest;
use crate::on_db;
use crate::signals::model_drift::EqualityObs;

/// One sampled answer to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSample {
    pub case_id: String,
    pub target: String,
    pub answer: String,
}

/// One test to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEqualityTest {
    pub target: String,
    pub reference: String,
    pub p_value: f64,
    pub log_e: f64,
    pub threshold: f64,
    pub cases: u64,
    pub top: Vec<CaseTest>,
}

/// At most this many history samples are read per (suite, target) and run.
pub const MAX_HISTORY_ROWS: i64 = 20_000;

type TestRow = (i64, String, String, i64, f64, f64, f64, i64, String);

impl Store {
    /// Stores a run's samples and tests in one transaction.
    pub async fn record_equality(
        &self,
        suite: &str,
        run_id: i64,
        at_ms: i64,
        samples: &[NewSample],
        tests: &[NewEqualityTest],
    ) -> Result<()> {
        let tops: Vec<String> = tests
            .iter()
            .map(|t| serde_json::to_string(&t.top).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<_>>()?;
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            for s in samples {
                sqlx::query(
                    "INSERT INTO equality_samples (run_id, suite, case_id, target, answer, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(run_id).bind(suite).bind(&s.case_id).bind(&s.target).bind(&s.answer).bind(at_ms)
                .execute(&mut *tx).await?;
            }
            for (t, top) in tests.iter().zip(&tops) {
                sqlx::query(
                    "INSERT INTO equality_tests (run_id, suite, target, reference, at_ms, p_value, log_e, threshold, cases, top) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (run_id, target, reference) DO NOTHING",
                )
                .bind(run_id).bind(suite).bind(&t.target).bind(&t.reference).bind(at_ms)
                .bind(t.p_value).bind(t.log_e).bind(t.threshold).bind(t.cases as i64).bind(top)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// `target`'s own samples of `suite` created in `[from_ms, to_ms)`, as
    /// (case, answer), the latest [`MAX_HISTORY_ROWS`] at most.
    pub async fn equality_history(
        &self,
        suite: &str,
        target: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, String)>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as(
            "SELECT case_id, answer FROM equality_samples WHERE suite = $1 AND target = $2 AND created_ms >= $3 AND created_ms < $4 \
             ORDER BY created_ms DESC, id DESC LIMIT $5",
        ).bind(suite).bind(target).bind(from_ms).bind(to_ms).bind(MAX_HISTORY_ROWS).fetch_all(pool).await)?)
    }

    /// Samples of `suite` stored since `since_ms` (the daily budget).
    pub async fn equality_samples_since(&self, suite: &str, since_ms: i64) -> Result<u64> {
        let n: (i64,) = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT COUNT(*) FROM equality_samples WHERE suite = $1 AND created_ms >= $2",
        ).bind(suite).bind(since_ms).fetch_one(pool).await)?;
        Ok(n.0.max(0) as u64)
    }

    /// Deletes up to `batch` samples of `suite` older than `before_ms`
    /// (past every history reference); returns how many.
    pub async fn prune_equality_samples(
        &self,
        suite: &str,
        before_ms: i64,
        batch: i64,
    ) -> Result<u64> {
        let r = on_db!(self.db(), pool => sqlx::query(
            "DELETE FROM equality_samples WHERE id IN (SELECT id FROM equality_samples WHERE suite = $1 AND created_ms < $2 ORDER BY id LIMIT $3)",
        ).bind(suite).bind(before_ms).bind(batch).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(r)
    }

    /// Equality tests of every suite with `at_ms` in `[from_ms, to_ms)`.
    pub async fn equality_tests(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, EqualityObs)>> {
        let rows: Vec<(String, TestRow)> = on_db!(self.db(), pool => sqlx::query_as::<_, (String, i64, String, String, i64, f64, f64, f64, i64, String)>(
            "SELECT suite, run_id, target, reference, at_ms, p_value, log_e, threshold, cases, top FROM equality_tests \
             WHERE at_ms >= $1 AND at_ms < $2 ORDER BY suite, at_ms, id",
        ).bind(from_ms).bind(to_ms).fetch_all(pool).await)?
        .into_iter()
        .map(|(s, a, b, c, d, e, f, g, h, i)| (s, (a, b, c, d, e, f, g, h, i)))
        .collect();
        rows.into_iter()
            .map(
                |(
                    suite,
                    (run_id, target, reference, at_ms, p_value, log_e, threshold, cases, top),
                )| {
                    let top: Vec<CaseTest> = serde_json::from_str(&top)
                        .map_err(|e| StoreError::Corrupt(format!("equality_tests.top: {e}")))?;
                    Ok((
                        suite,
                        EqualityObs {
                            run_id,
                            target,
                            reference,
                            at_ms,
                            p_value,
                            log_e,
                            threshold,
                            cases: cases.max(0) as u64,
                            top,
                        },
                    ))
                },
            )
            .collect()
    }

    /// The latest test of (`suite`, `target`) in `[since_ms, now_ms]` with
    /// the smallest p-value: the evidence of a `model_drift` alert.
    pub async fn equality_evidence(
        &self,
        suite: &str,
        target: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<Option<(String, Vec<CaseTest>)>> {
        let row: Option<(String, String)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT reference, top FROM equality_tests WHERE suite = $1 AND target = $2 AND at_ms >= $3 AND at_ms <= $4 \
             ORDER BY p_value, at_ms DESC, id DESC LIMIT 1",
        ).bind(suite).bind(target).bind(since_ms).bind(now_ms).fetch_optional(pool).await)?;
        row.map(|(reference, top)| {
            serde_json::from_str(&top)
                .map(|t| (reference, t))
                .map_err(|e| StoreError::Corrupt(format!("equality_tests.top: {e}")))
        })
        .transpose()
    }
}
