//! Change annotations (see `crate::annotations` for what they are and how
//! they are validated; this file only stores and reads them).

use serde::Serialize;

use super::{Result, Store};
use crate::on_db;

/// One stored annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Annotation {
    pub id: i64,
    /// A stream name, or `*` for every stream.
    pub stream: String,
    pub kind: String,
    pub text: String,
    pub ts_ms: i64,
    pub source: String,
    pub created_ms: i64,
}

impl Store {
    /// Stores an annotation (fields already validated) and returns its id.
    pub async fn add_annotation(&self, a: &Annotation) -> Result<i64> {
        let id: (i64,) = on_db!(self.db(), pool => sqlx::query_as(
            "INSERT INTO annotations (stream, kind, text, ts_ms, source, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&a.stream)
        .bind(&a.kind)
        .bind(&a.text)
        .bind(a.ts_ms)
        .bind(&a.source)
        .bind(a.created_ms)
        .fetch_one(pool)
        .await)?;
        Ok(id.0)
    }

    /// Annotations of `stream` and those for all streams (`*`) with a time in
    /// `[from_ms, to_ms]`, oldest first, at most `limit` (the latest ones).
    /// `stream = None` lists every annotation.
    pub async fn annotations(
        &self,
        stream: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<Annotation>> {
        let mut rows = on_db!(self.db(), pool => sqlx::query_as::<_, Annotation>(
            "SELECT id, stream, kind, text, ts_ms, source, created_ms FROM annotations \
             WHERE ($1 IS NULL OR stream = $1 OR stream = '*') AND ts_ms >= $2 AND ts_ms <= $3 \
             ORDER BY ts_ms DESC, id DESC LIMIT $4",
        )
        .bind(stream)
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.reverse();
        Ok(rows)
    }
}
