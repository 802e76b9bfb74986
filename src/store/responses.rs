//! Ingested production responses: the batch write path that stores records,
//! their roll-ups, precomputed scores and judge jobs in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::BeginWrite;
use super::rollups::{BatchRollup, f64_bytes, hour_of};
use super::session_writes::SessionWrites;
use super::{Result, Store};
use crate::on_db;

/// One production response, ready to store (signals already computed).
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct ResponseRow {
    pub id: i64,
    pub ext_id: Option<String>,
    pub stream: String,
    pub ts_ms: i64,
    pub received_ms: i64,
    pub prompt_version: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub system_fingerprint: Option<String>,
    pub input: Option<String>,
    pub context: Option<String>,
    pub output: String,
    pub finish_reason: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: i64,
    /// The request's output budget, when the application sent it.
    #[sqlx(default)]
    pub max_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub session_id: Option<String>,
    pub tool_calls: Option<String>,
    pub refusal: bool,
    pub sampled: bool,
    /// The application's labels as a JSON object of strings (bounded at ingest).
    #[sqlx(default)]
    pub labels: Option<String>,
    #[serde(skip)]
    pub embedding: Option<Vec<u8>>,
    /// Precomputed judge scores sent with the record (judge name, score);
    /// stored as `judge_scores` with source `precomputed`.
    #[sqlx(skip)]
    #[serde(skip)]
    pub scores: Vec<(String, f64)>,
    /// Reasons sent with those scores (OTLP `gen_ai.evaluation.explanation`),
    /// by judge: stored as the score's `reasoning`.
    #[sqlx(skip)]
    #[serde(skip)]
    pub explanations: std::collections::BTreeMap<String, String>,
    /// Judges that apply to this record, decided where the judges are known
    /// (the ingest handler), so the shared writer needs no judge state.
    #[sqlx(skip)]
    #[serde(skip)]
    pub judges: Vec<String>,
    /// The agent that made the call (sessions only; not a response column).
    #[sqlx(skip)]
    #[serde(skip)]
    pub agent: Option<String>,
    #[sqlx(skip)]
    #[serde(skip)]
    pub user_id: Option<String>,
    /// Sent by the application, else estimated from the model's prices.
    #[sqlx(skip)]
    #[serde(skip)]
    pub cost_usd: Option<f64>,
    /// Parsed `tool_calls` (name and argument hash) for the session detectors.
    #[sqlx(skip)]
    #[serde(skip)]
    pub tools: Vec<crate::tool_calls::ToolCall>,
    /// An agent or tool span: stored as a session event, not as a response.
    #[sqlx(skip)]
    #[serde(skip)]
    pub session_only: bool,
}

/// What a batch insert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InsertOutcome {
    pub accepted: u64,
    pub duplicates: u64,
    /// Judge jobs enqueued for the accepted records.
    #[serde(skip)]
    pub jobs: u64,
}

/// Whether a record the rate sampled (`by_rate`) or not is judged when
/// its stream's hour has already had `n` records judged: the rate's choice
/// up to the hourly `cap`, and every record while the hour is under its
/// `floor` (so a quiet stream still gets scores).
pub(crate) fn judged_by_sample(by_rate: bool, n: i64, floor: i64, cap: i64) -> bool {
    (by_rate && n < cap) || n < floor.min(cap)
}

/// Which judge jobs a batch enqueues: each row's `judges` names the judges
/// that apply to it; `floor_cap` gives a stream's hourly (floor, cap) of
/// records chosen for judging.
pub struct JobPlan<'a> {
    pub floor_cap: &'a (dyn Fn(&str) -> (i64, i64) + Send + Sync),
    pub now_ms: i64,
}

/// The bulk insert of responses, per backend: PostgreSQL takes one array
/// per column (`UNNEST`), one statement text whatever the batch size, so it
/// is parsed and planned once per connection; SQLite takes multi-row
/// `VALUES`. Both skip a stored `ext_id` and return (ext_id, id) of the rows
/// they inserted.
trait InsertRows {
    fn insert_rows<'a>(
        &'a mut self,
        rows: &'a [ResponseRow],
        chunk: &'a [(usize, String)],
    ) -> impl std::future::Future<Output = Result<Vec<(String, i64)>>> + Send + 'a;
}

const RESPONSE_COLUMNS: &str = "ext_id, stream, ts_ms, received_ms, prompt_version, request_model, response_model, \
     system_fingerprint, input, context, output, finish_reason, input_tokens, output_tokens, latency_ms, session_id, \
     tool_calls, refusal, sampled, embedding, max_tokens, labels";

impl InsertRows for sqlx::Transaction<'static, sqlx::Sqlite> {
    async fn insert_rows<'a>(
        &'a mut self,
        rows: &'a [ResponseRow],
        chunk: &'a [(usize, String)],
    ) -> Result<Vec<(String, i64)>> {
        let mut qb =
            sqlx::QueryBuilder::new(format!("INSERT INTO responses ({RESPONSE_COLUMNS}) "));
        qb.push_values(chunk, |mut b, (i, ext)| {
            let r = &rows[*i];
            b.push_bind(ext)
                .push_bind(&r.stream)
                .push_bind(r.ts_ms)
                .push_bind(r.received_ms)
                .push_bind(&r.prompt_version)
                .push_bind(&r.request_model)
                .push_bind(&r.response_model)
                .push_bind(&r.system_fingerprint)
                .push_bind(&r.input)
                .push_bind(&r.context)
                .push_bind(&r.output)
                .push_bind(&r.finish_reason)
                .push_bind(r.input_tokens)
                .push_bind(r.output_tokens)
                .push_bind(r.latency_ms)
                .push_bind(&r.session_id)
                .push_bind(&r.tool_calls)
                .push_bind(r.refusal)
                .push_bind(r.sampled)
                .push_bind(&r.embedding)
                .push_bind(r.max_tokens)
                .push_bind(&r.labels);
        });
        qb.push(" ON CONFLICT (ext_id) DO NOTHING RETURNING ext_id, id");
        Ok(qb.build_query_as().fetch_all(&mut **self).await?)
    }
}

impl InsertRows for sqlx::Transaction<'static, sqlx::Postgres> {
    async fn insert_rows<'a>(
        &'a mut self,
        rows: &'a [ResponseRow],
        chunk: &'a [(usize, String)],
    ) -> Result<Vec<(String, i64)>> {
        fn col<'r, T>(
            rows: &'r [ResponseRow],
            chunk: &[(usize, String)],
            f: impl Fn(&'r ResponseRow) -> T,
        ) -> Vec<T> {
            chunk.iter().map(|(i, _)| f(&rows[*i])).collect()
        }
        let q = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO responses ({RESPONSE_COLUMNS}) SELECT * FROM UNNEST(\
             $1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], \
             $9::text[], $10::text[], $11::text[], $12::text[], $13::int8[], $14::int8[], $15::int8[], $16::text[], \
             $17::text[], $18::bool[], $19::bool[], $20::bytea[], $21::int8[], $22::text[]) \
             ON CONFLICT (ext_id) DO NOTHING RETURNING ext_id, id"
        )))
        .bind(chunk.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>())
        .bind(col(rows, chunk, |r| r.stream.as_str()))
        .bind(col(rows, chunk, |r| r.ts_ms))
        .bind(col(rows, chunk, |r| r.received_ms))
        .bind(col(rows, chunk, |r| r.prompt_version.as_deref()))
        .bind(col(rows, chunk, |r| r.request_model.as_deref()))
        .bind(col(rows, chunk, |r| r.response_model.as_deref()))
        .bind(col(rows, chunk, |r| r.system_fingerprint.as_deref()))
        .bind(col(rows, chunk, |r| r.input.as_deref()))
        .bind(col(rows, chunk, |r| r.context.as_deref()))
        .bind(col(rows, chunk, |r| r.output.as_str()))
        .bind(col(rows, chunk, |r| r.finish_reason.as_deref()))
        .bind(col(rows, chunk, |r| r.input_tokens))
        .bind(col(rows, chunk, |r| r.output_tokens))
        .bind(col(rows, chunk, |r| r.latency_ms))
        .bind(col(rows, chunk, |r| r.session_id.as_deref()))
        .bind(col(rows, chunk, |r| r.tool_calls.as_deref()))
        .bind(col(rows, chunk, |r| r.refusal))
        .bind(col(rows, chunk, |r| r.sampled))
        .bind(col(rows, chunk, |r| r.embedding.as_deref()))
        .bind(col(rows, chunk, |r| r.max_tokens))
        .bind(col(rows, chunk, |r| r.labels.as_deref()));
        Ok(q.fetch_all(&mut **self).await?)
    }
}

/// A row that judges apply to: (index in the batch, response id, judges).
type Candidate = (usize, i64, Vec<String>);

/// Rows per INSERT statement: well under SQLite's 32,766 bound parameters.
const CHUNK: usize = 500;

impl Store {
    /// Inserts a batch in one transaction with its roll-ups and precomputed
    /// scores; a repeated `ext_id` (in the batch or already stored) is
    /// skipped and counted as a duplicate. Committed before it returns.
    pub async fn insert_responses(&self, rows: &[ResponseRow]) -> Result<InsertOutcome> {
        self.ingest_responses(rows, None).await
    }

    /// [`Store::insert_responses`], also choosing records for judging (the
    /// rate decision in `sampled`, then the stream's hourly floor and cap)
    /// and enqueuing their judge jobs, in the same transaction.
    pub async fn ingest_responses(
        &self,
        rows: &[ResponseRow],
        plan: Option<&JobPlan<'_>>,
    ) -> Result<InsertOutcome> {
        Ok(self.ingest_responses_marked(rows, plan).await?.0)
    }

    /// [`Store::ingest_responses`], also telling which rows were stored
    /// (`true`) and which were duplicates, so a writer that merged several
    /// requests into one transaction can answer each of them.
    pub async fn ingest_responses_marked(
        &self,
        rows: &[ResponseRow],
        plan: Option<&JobPlan<'_>>,
    ) -> Result<(InsertOutcome, Vec<bool>)> {
        // Duplicates inside the batch are dropped here; the first one wins.
        // Rows without an idempotency key get a generated one so that every
        // inserted row can be matched to its id.
        let mut seen = HashSet::new();
        let mut unique: Vec<(usize, String)> = Vec::with_capacity(rows.len());
        // Agent and tool spans are session events only, not responses.
        let mut session_only: Vec<(usize, String)> = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let to = if r.session_only {
                &mut session_only
            } else {
                &mut unique
            };
            match &r.ext_id {
                Some(e) if !seen.insert(e.as_str()) => {}
                Some(e) => to.push((i, e.clone())),
                None => to.push((i, format!("gen:{:032x}", rand::random::<u128>()))),
            }
        }
        // Inserted in id order: two PostgreSQL writers whose batches share
        // ids then wait on each other's uncommitted rows in the same order
        // and cannot deadlock (in batch order they could, and a request got
        // 503). Everything else keeps batch order.
        let mut by_key = unique.clone();
        by_key.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        let mut jobs = 0u64;
        let mut new_events = HashSet::new();
        let inserted: Vec<(usize, i64)> = on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            let mut ids: HashMap<String, i64> = HashMap::with_capacity(unique.len());
            for chunk in by_key.chunks(CHUNK) {
                ids.extend(tx.insert_rows(rows, chunk).await?);
            }
            let inserted: Vec<(usize, i64)> = unique
                .iter()
                .filter_map(|(i, ext)| ids.get(ext).map(|id| (*i, *id)))
                .collect();


            // Judge sampling: per (stream, hour), lock the counter, apply
            // the floor and cap in batch order, enqueue jobs.
            if let Some(plan) = plan {
                let mut groups: BTreeMap<(&str, i64), Vec<Candidate>> = BTreeMap::new();
                for &(i, id) in &inserted {
                    let judges = rows[i].judges.clone();
                    if !judges.is_empty() {
                        groups.entry((rows[i].stream.as_str(), hour_of(rows[i].ts_ms))).or_default().push((i, id, judges));
                    }
                }
                let (mut flip_on, mut flip_off, mut new_jobs) = (Vec::new(), Vec::new(), Vec::new());
                for ((stream, hour), members) in &groups {
                    let (floor, cap) = (plan.floor_cap)(stream);
                    let (mut n,): (i64,) = sqlx::query_as(
                        "INSERT INTO judge_sample_hourly (stream, hour_ms, n) VALUES ($1, $2, 0) \
                         ON CONFLICT (stream, hour_ms) DO UPDATE SET n = judge_sample_hourly.n RETURNING n",
                    )
                    .bind(*stream)
                    .bind(*hour)
                    .fetch_one(&mut *tx)
                    .await?;
                    let before = n;
                    for (i, id, judges) in members {
                        let by_rate = rows[*i].sampled;
                        let take = judged_by_sample(by_rate, n, floor, cap);
                        if take {
                            n += 1;
                            for j in judges {
                                new_jobs.push((*id, j.as_str(), *i));
                            }
                        }
                        match (by_rate, take) {
                            (false, true) => flip_on.push(*id),
                            (true, false) => flip_off.push(*id),
                            _ => {}
                        }
                    }
                    if n != before {
                        sqlx::query("UPDATE judge_sample_hourly SET n = $1 WHERE stream = $2 AND hour_ms = $3")
                            .bind(n)
                            .bind(*stream)
                            .bind(*hour)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                for (flag, ids) in [(true, &flip_on), (false, &flip_off)] {
                    for chunk in ids.chunks(CHUNK) {
                        let mut qb = sqlx::QueryBuilder::new("UPDATE responses SET sampled = ");
                        qb.push_bind(flag).push(" WHERE id IN (");
                        let mut sep = qb.separated(", ");
                        for id in chunk {
                            sep.push_bind(*id);
                        }
                        qb.push(")");
                        qb.build().execute(&mut *tx).await?;
                    }
                }
                for chunk in new_jobs.chunks(CHUNK) {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO judge_jobs (response_id, judge, stream, ts_ms, status, attempts, not_before_ms, created_ms) ",
                    );
                    qb.push_values(chunk, |mut b, (id, judge, i)| {
                        b.push_bind(*id)
                            .push_bind(*judge)
                            .push_bind(&rows[*i].stream)
                            .push_bind(rows[*i].ts_ms)
                            .push_bind("pending")
                            .push_bind(0i64)
                            .push_bind(plan.now_ms)
                            .push_bind(plan.now_ms);
                    });
                    qb.push(" ON CONFLICT (response_id, judge) DO NOTHING");
                    jobs += qb.build().execute(&mut *tx).await?.rows_affected();
                }
            }

            // Roll-ups and precomputed scores, last: the rows they lock are
            // shared by concurrent writers, so hold them as briefly as possible.
            let mut roll = BatchRollup::default();
            let mut precomputed = Vec::new();
            for &(i, id) in &inserted {
                roll.add_response(&rows[i]);
                for (judge, score) in &rows[i].scores {
                    precomputed.push((id, i, judge.as_str(), *score));
                }
            }
            for chunk in precomputed.chunks(CHUNK) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO judge_scores (response_id, stream, ts_ms, judge, judge_version, score, reasoning, source, created_ms) ",
                );
                qb.push_values(chunk, |mut b, (id, i, judge, score)| {
                    b.push_bind(*id)
                        .push_bind(&rows[*i].stream)
                        .push_bind(rows[*i].ts_ms)
                        .push_bind(*judge)
                        .push_bind(0i64)
                        .push_bind(*score)
                        .push_bind(rows[*i].explanations.get(*judge))
                        .push_bind("precomputed")
                        .push_bind(rows[*i].received_ms);
                });
                qb.build().execute(&mut *tx).await?;
            }
            super::rollups::upsert_hourly_rollups!(&mut *tx, &roll.hourly);
            super::rollups::upsert_length_rollups!(&mut *tx, &roll.length);
            super::rollups::upsert_score_rollups!(&mut *tx, &roll.scores);
            for ((stream, hour, dims), (n, sum)) in &roll.embedding {
                sqlx::query("INSERT INTO rollup_embedding (stream, hour_ms, n, dims, sum) VALUES ($1, $2, $3, $4, $5)")
                    .bind(stream)
                    .bind(*hour)
                    .bind(*n)
                    .bind(*dims)
                    .bind(f64_bytes(sum))
                    .execute(&mut *tx)
                    .await?;
            }

            // Session events: the new responses of a session and the
            // session-only spans, each counted once.
            let mut events: Vec<_> = unique
                .iter()
                .filter(|(_, ext)| ids.contains_key(ext))
                .chain(&session_only)
                .filter_map(|(i, ext)| super::session_writes::event_of(&rows[*i], ext))
                .collect();
            events.sort_unstable_by(|a, b| a.ext_id.cmp(b.ext_id));
            if !events.is_empty() {
                // Folded in memory first: one upsert per session touched,
                // however many of its records the batch holds.
                new_events = tx.insert_events(&events).await?;
                let deltas = super::session_writes::deltas(&events, &new_events);
                tx.upsert_sessions(&deltas).await?;
            }
            let spend = super::session_writes::spend_deltas(rows, &inserted);
            tx.upsert_spend(&spend).await?;
            let versions = super::annotations::prompt_versions_of(rows, &inserted);
            if !versions.is_empty() {
                let now = rows.iter().map(|r| r.received_ms).max().unwrap_or(0);
                super::annotations::record_prompt_versions!(&mut *tx, &versions, now);
            }
            tx.commit().await?;
            inserted
        });
        let mut marks = vec![false; rows.len()];
        for (i, _) in &inserted {
            marks[*i] = true;
        }
        for (i, ext) in &session_only {
            marks[*i] = new_events.contains(ext);
        }
        let accepted = marks.iter().filter(|m| **m).count() as u64;
        Ok((
            InsertOutcome {
                accepted,
                duplicates: rows.len() as u64 - accepted,
                jobs,
            },
            marks,
        ))
    }

    /// Number of stored responses of a stream in `[from_ms, to_ms)`.
    pub async fn count_responses(&self, stream: &str, from_ms: i64, to_ms: i64) -> Result<i64> {
        let n: (i64,) = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT COUNT(*) FROM responses WHERE stream = $1 AND ts_ms >= $2 AND ts_ms < $3",
        )
        .bind(stream)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(pool)
        .await)?;
        Ok(n.0)
    }

    /// One stored response by id (judge worker, tests).
    pub async fn response(&self, id: i64) -> Result<Option<ResponseRow>> {
        let row = on_db!(self.db(), pool => sqlx::query_as::<_, ResponseRow>(
            "SELECT id, ext_id, stream, ts_ms, received_ms, prompt_version, request_model, response_model, \
             system_fingerprint, input, context, output, finish_reason, input_tokens, output_tokens, latency_ms, \
             session_id, tool_calls, refusal, sampled, embedding, max_tokens, labels FROM responses WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?;
        Ok(row)
    }
}
