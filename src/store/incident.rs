//! Reads behind `canaryd incident export` (`crate::incident`): one alert by
//! id, the ids of the records that are its evidence (picked by what its
//! rule measures) and the healthy answers to the same input from before the
//! change. Every read is bounded by a time range and a `LIMIT`; the
//! records themselves are read with `response_by_id`/`response_scores`.

use super::{AlertRow, Result, Store};
use crate::on_db;

/// Which records are an alert's evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidencePick {
    /// Lowest scores of one judge (or of every judge when empty).
    WorstScored,
    Refusals,
    Truncated,
    Shortest,
    Longest,
    Recent,
}

impl Store {
    /// One alert by id.
    pub async fn alert_by_id(&self, id: i64) -> Result<Option<AlertRow>> {
        let sql = format!(
            "SELECT {} FROM alerts WHERE id = $1",
            super::alerts::ALERT_COLS
        );
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// Ids of the records of `stream` in `[since_ms, until_ms]` chosen by
    /// `pick`, the most telling first (`judge` only for `WorstScored`).
    pub async fn evidence_ids(
        &self,
        stream: &str,
        judge: &str,
        pick: EvidencePick,
        since_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> Result<Vec<i64>> {
        let sql = match pick {
            EvidencePick::WorstScored => {
                "SELECT response_id FROM judge_scores WHERE stream = $1 AND ($2 = '' OR judge = $2) \
                 AND score IS NOT NULL AND response_id IS NOT NULL AND ts_ms >= $3 AND ts_ms <= $4 \
                 ORDER BY score ASC, ts_ms DESC, id DESC LIMIT $5"
            }
            EvidencePick::Refusals => {
                "SELECT id FROM responses WHERE stream = $1 AND $2 = $2 AND refusal AND ts_ms >= $3 AND ts_ms <= $4 \
                 ORDER BY ts_ms DESC, id DESC LIMIT $5"
            }
            EvidencePick::Truncated => {
                "SELECT id FROM responses WHERE stream = $1 AND $2 = $2 AND finish_reason = 'length' \
                 AND ts_ms >= $3 AND ts_ms <= $4 ORDER BY ts_ms DESC, id DESC LIMIT $5"
            }
            EvidencePick::Shortest => {
                "SELECT id FROM responses WHERE stream = $1 AND $2 = $2 AND ts_ms >= $3 AND ts_ms <= $4 \
                 ORDER BY output_tokens ASC, ts_ms DESC, id DESC LIMIT $5"
            }
            EvidencePick::Longest => {
                "SELECT id FROM responses WHERE stream = $1 AND $2 = $2 AND ts_ms >= $3 AND ts_ms <= $4 \
                 ORDER BY output_tokens DESC, ts_ms DESC, id DESC LIMIT $5"
            }
            EvidencePick::Recent => {
                "SELECT id FROM responses WHERE stream = $1 AND $2 = $2 AND ts_ms >= $3 AND ts_ms <= $4 \
                 ORDER BY ts_ms DESC, id DESC LIMIT $5"
            }
        };
        let rows: Vec<(i64,)> = on_db!(self.db(), pool => sqlx::query_as(sql)
            .bind(stream)
            .bind(judge)
            .bind(since_ms)
            .bind(until_ms)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        let mut ids: Vec<i64> = Vec::with_capacity(rows.len());
        for (id,) in rows {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Ids of answers of `stream` to exactly `input` before `before_ms`
    /// (the healthy answers a canary case's expectations come from), newest
    /// first, not refusals and not cut at the length limit.
    pub async fn healthy_answer_ids(
        &self,
        stream: &str,
        input: &str,
        since_ms: i64,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT id FROM responses WHERE stream = $1 AND input = $2 AND ts_ms >= $3 AND ts_ms < $4 \
             AND NOT refusal AND (finish_reason IS NULL OR finish_reason <> 'length') \
             ORDER BY ts_ms DESC, id DESC LIMIT $5",
        )
        .bind(stream)
        .bind(input)
        .bind(since_ms)
        .bind(before_ms)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
