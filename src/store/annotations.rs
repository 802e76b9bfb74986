//! Change annotations (see `crate::annotations` for what they are and how
//! they are validated; this file only stores and reads them).

use super::{Result, Store};
use crate::on_db;

pub use crate::annotations::Annotation;

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

/// The prompt versions of a batch's inserted rows: (stream, version) →
/// earliest record time, in key order.
pub(crate) fn prompt_versions_of<'a>(
    rows: &'a [super::ResponseRow],
    inserted: &[(usize, i64)],
) -> std::collections::BTreeMap<(&'a str, &'a str), i64> {
    let mut out = std::collections::BTreeMap::new();
    for &(i, _) in inserted {
        let r = &rows[i];
        if let Some(v) = r.prompt_version.as_deref().filter(|v| !v.is_empty()) {
            let t = out.entry((r.stream.as_str(), v)).or_insert(r.ts_ms);
            *t = (*t).min(r.ts_ms);
        }
    }
    out
}

/// Records the batch's prompt versions in the open ingest transaction
/// `$tx`: one `INSERT … ON CONFLICT DO NOTHING RETURNING` per batch (a
/// known version costs an index probe, no row lock), and for each version
/// new to a stream that already had another one, a change annotation
/// (source `auto`, kind `prompt`) at the version's first record time. The
/// first version a stream ever shows is not a change and is not annotated.
macro_rules! record_prompt_versions {
    ($tx:expr, $versions:expr, $now:expr) => {{
        let versions: Vec<_> = $versions.iter().collect();
        let mut fresh: Vec<(String, String, i64)> = Vec::new();
        for chunk in versions.chunks(500) {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO prompt_versions (stream, version, first_ts_ms, created_ms) ",
            );
            qb.push_values(chunk, |mut b, ((stream, version), ts)| {
                b.push_bind(*stream)
                    .push_bind(*version)
                    .push_bind(**ts)
                    .push_bind($now);
            });
            qb.push(
                " ON CONFLICT (stream, version) DO NOTHING RETURNING stream, version, first_ts_ms",
            );
            let rows: Vec<(String, String, i64)> = qb.build_query_as().fetch_all(&mut *$tx).await?;
            fresh.extend(rows);
        }
        for (stream, version, ts) in fresh {
            let older: Option<(String,)> = sqlx::query_as(
                "SELECT version FROM prompt_versions WHERE stream = $1 AND version <> $2 \
                 ORDER BY first_ts_ms DESC LIMIT 1",
            )
            .bind(&stream)
            .bind(&version)
            .fetch_optional(&mut *$tx)
            .await?;
            if let Some((previous,)) = older {
                sqlx::query(
                    "INSERT INTO annotations (stream, kind, text, ts_ms, source, created_ms) \
                     VALUES ($1, 'prompt', $2, $3, 'auto', $4)",
                )
                .bind(&stream)
                .bind($crate::annotations::prompt_version_text(
                    &version, &previous,
                ))
                .bind(ts)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
            }
        }
    }};
}
pub(crate) use record_prompt_versions;
