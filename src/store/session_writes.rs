//! The session writes of the ingest transaction: each stored record's
//! session event, the per-session deltas added to the summaries and the
//! spend roll-up, per backend. Counting is exactly once: an event's
//! `ext_id` is the record's id, the insert skips a stored one, and only the
//! events actually inserted are added to the summary. Summaries are updated
//! in (stream, session) order so concurrent writers cannot deadlock.

use std::collections::{BTreeMap, HashSet};

use super::{ResponseRow, Result};

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
