//! `POST /v1/responses`: one record, a JSON array, or NDJSON.
//!
//! The answer (`202 {"accepted", "duplicates"}`) is sent only after the
//! batch, its roll-ups and its judge jobs are committed. A malformed batch
//! is rejected whole with a 400 naming the record index and field.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Ctx, Record, prepare};
use crate::store::{InsertOutcome, ResponseRow, StoreError};

/// Why an ingest request failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Invalid(#[from] super::RecordError),
    #[error("{0}")]
    BadRequest(String),
    /// The request is larger than a configured limit (413).
    #[error("{message}")]
    TooLarge { message: String, limit: usize },
    #[error("storage unavailable: {0}")]
    Store(#[from] StoreError),
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        match self {
            IngestError::Invalid(e) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string(), "index": e.index, "field": e.field})),
            )
                .into_response(),
            IngestError::BadRequest(m) => {
                (StatusCode::BAD_REQUEST, Json(json!({"error": m}))).into_response()
            }
            IngestError::TooLarge { message, limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": message, "limit": limit})),
            )
                .into_response(),
            IngestError::Store(e) => {
                tracing::error!("ingest write failed: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": "storage unavailable, retry later"})),
                )
                    .into_response()
            }
        }
    }
}

pub async fn post_responses(
    State(ctx): State<Ctx>,
    body: Bytes,
) -> Result<(StatusCode, Json<InsertOutcome>), IngestError> {
    // The ingest token is checked by `http::auth::guard` before the body is read.
    let started = std::time::Instant::now();
    let stored = async {
        let max = ctx.live.current().ingest().max_records;
        let records =
            tokio::task::spawn_blocking(move || super::record::parse_body_limited(&body, max))
                .await
                .map_err(|e| IngestError::BadRequest(format!("parse task failed: {e}")))?
                .map_err(|e| match e {
                    super::record::BodyError::Record(r) => IngestError::Invalid(r),
                    e @ super::record::BodyError::TooMany { limit } => IngestError::TooLarge {
                        message: e.to_string(),
                        limit,
                    },
                })?;
        store_records(&ctx, records, ctx.clock.now_ms()).await
    }
    .await;
    crate::telemetry::record_ingest(stored.as_ref().ok(), started);
    Ok((StatusCode::ACCEPTED, Json(stored?)))
}

/// The shared write path of the JSON API and OTLP: signals and the judges
/// that apply (from the live settings), computed off the executor, then the
/// group-commit writer.
pub async fn store_records(
    ctx: &Ctx,
    records: Vec<Record>,
    now_ms: i64,
) -> Result<InsertOutcome, IngestError> {
    if records.is_empty() {
        return Ok(InsertOutcome::default());
    }
    let live = ctx.live.current();
    let plan = live.judging().enabled && !live.judges().is_empty();
    let for_rows = live.clone();
    let rows: Vec<ResponseRow> = tokio::task::spawn_blocking(move || {
        let mut rows = prepare(&records, now_ms, for_rows.judging());
        for_rows.prices().apply(&mut rows);
        if plan {
            for r in &mut rows {
                r.judges = super::state::judges_for(for_rows.judges(), r);
            }
        }
        rows
    })
    .await
    .map_err(|e| IngestError::BadRequest(format!("signal task failed: {e}")))?;
    Ok(ctx.writer.write(rows, live, plan, now_ms).await?)
}
