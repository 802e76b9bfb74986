//! Ingested production responses.

use serde::Serialize;

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
    pub latency_ms: Option<i64>,
    pub session_id: Option<String>,
    pub tool_calls: Option<String>,
    pub refusal: bool,
    pub sampled: bool,
    #[serde(skip)]
    pub embedding: Option<Vec<u8>>,
}

/// What a batch insert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InsertOutcome {
    pub accepted: u64,
    pub duplicates: u64,
}

/// Rows per INSERT statement: well under SQLite's 32,766 bound parameters.
const CHUNK: usize = 500;

impl Store {
    /// Inserts a batch in one transaction; a repeated `ext_id` is skipped and
    /// counted as a duplicate. Committed before it returns.
    pub async fn insert_responses(&self, rows: &[ResponseRow]) -> Result<InsertOutcome> {
        let mut accepted = 0u64;
        on_db!(self.db(), pool => {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(CHUNK) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO responses (ext_id, stream, ts_ms, received_ms, prompt_version, request_model, response_model, \
                     system_fingerprint, input, context, output, finish_reason, input_tokens, output_tokens, latency_ms, session_id, \
                     tool_calls, refusal, sampled, embedding) ",
                );
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.ext_id)
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
                        .push_bind(&r.embedding);
                });
                qb.push(" ON CONFLICT (ext_id) DO NOTHING");
                accepted += qb.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
        });
        Ok(InsertOutcome {
            accepted,
            duplicates: rows.len() as u64 - accepted,
        })
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
}
