//! Logprob probe results (`logprob_probes`, migration 0015): written once
//! per completed run, read back as each target's recent history for
//! `signals::logprob_shift`, and summed for the suite page's spend.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{BeginWrite, Result, Store};
use crate::on_db;
use crate::signals::logprob_shift::ProbeObs;

/// One probe of one target in one run.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ProbeRow {
    pub id: i64,
    pub run_id: i64,
    pub suite: String,
    pub target: String,
    pub probe_id: String,
    /// Hash of the request sent: runs are compared only under one request.
    pub prompt_hash: String,
    /// `ok`, `unsupported` (the provider returned no logprobs) or
    /// `provider_error`.
    pub status: String,
    pub token: Option<String>,
    /// JSON `[{"token", "logprob"}]`, best first.
    pub top_logprobs: Option<String>,
    pub response_model: Option<String>,
    pub system_fingerprint: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub error: Option<String>,
    pub at_ms: i64,
}

/// History older than this is never read back: a target probed less than
/// every few days has no history the test could use anyway.
const HISTORY_DAYS: i64 = 180;

impl Store {
    /// Stores the probes of one run in one transaction.
    pub async fn insert_logprob_probes(&self, rows: &[ProbeRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO logprob_probes (run_id, suite, target, probe_id, prompt_hash, status, token, top_logprobs, \
                     response_model, system_fingerprint, input_tokens, output_tokens, error, at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(r.run_id)
                .bind(&r.suite)
                .bind(&r.target)
                .bind(&r.probe_id)
                .bind(&r.prompt_hash)
                .bind(&r.status)
                .bind(&r.token)
                .bind(&r.top_logprobs)
                .bind(&r.response_model)
                .bind(&r.system_fingerprint)
                .bind(r.input_tokens)
                .bind(r.output_tokens)
                .bind(&r.error)
                .bind(r.at_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The probes of the latest `max_runs` runs of every (suite, target)
    /// probed in the last 180 days, up to `now_ms`, ordered by (suite,
    /// target, run, probe). Bounded: `max_runs` × probes per target.
    pub async fn logprob_history(&self, now_ms: i64, max_runs: i64) -> Result<Vec<ProbeRow>> {
        let from = now_ms - HISTORY_DAYS * 86_400_000;
        let pairs: Vec<(String, String)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT DISTINCT suite, target FROM logprob_probes WHERE at_ms >= $1 AND at_ms <= $2 ORDER BY suite, target LIMIT 1000",
        )
        .bind(from)
        .bind(now_ms)
        .fetch_all(pool)
        .await)?;
        let mut out = Vec::new();
        for (suite, target) in pairs {
            let rows = on_db!(self.db(), pool => sqlx::query_as::<_, ProbeRow>(
                "SELECT id, run_id, suite, target, probe_id, prompt_hash, status, token, top_logprobs, response_model, \
                 system_fingerprint, input_tokens, output_tokens, error, at_ms FROM logprob_probes \
                 WHERE suite = $1 AND target = $2 AND at_ms >= $3 AND at_ms <= $4 AND run_id >= \
                 (SELECT COALESCE(MIN(run_id), 0) FROM (SELECT DISTINCT run_id FROM logprob_probes \
                  WHERE suite = $1 AND target = $2 AND at_ms >= $3 AND at_ms <= $4 ORDER BY run_id DESC LIMIT $5) latest) \
                 ORDER BY run_id, probe_id, id LIMIT 20000",
            )
            .bind(&suite)
            .bind(&target)
            .bind(from)
            .bind(now_ms)
            .bind(max_runs)
            .fetch_all(pool)
            .await)?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// [`Store::logprob_history`] as the detector reads it: suite → probes.
    pub async fn logprob_snapshot(&self, now_ms: i64) -> Result<BTreeMap<String, Vec<ProbeObs>>> {
        let rows = self
            .logprob_history(now_ms, crate::signals::logprob_shift::HISTORY_RUNS as i64)
            .await?;
        let mut out: BTreeMap<String, Vec<ProbeObs>> = BTreeMap::new();
        for r in rows {
            let top: Vec<(String, f64)> = r
                .top_logprobs
                .as_deref()
                .and_then(|j| serde_json::from_str::<Vec<crate::provider::TopLogprob>>(j).ok())
                .map(|v| v.into_iter().map(|t| (t.token, t.logprob)).collect())
                .unwrap_or_default();
            // A row whose stored list cannot be read is not a measurement.
            let status = if r.status == "ok" && top.is_empty() {
                "provider_error".to_string()
            } else {
                r.status
            };
            out.entry(r.suite).or_default().push(ProbeObs {
                run_id: r.run_id,
                target: r.target,
                probe_id: r.probe_id,
                prompt_hash: r.prompt_hash,
                status,
                top,
                at_ms: r.at_ms,
            });
        }
        Ok(out)
    }

    /// Model calls and tokens a suite spent since `from_ms`: its cases
    /// (`canary_results`) and its logprob probes, per target.
    pub async fn suite_spend(&self, suite: &str, from_ms: i64) -> Result<Vec<SuiteSpend>> {
        type Row = (String, String, i64, Option<i64>, Option<i64>);
        let rows: Vec<Row> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT 'cases', target, COUNT(*), CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT) FROM canary_results \
             WHERE suite = $1 AND created_ms >= $2 GROUP BY target \
             UNION ALL \
             SELECT 'logprob_probe', target, COUNT(*), CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT) FROM logprob_probes \
             WHERE suite = $1 AND at_ms >= $2 GROUP BY target",
        )
        .bind(suite)
        .bind(from_ms)
        .fetch_all(pool)
        .await)?;
        let mut out: Vec<SuiteSpend> = rows
            .into_iter()
            .map(|(part, target, calls, input, output)| SuiteSpend {
                part,
                target,
                calls,
                input_tokens: input.unwrap_or(0),
                output_tokens: output.unwrap_or(0),
            })
            .collect();
        out.sort_by(|a, b| (&a.target, &a.part).cmp(&(&b.target, &b.part)));
        Ok(out)
    }
}

/// What one part of a suite (`cases` or `logprob_probe`) spent on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuiteSpend {
    pub part: String,
    pub target: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}
