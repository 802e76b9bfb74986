//! Reads behind an alert's evidence (`alert::evidence`): the worst judged
//! answers, the latest failing canary cases next to the other target's
//! answer, and example responses picked by what a rule measures. Each is
//! bounded by a time range and a `LIMIT`.

use super::{Result, Store};
use crate::on_db;

/// A judged answer, production or canary, with its reasoning.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JudgedExample {
    pub score: Option<f64>,
    pub reasoning: Option<String>,
    pub ts_ms: i64,
    pub input: Option<String>,
    pub output: Option<String>,
    /// The canary answer, when the score is a canary's.
    pub answer: Option<String>,
    pub case_id: Option<String>,
    pub judge: String,
}

/// A failing canary case and, when there is one, the answer of another
/// target (pinned first) for the same run and case.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FailedCase {
    pub case_id: String,
    pub target: String,
    pub answer: Option<String>,
    pub verdicts: String,
    pub other_target: Option<String>,
    pub other_answer: Option<String>,
}

/// Which responses make an example of a rule's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponsePick {
    /// Recent refusals.
    Refusals,
    /// Recent answers cut at the length limit.
    Truncated,
    Shortest,
    Longest,
    Recent,
}

/// One example response.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ExampleResponse {
    pub input: Option<String>,
    pub output: String,
    pub finish_reason: Option<String>,
    pub output_tokens: i64,
}

impl Store {
    /// The lowest scores of `stream` in `[since_ms, until_ms]` (of `judge`
    /// unless it is empty), worst first.
    pub async fn worst_judge_scores(
        &self,
        stream: &str,
        judge: &str,
        since_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> Result<Vec<JudgedExample>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as(
            "SELECT j.score, j.reasoning, j.ts_ms, r.input, r.output, c.answer, c.case_id, j.judge \
             FROM judge_scores j LEFT JOIN responses r ON r.id = j.response_id \
             LEFT JOIN canary_results c ON c.id = j.canary_result_id \
             WHERE j.stream = $1 AND ($2 = '' OR j.judge = $2) AND j.score IS NOT NULL AND j.ts_ms >= $3 AND j.ts_ms <= $4 \
             ORDER BY j.score ASC, j.ts_ms DESC, j.id DESC LIMIT $5",
        ).bind(stream).bind(judge).bind(since_ms).bind(until_ms).bind(limit).fetch_all(pool).await)?)
    }

    /// The latest failed cases of `suite` in `[since_ms, until_ms]`
    /// (matching `case_or_target` as case or target unless it is empty).
    pub async fn failed_canary_cases(
        &self,
        suite: &str,
        case_or_target: &str,
        since_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> Result<Vec<FailedCase>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as(
            "SELECT f.case_id, f.target, f.answer, f.verdicts, \
             (SELECT p.target FROM canary_results p WHERE p.run_id = f.run_id AND p.case_id = f.case_id AND p.id <> f.id \
              ORDER BY CASE WHEN p.target = 'pinned' THEN 0 ELSE 1 END, p.id LIMIT 1) AS other_target, \
             (SELECT p.answer FROM canary_results p WHERE p.run_id = f.run_id AND p.case_id = f.case_id AND p.id <> f.id \
              ORDER BY CASE WHEN p.target = 'pinned' THEN 0 ELSE 1 END, p.id LIMIT 1) AS other_answer \
             FROM canary_results f WHERE f.suite = $1 AND f.outcome = 'fail' AND f.created_ms >= $2 AND f.created_ms <= $3 \
             AND ($4 = '' OR f.case_id = $4 OR f.target = $4) ORDER BY f.created_ms DESC, f.id DESC LIMIT $5",
        ).bind(suite).bind(since_ms).bind(until_ms).bind(case_or_target).bind(limit).fetch_all(pool).await)?)
    }

    /// Responses of `stream` in `[since_ms, until_ms]` chosen by `pick`.
    pub async fn example_responses(
        &self,
        stream: &str,
        pick: ResponsePick,
        since_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> Result<Vec<ExampleResponse>> {
        // `$4` is bound in every variant so one bind list serves them all.
        let (filter, order) = match pick {
            ResponsePick::Refusals => ("AND refusal = $4", "ts_ms DESC"),
            ResponsePick::Truncated => ("AND finish_reason = 'length' AND $4 = $4", "ts_ms DESC"),
            ResponsePick::Shortest => ("AND $4 = $4", "output_tokens ASC, ts_ms DESC"),
            ResponsePick::Longest => ("AND $4 = $4", "output_tokens DESC, ts_ms DESC"),
            ResponsePick::Recent => ("AND $4 = $4", "ts_ms DESC"),
        };
        let sql = format!(
            "SELECT input, output, finish_reason, output_tokens FROM responses \
             WHERE stream = $1 AND ts_ms >= $2 AND ts_ms <= $3 {filter} ORDER BY {order}, id DESC LIMIT $5"
        );
        Ok(
            on_db!(self.db(), pool => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(stream).bind(since_ms).bind(until_ms).bind(true).bind(limit).fetch_all(pool).await)?,
        )
    }
}
