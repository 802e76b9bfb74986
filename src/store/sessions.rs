//! Agent sessions: the events of every session (one per stored record, or
//! per agent/tool span) and a summary per (stream, session) kept current in
//! the ingest transaction, so the session detectors read a few rows per
//! changed session instead of scanning responses, and nothing about a
//! session lives only in memory.
//!
//! Counting is exactly once: an event's `ext_id` is the record's id, the
//! insert skips a stored one, and only the events actually inserted are
//! added to the summary. Summaries are updated in (stream, session) order so
//! concurrent writers cannot deadlock.

use std::collections::{BTreeMap, HashSet};

use super::{BeginWrite, ResponseRow, Result, Store};
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

/// One event to store, built from a row of the ingest batch.
#[derive(Debug, Clone)]
pub struct NewSessionEvent<'a> {
    pub ext_id: &'a str,
    pub row: &'a ResponseRow,
    pub session_id: &'a str,
    pub kind: &'static str,
    pub tools: Option<String>,
    pub tokens: i64,
    pub cost_usd: f64,
    /// What the event adds to the session's `calls`.
    pub calls: i64,
}

/// The event of `row`, when it belongs to a session.
pub fn event_of<'a>(row: &'a ResponseRow, ext_id: &'a str) -> Option<NewSessionEvent<'a>> {
    let session_id = row.session_id.as_deref()?;
    let kind = match (row.session_only, row.tools.is_empty()) {
        (false, _) => "inference",
        (true, false) => "tool",
        (true, true) => "agent",
    };
    // Agent and tool spans wrap the model calls that carry the usage; their
    // own token counts would count it twice.
    let (tokens, cost) = if row.session_only {
        (0, 0.0)
    } else {
        (
            row.input_tokens.unwrap_or(0) + row.output_tokens,
            row.cost_usd.unwrap_or(0.0),
        )
    };
    Some(NewSessionEvent {
        ext_id,
        row,
        session_id,
        kind,
        tools: (!row.tools.is_empty())
            .then(|| serde_json::to_string(&row.tools).expect("tool calls serialize")),
        tokens,
        cost_usd: cost,
        calls: i64::from(kind != "agent"),
    })
}

/// What one batch adds to one session.
#[derive(Debug, Default)]
pub(crate) struct Delta<'a> {
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
    pub(crate) seen_ms: i64,
    pub(crate) calls: i64,
    pub(crate) tokens: i64,
    pub(crate) cost_usd: f64,
    pub(crate) user_id: Option<&'a str>,
}

/// The session writes of the ingest transaction, per backend: PostgreSQL
/// takes one array per column (`UNNEST`), so each statement has one text
/// whatever the batch size and is parsed and planned once per connection
/// (a multi-row `VALUES` list of 5,000 parameters was parsed every time);
/// SQLite, in process, takes multi-row `VALUES`.
pub(crate) trait SessionWrites {
    /// Inserts `events` (sorted by ext_id), skipping agent/tool spans
    /// stored before (`session_events_span`); returns the ext_ids of the
    /// spans inserted. Inference events need no check and are not returned:
    /// each comes from a response this transaction inserted, so all of them
    /// are stored (returning one row per record was one more row handed
    /// from SQLite's worker thread, or sent by PostgreSQL, per record).
    fn insert_events<'a>(
        &'a mut self,
        events: &'a [NewSessionEvent<'a>],
    ) -> impl std::future::Future<Output = Result<HashSet<String>>> + Send + 'a;
    /// Adds each session's [`Delta`] to its summary (key order, so
    /// concurrent writers cannot deadlock), marking it dirty.
    fn upsert_sessions<'a>(
        &'a mut self,
        deltas: &'a BTreeMap<(&'a str, &'a str), Delta<'a>>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'a;
    /// Adds [`spend_deltas`] to `rollup_spend`, in key order.
    fn upsert_spend<'a>(
        &'a mut self,
        deltas: &'a BTreeMap<(&'a str, i64, &'a str), (i64, i64, f64)>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'a;
}

const EVENT_COLUMNS: &str =
    "ext_id, stream, session_id, ts_ms, kind, agent, tools, tokens, cost_usd, user_id";
/// The conflict target of `session_events_span` (migration 0016).
const EVENT_CONFLICT: &str = " ON CONFLICT (ext_id) WHERE kind <> 'inference' DO NOTHING";
const SESSION_COLUMNS: &str = "stream, session_id, first_ms, last_ms, seen_ms, calls, tokens, cost_usd, user_id, state, dirty, version";
const SESSION_UPSERT: &str = " ON CONFLICT (stream, session_id) DO UPDATE SET \
     first_ms = CASE WHEN excluded.first_ms < sessions.first_ms THEN excluded.first_ms ELSE sessions.first_ms END, \
     last_ms = CASE WHEN excluded.last_ms > sessions.last_ms THEN excluded.last_ms ELSE sessions.last_ms END, \
     seen_ms = CASE WHEN excluded.seen_ms > sessions.seen_ms THEN excluded.seen_ms ELSE sessions.seen_ms END, \
     calls = sessions.calls + excluded.calls, tokens = sessions.tokens + excluded.tokens, \
     cost_usd = sessions.cost_usd + excluded.cost_usd, \
     user_id = COALESCE(excluded.user_id, sessions.user_id), \
     state = 'active', dirty = excluded.dirty, version = sessions.version + 1";
const SPEND_UPSERT: &str = " ON CONFLICT (stream, hour_ms, user_id) DO UPDATE SET n = rollup_spend.n + excluded.n, \
     tokens = rollup_spend.tokens + excluded.tokens, cost_usd = rollup_spend.cost_usd + excluded.cost_usd";

/// SQLite: each session write is one statement over a JSON array of rows
/// (`jsonb_each`), the in-process counterpart of PostgreSQL's `UNNEST`. Its
/// text is the same whatever the batch size, so it stays in the statement
/// cache; multi-row `VALUES` had a text per row count (the spend roll-up
/// alone a different one nearly every batch), and every new text was
/// parsed again, with ten bound values per row copied on the way.
/// `jsonb_each`, not `json_each`: it hands each row over as binary JSON,
/// so the `->>` of every column reads it instead of parsing the row's
/// text again (in a profile of the `json_each` form, that re-parsing and
/// its allocations were the largest part of these statements).
impl SessionWrites for sqlx::Transaction<'static, sqlx::Sqlite> {
    async fn insert_events<'a>(
        &'a mut self,
        events: &'a [NewSessionEvent<'a>],
    ) -> Result<HashSet<String>> {
        let (inference, spans): (Vec<_>, Vec<_>) =
            events.iter().partition(|e| e.kind == "inference");
        let rows = |events: &[&NewSessionEvent<'_>]| {
            let rows: Vec<_> = events
                .iter()
                .map(|e| {
                    (
                        e.ext_id,
                        &e.row.stream,
                        e.session_id,
                        e.row.ts_ms,
                        e.kind,
                        &e.row.agent,
                        &e.tools,
                        e.tokens,
                        e.cost_usd,
                        &e.row.user_id,
                    )
                })
                .collect();
            serde_json::to_string(&rows).expect("session events serialize")
        };
        let sql = |returning: &str| {
            format!(
                "INSERT INTO session_events ({EVENT_COLUMNS}) SELECT value->>0, value->>1, value->>2, \
                 value->>3, value->>4, value->>5, value->>6, value->>7, value->>8, value->>9 \
                 FROM jsonb_each($1) WHERE true{EVENT_CONFLICT}{returning}"
            )
        };
        if !inference.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(sql("")))
                .bind(rows(&inference))
                .execute(&mut **self)
                .await?;
        }
        let mut inserted = HashSet::with_capacity(spans.len());
        if !spans.is_empty() {
            let stored: Vec<(String,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql(" RETURNING ext_id")))
                    .bind(rows(&spans))
                    .fetch_all(&mut **self)
                    .await?;
            inserted.extend(stored.into_iter().map(|r| r.0));
        }
        Ok(inserted)
    }

    async fn upsert_sessions<'a>(
        &'a mut self,
        deltas: &'a BTreeMap<(&'a str, &'a str), Delta<'a>>,
    ) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = deltas
            .iter()
            .map(|((stream, session), d)| {
                (
                    stream, session, d.first_ms, d.last_ms, d.seen_ms, d.calls, d.tokens,
                    d.cost_usd, d.user_id,
                )
            })
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) SELECT value->>0, value->>1, value->>2, value->>3, \
             value->>4, value->>5, value->>6, value->>7, value->>8, 'active', 1, 1 \
             FROM jsonb_each($1) WHERE true{SESSION_UPSERT}"
        )))
        .bind(serde_json::to_string(&rows).expect("session deltas serialize"))
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn upsert_spend<'a>(
        &'a mut self,
        deltas: &'a BTreeMap<(&'a str, i64, &'a str), (i64, i64, f64)>,
    ) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = deltas.iter().collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO rollup_spend (stream, hour_ms, user_id, n, tokens, cost_usd) \
             SELECT value->>'$[0][0]', value->>'$[0][1]', value->>'$[0][2]', value->>'$[1][0]', \
             value->>'$[1][1]', value->>'$[1][2]' FROM jsonb_each($1) WHERE true{SPEND_UPSERT}"
        )))
        .bind(serde_json::to_string(&rows).expect("spend deltas serialize"))
        .execute(&mut **self)
        .await?;
        Ok(())
    }
}

impl SessionWrites for sqlx::Transaction<'static, sqlx::Postgres> {
    async fn insert_events<'a>(
        &'a mut self,
        events: &'a [NewSessionEvent<'a>],
    ) -> Result<HashSet<String>> {
        let (inference, spans): (Vec<_>, Vec<_>) =
            events.iter().partition(|e| e.kind == "inference");
        let mut inserted = HashSet::with_capacity(spans.len());
        for (events, returning) in [(inference, ""), (spans, " RETURNING ext_id")] {
            if events.is_empty() {
                continue;
            }
            // One statement for the whole batch: arrays have no parameter limit.
            let q = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO session_events ({EVENT_COLUMNS}) SELECT * FROM UNNEST(\
                 $1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], \
                 $8::int8[], $9::float8[], $10::text[]){EVENT_CONFLICT}{returning}"
            )))
            .bind(events.iter().map(|e| e.ext_id).collect::<Vec<_>>())
            .bind(
                events
                    .iter()
                    .map(|e| e.row.stream.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| e.session_id).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.row.ts_ms).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.kind).collect::<Vec<_>>())
            .bind(
                events
                    .iter()
                    .map(|e| e.row.agent.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                events
                    .iter()
                    .map(|e| e.tools.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| e.tokens).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.cost_usd).collect::<Vec<_>>())
            .bind(
                events
                    .iter()
                    .map(|e| e.row.user_id.as_deref())
                    .collect::<Vec<_>>(),
            );
            let rows: Vec<(String,)> = q.fetch_all(&mut **self).await?;
            inserted.extend(rows.into_iter().map(|r| r.0));
        }
        Ok(inserted)
    }

    async fn upsert_sessions<'a>(
        &'a mut self,
        deltas: &'a BTreeMap<(&'a str, &'a str), Delta<'a>>,
    ) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let v = |f: fn(&Delta<'_>) -> i64| deltas.values().map(f).collect::<Vec<_>>();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) SELECT s, id, f, l, seen, c, t, cost, u, 'active', TRUE, 1 \
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], \
             $8::float8[], $9::text[]) AS x(s, id, f, l, seen, c, t, cost, u){SESSION_UPSERT}"
        )))
        .bind(deltas.keys().map(|k| k.0).collect::<Vec<_>>())
        .bind(deltas.keys().map(|k| k.1).collect::<Vec<_>>())
        .bind(v(|d| d.first_ms))
        .bind(v(|d| d.last_ms))
        .bind(v(|d| d.seen_ms))
        .bind(v(|d| d.calls))
        .bind(v(|d| d.tokens))
        .bind(deltas.values().map(|d| d.cost_usd).collect::<Vec<_>>())
        .bind(deltas.values().map(|d| d.user_id).collect::<Vec<_>>())
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn upsert_spend<'a>(
        &'a mut self,
        deltas: &'a BTreeMap<(&'a str, i64, &'a str), (i64, i64, f64)>,
    ) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO rollup_spend (stream, hour_ms, user_id, n, tokens, cost_usd) SELECT * FROM UNNEST(\
             $1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::float8[]){SPEND_UPSERT}"
        )))
        .bind(deltas.keys().map(|k| k.0).collect::<Vec<_>>())
        .bind(deltas.keys().map(|k| k.1).collect::<Vec<_>>())
        .bind(deltas.keys().map(|k| k.2).collect::<Vec<_>>())
        .bind(deltas.values().map(|d| d.0).collect::<Vec<_>>())
        .bind(deltas.values().map(|d| d.1).collect::<Vec<_>>())
        .bind(deltas.values().map(|d| d.2).collect::<Vec<_>>())
        .execute(&mut **self)
        .await?;
        Ok(())
    }
}

/// Sessions per statement of a monitor pass on PostgreSQL.
pub(crate) const CHUNK_SIZE: usize = 500;

/// Per-session totals of the events that were inserted (every inference
/// event, and the spans in `inserted_spans`), in key order.
pub(crate) fn deltas<'a>(
    events: &'a [NewSessionEvent<'a>],
    inserted_spans: &HashSet<String>,
) -> BTreeMap<(&'a str, &'a str), Delta<'a>> {
    let mut out: BTreeMap<(&str, &str), Delta> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind == "inference" || inserted_spans.contains(e.ext_id))
    {
        let d = out
            .entry((e.row.stream.as_str(), e.session_id))
            .or_insert_with(|| Delta {
                first_ms: i64::MAX,
                last_ms: i64::MIN,
                seen_ms: i64::MIN,
                ..Default::default()
            });
        d.first_ms = d.first_ms.min(e.row.ts_ms);
        d.last_ms = d.last_ms.max(e.row.ts_ms);
        d.seen_ms = d.seen_ms.max(e.row.received_ms);
        d.calls += e.calls;
        d.tokens += e.tokens;
        d.cost_usd += e.cost_usd;
        if let Some(u) = e.row.user_id.as_deref() {
            d.user_id = Some(u);
        }
    }
    out
}

/// Spend of the inserted responses per (stream, hour, user): (calls, tokens, cost).
pub(crate) fn spend_deltas<'a>(
    rows: &'a [ResponseRow],
    inserted: &[(usize, i64)],
) -> BTreeMap<(&'a str, i64, &'a str), (i64, i64, f64)> {
    let mut out: BTreeMap<(&str, i64, &str), (i64, i64, f64)> = BTreeMap::new();
    for &(i, _) in inserted {
        let r = &rows[i];
        let e = out
            .entry((
                r.stream.as_str(),
                super::rollups::hour_of(r.ts_ms),
                r.user_id.as_deref().unwrap_or(""),
            ))
            .or_default();
        e.0 += 1;
        e.1 += r.input_tokens.unwrap_or(0) + r.output_tokens;
        e.2 += r.cost_usd.unwrap_or(0.0);
    }
    out
}

pub use crate::signals::spend_rate::SpendHour;

/// Spend of one stream or user over a period.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpendTotal {
    pub stream: String,
    /// A user, or a session, where the total is per user or session.
    pub key: Option<String>,
    pub calls: i64,
    pub tokens: i64,
    pub cost_usd: f64,
}

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

/// Spend of one stream's sessions (for `/metrics` and `canaryd status`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StreamSpend {
    pub stream: String,
    pub sessions: i64,
    pub active: i64,
    pub tokens: i64,
    pub cost_usd: f64,
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

    /// Hourly spend of every stream (all users) from `from_ms`, by stream.
    pub async fn spend_hours(&self, from_ms: i64) -> Result<BTreeMap<String, Vec<SpendHour>>> {
        let rows: Vec<(String, i64, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, hour_ms, CAST(SUM(n) AS BIGINT), CAST(SUM(tokens) AS BIGINT), \
             CAST(SUM(cost_usd) AS DOUBLE PRECISION) FROM rollup_spend WHERE hour_ms >= $1 \
             GROUP BY stream, hour_ms ORDER BY stream, hour_ms",
        ).bind(from_ms).fetch_all(pool).await)?;
        let mut out: BTreeMap<String, Vec<SpendHour>> = BTreeMap::new();
        for (stream, hour_ms, calls, tokens, cost_usd) in rows {
            out.entry(stream).or_default().push(SpendHour {
                hour_ms,
                calls,
                tokens,
                cost_usd,
            });
        }
        Ok(out)
    }

    /// Hourly spend of one stream (all users) in `[from_ms, to_ms)`, for
    /// its page.
    pub async fn stream_spend_hours(
        &self,
        stream: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SpendHour>> {
        let rows: Vec<(i64, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT hour_ms, CAST(SUM(n) AS BIGINT), CAST(SUM(tokens) AS BIGINT), \
             CAST(SUM(cost_usd) AS DOUBLE PRECISION) FROM rollup_spend \
             WHERE stream = $1 AND hour_ms >= $2 AND hour_ms < $3 GROUP BY hour_ms ORDER BY hour_ms",
        ).bind(stream).bind(from_ms).bind(to_ms).fetch_all(pool).await)?;
        Ok(spend_hours(rows))
    }

    /// Hourly spend of one user of a stream from `from_ms`.
    pub async fn user_spend_hours(
        &self,
        stream: &str,
        user: &str,
        from_ms: i64,
    ) -> Result<Vec<SpendHour>> {
        let rows: Vec<(i64, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT hour_ms, n, tokens, cost_usd FROM rollup_spend \
             WHERE stream = $1 AND user_id = $2 AND hour_ms >= $3 ORDER BY hour_ms",
        ).bind(stream).bind(user).bind(from_ms).fetch_all(pool).await)?;
        Ok(spend_hours(rows))
    }

    /// Spend since `from_ms`: per stream (`key` none), and the `top` users
    /// by cost of each stream.
    pub async fn spend_totals(&self, from_ms: i64, top: usize) -> Result<Vec<SpendTotal>> {
        let rows: Vec<(String, String, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, user_id, CAST(SUM(n) AS BIGINT), CAST(SUM(tokens) AS BIGINT), \
             CAST(SUM(cost_usd) AS DOUBLE PRECISION) FROM rollup_spend WHERE hour_ms >= $1 \
             GROUP BY stream, user_id ORDER BY stream, 5 DESC, user_id",
        ).bind(from_ms).fetch_all(pool).await)?;
        let mut out: Vec<SpendTotal> = Vec::new();
        let mut users_of_stream = 0usize;
        for (stream, user, calls, tokens, cost_usd) in rows {
            match out
                .iter_mut()
                .rev()
                .find(|t| t.stream == stream && t.key.is_none())
            {
                Some(t) => {
                    t.calls += calls;
                    t.tokens += tokens;
                    t.cost_usd += cost_usd;
                }
                None => {
                    users_of_stream = 0;
                    out.push(SpendTotal {
                        stream: stream.clone(),
                        key: None,
                        calls,
                        tokens,
                        cost_usd,
                    });
                }
            }
            if !user.is_empty() && users_of_stream < top {
                users_of_stream += 1;
                out.push(SpendTotal {
                    stream,
                    key: Some(user),
                    calls,
                    tokens,
                    cost_usd,
                });
            }
        }
        Ok(out)
    }

    /// The `top` active sessions by cost (then tokens).
    pub async fn top_sessions(&self, top: usize) -> Result<Vec<SpendTotal>> {
        let top = i64::try_from(top).unwrap_or(i64::MAX);
        let rows: Vec<(String, String, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, session_id, calls, tokens, cost_usd FROM sessions WHERE state = 'active' \
             ORDER BY cost_usd DESC, tokens DESC, stream, session_id LIMIT $1",
        ).bind(top).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(stream, s, calls, tokens, cost_usd)| SpendTotal {
                stream,
                key: Some(s),
                calls,
                tokens,
                cost_usd,
            })
            .collect())
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

    /// Session spend per stream: all sessions, active ones, tokens, cost.
    pub async fn session_spend(&self) -> Result<Vec<StreamSpend>> {
        let rows: Vec<(String, i64, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, COUNT(*), SUM(CASE WHEN state = 'active' THEN 1 ELSE 0 END), \
             CAST(SUM(tokens) AS BIGINT), CAST(SUM(cost_usd) AS DOUBLE PRECISION) FROM sessions GROUP BY stream ORDER BY stream",
        ).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(stream, sessions, active, tokens, cost_usd)| StreamSpend {
                stream,
                sessions,
                active,
                tokens,
                cost_usd,
            })
            .collect())
    }
}

/// `(hour_ms, calls, tokens, cost_usd)` rows of `rollup_spend` reads.
fn spend_hours(rows: Vec<(i64, i64, i64, f64)>) -> Vec<SpendHour> {
    rows.into_iter()
        .map(|(hour_ms, calls, tokens, cost_usd)| SpendHour {
            hour_ms,
            calls,
            tokens,
            cost_usd,
        })
        .collect()
}
