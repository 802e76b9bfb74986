//! Agent sessions: the events of every session (one per stored record, or
//! per agent/tool span) and a summary per (stream, session) kept current in
//! the ingest transaction, so the session detectors read a few rows per
//! changed session instead of scanning responses, and nothing about a
//! session lives only in memory.
//!
//! This file reads sessions and sweeps them; the ingest transaction's
//! writes (exactly-once counting) are in `session_writes.rs`, the spend
//! reads in `spend.rs`.

use super::{BeginWrite, Result, Store};
use crate::on_db;
use crate::tool_calls::ToolCall;

/// One stored event of a session, oldest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionEvent {
    pub ts_ms: i64,
    /// `inference` (a model call), `tool` (an executed tool) or `agent` (an
    /// agent invocation span).
    pub kind: String,
    pub agent: Option<String>,
    pub tools: Vec<ToolCall>,
    pub tokens: i64,
    pub cost_usd: f64,
}

/// A session's stored summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionSummary {
    pub stream: String,
    pub session_id: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub seen_ms: i64,
    pub calls: i64,
    pub tokens: i64,
    pub cost_usd: f64,
    pub user_id: Option<String>,
    pub state: String,
    pub version: i64,
    /// Rules that fired for this session.
    pub fired: Vec<String>,
}

/// Sessions per statement of a monitor pass on PostgreSQL.
pub(crate) const CHUNK_SIZE: usize = 500;

type SummaryRow = (
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    f64,
    Option<String>,
    String,
    i64,
    String,
);

const SUMMARY_COLUMNS: &str = "stream, session_id, first_ms, last_ms, seen_ms, calls, tokens, cost_usd, user_id, state, version, fired";

fn summary(
    (
        stream,
        session_id,
        first_ms,
        last_ms,
        seen_ms,
        calls,
        tokens,
        cost_usd,
        user_id,
        state,
        version,
        fired,
    ): SummaryRow,
) -> SessionSummary {
    SessionSummary {
        stream,
        session_id,
        first_ms,
        last_ms,
        seen_ms,
        calls,
        tokens,
        cost_usd,
        user_id,
        state,
        version,
        fired: fired
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    }
}

/// (position, ts_ms, kind, agent, tools, tokens, cost_usd) of an event.
type EventRow = (i64, i64, String, Option<String>, Option<String>, i64, f64);
/// An event as SQLite's `json_array` gives it: [`EventRow`] without the position.
type JsonEventRow = (i64, String, Option<String>, Option<String>, i64, f64);

fn event((_, ts_ms, kind, agent, tools, tokens, cost_usd): EventRow) -> SessionEvent {
    SessionEvent {
        ts_ms,
        kind,
        agent,
        tools: tools
            .and_then(|t| serde_json::from_str::<Vec<ToolCall>>(&t).ok())
            .unwrap_or_default(),
        tokens,
        cost_usd,
    }
}

impl Store {
    /// Sessions changed since the detectors last looked, oldest change first.
    pub async fn dirty_sessions(&self, limit: usize) -> Result<Vec<SessionSummary>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<SummaryRow> = on_db!(self.db(), pool => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SUMMARY_COLUMNS} FROM sessions WHERE dirty ORDER BY seen_ms LIMIT $1"
        ))).bind(limit).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(summary).collect())
    }

    /// One session's summary.
    pub async fn session(&self, stream: &str, session_id: &str) -> Result<Option<SessionSummary>> {
        let row: Option<SummaryRow> = on_db!(self.db(), pool => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SUMMARY_COLUMNS} FROM sessions WHERE stream = $1 AND session_id = $2"
        ))).bind(stream).bind(session_id).fetch_optional(pool).await)?;
        Ok(row.map(summary))
    }

    /// The latest `limit` events of a session, oldest first.
    pub async fn session_events(
        &self,
        stream: &str,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<SessionEvent>> {
        Ok(self
            .sessions_events(&[(stream, session_id)], limit)
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// The latest `limit` events of each of `keys` (stream, session),
    /// oldest first, in the order of `keys`: what one monitor pass reads.
    /// One statement on PostgreSQL (a `LATERAL` index scan per session, so
    /// the plan cannot become a scan of every event); on SQLite one
    /// statement too, a correlated indexed subquery per session.
    pub async fn sessions_events(
        &self,
        keys: &[(&str, &str)],
        limit: usize,
    ) -> Result<Vec<Vec<SessionEvent>>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut out: Vec<Vec<SessionEvent>> = vec![Vec::new(); keys.len()];
        match self.db() {
            super::Db::Sqlite(pool) => {
                // One statement and one row per session (its events as one
                // JSON array), not a statement per session and a row per
                // event: each statement and each row is a hand-over between
                // the executor and SQLite's worker thread, which cost more
                // than the query itself.
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT k.key, (SELECT json_group_array(json_array(ts_ms, kind, agent, tools, tokens, cost_usd) \
                     ORDER BY ts_ms, id) FROM (SELECT ts_ms, id, kind, agent, tools, tokens, cost_usd \
                     FROM session_events WHERE stream = k.value->>0 AND session_id = k.value->>1 \
                     ORDER BY ts_ms DESC, id DESC LIMIT $2)) FROM jsonb_each($1) AS k",
                )
                .bind(serde_json::to_string(keys).expect("keys serialize"))
                .bind(limit)
                .fetch_all(pool)
                .await?;
                for (i, events) in rows {
                    let events: Vec<JsonEventRow> = serde_json::from_str(&events)
                        .map_err(|e| super::StoreError::Corrupt(format!("session events: {e}")))?;
                    if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                        slot.extend(events.into_iter().map(
                            |(ts, kind, agent, tools, tokens, cost)| {
                                event((0, ts, kind, agent, tools, tokens, cost))
                            },
                        ));
                    }
                }
            }
            super::Db::Postgres(pool) => {
                for (n, chunk) in keys.chunks(CHUNK_SIZE).enumerate() {
                    let rows: Vec<EventRow> = sqlx::query_as(
                        "SELECT k.i, e.ts_ms, e.kind, e.agent, e.tools, e.tokens, e.cost_usd \
                         FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k(stream, session_id, i) \
                         CROSS JOIN LATERAL (SELECT ts_ms, id, kind, agent, tools, tokens, cost_usd FROM session_events \
                         WHERE stream = k.stream AND session_id = k.session_id ORDER BY ts_ms DESC, id DESC LIMIT $3) e \
                         ORDER BY k.i, e.ts_ms, e.id",
                    )
                    .bind(chunk.iter().map(|k| k.0).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|k| k.1).collect::<Vec<_>>())
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                    for r in rows {
                        // WITH ORDINALITY counts from 1.
                        let i = n * CHUNK_SIZE + usize::try_from(r.0 - 1).unwrap_or(0);
                        if let Some(slot) = out.get_mut(i) {
                            slot.push(event(r));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Records what the detectors concluded: the rules fired so far, and
    /// "looked at" unless the session changed meanwhile (then it stays
    /// dirty and the next pass looks again).
    pub async fn mark_session_checked(&self, s: &SessionSummary) -> Result<()> {
        self.mark_sessions_checked(std::slice::from_ref(s)).await
    }

    /// [`Store::mark_session_checked`] for a whole pass's batch in one
    /// transaction: one commit per batch, not per session (on SQLite every
    /// commit takes the write lock the ingest writer waits for).
    pub async fn mark_sessions_checked(&self, batch: &[SessionSummary]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.db() {
            super::Db::Sqlite(pool) => {
                // One statement over a JSON array of the batch (one
                // hand-over to SQLite's worker thread, not one per session).
                let rows: Vec<_> = batch
                    .iter()
                    .map(|s| (&s.stream, &s.session_id, s.fired.join(","), s.version))
                    .collect();
                let mut tx = pool.begin_write().await?;
                sqlx::query(
                    "UPDATE sessions SET fired = k.value->>2, \
                     dirty = CASE WHEN sessions.version = k.value->>3 THEN 0 ELSE sessions.dirty END \
                     FROM jsonb_each($1) AS k \
                     WHERE sessions.stream = k.value->>0 AND sessions.session_id = k.value->>1",
                )
                .bind(serde_json::to_string(&rows).expect("sessions serialize"))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            super::Db::Postgres(pool) => {
                // Key order, like the ingest upsert, so the two cannot deadlock.
                let mut sorted: Vec<&SessionSummary> = batch.iter().collect();
                sorted.sort_unstable_by(|a, b| {
                    (&a.stream, &a.session_id).cmp(&(&b.stream, &b.session_id))
                });
                for chunk in sorted.chunks(CHUNK_SIZE) {
                    sqlx::query(
                        "UPDATE sessions SET fired = k.fired, \
                         dirty = CASE WHEN sessions.version = k.version THEN FALSE ELSE sessions.dirty END \
                         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[]) AS k(stream, session_id, version, fired) \
                         WHERE sessions.stream = k.stream AND sessions.session_id = k.session_id",
                    )
                    .bind(chunk.iter().map(|s| s.stream.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|s| s.version).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|s| s.fired.join(",")).collect::<Vec<_>>())
                    .execute(pool)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Expires active sessions last seen before `before_ms` (already looked
    /// at), at most `limit` per call; returns those that had fired, whose
    /// alerts now resolve. Summaries stay stored.
    pub async fn expire_sessions(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<SessionSummary>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let fired: Vec<SummaryRow> = on_db!(self.db(), pool => {
            let rows: Vec<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SUMMARY_COLUMNS} FROM sessions WHERE state = 'active' AND seen_ms < $1 AND dirty = $2 \
                 AND fired <> '' ORDER BY seen_ms LIMIT $3"
            ))).bind(before_ms).bind(false).bind(limit).fetch_all(pool).await?;
            for r in &rows {
                sqlx::query("UPDATE sessions SET state = 'expired' WHERE stream = $1 AND session_id = $2 AND version = $3")
                    .bind(&r.0).bind(&r.1).bind(r.10).execute(pool).await?;
            }
            sqlx::query(
                "UPDATE sessions SET state = 'expired' WHERE (stream, session_id) IN (\
                 SELECT stream, session_id FROM sessions WHERE state = 'active' AND seen_ms < $1 AND dirty = $2 \
                 AND fired = '' LIMIT $3)",
            ).bind(before_ms).bind(false).bind(limit).execute(pool).await?;
            rows
        });
        Ok(fired.into_iter().map(summary).collect())
    }

    /// Retention for sessions: events older than `raw_before_ms` (they hold
    /// tool arguments), expired summaries and spend roll-ups older than
    /// `rollup_before_ms`; in batches like the other sweeps. Rows removed.
    pub async fn sweep_sessions(
        &self,
        raw_before_ms: i64,
        rollup_before_ms: i64,
        max_batches: u32,
    ) -> Result<u64> {
        let batch = super::RETENTION_BATCH;
        let kinds: [(&str, i64); 2] = [
            (
                "DELETE FROM session_events WHERE id IN (SELECT id FROM session_events \
                 WHERE ts_ms < $1 ORDER BY ts_ms LIMIT $2)",
                raw_before_ms,
            ),
            (
                "DELETE FROM sessions WHERE (stream, session_id) IN (SELECT stream, session_id FROM sessions \
                 WHERE state = 'expired' AND seen_ms < $1 LIMIT $2)",
                rollup_before_ms,
            ),
        ];
        let mut total = 0;
        for (sql, before) in kinds {
            for _ in 0..max_batches {
                let n = on_db!(self.db(), pool => sqlx::query(sql)
                    .bind(before)
                    .bind(batch)
                    .execute(pool)
                    .await?
                    .rows_affected());
                total += n;
                if n < batch as u64 {
                    break;
                }
            }
        }
        total += on_db!(self.db(), pool => sqlx::query("DELETE FROM rollup_spend WHERE hour_ms < $1")
            .bind(rollup_before_ms)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(total)
    }
}
