//! `POST /v1/responses`: one record, a JSON array, or NDJSON.
//!
//! The answer (`202 {"accepted", "duplicates"}`) is sent only after the
//! batch, its roll-ups and its judge jobs are committed. A malformed batch
//! is rejected whole with a 400 naming the record index and field.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Ctx, Record, prepare};
use crate::store::{InsertOutcome, ResponseRow, StoreError};

/// Why an ingest request failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error(transparent)]
    Invalid(#[from] super::RecordError),
    #[error("{0}")]
    BadRequest(String),
    #[error("storage unavailable: {0}")]
    Store(#[from] StoreError),
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        match self {
            IngestError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({"error": self.to_string()})),
            )
                .into_response(),
            IngestError::Invalid(e) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string(), "index": e.index, "field": e.field})),
            )
                .into_response(),
            IngestError::BadRequest(m) => {
                (StatusCode::BAD_REQUEST, Json(json!({"error": m}))).into_response()
            }
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

/// Refuses the request unless it carries an accepted bearer token.
pub fn authorize(ctx: &Ctx, headers: &HeaderMap) -> Result<(), IngestError> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if super::authorize(&ctx.live.current().ingest_tokens, h) {
        Ok(())
    } else {
        Err(IngestError::Unauthorized)
    }
}

pub async fn post_responses(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<InsertOutcome>), IngestError> {
    authorize(&ctx, &headers)?;
    let started = std::time::Instant::now();
    let stored = async {
        let records = tokio::task::spawn_blocking(move || super::parse_body(&body))
            .await
            .map_err(|e| IngestError::BadRequest(format!("parse task failed: {e}")))??;
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
    let plan = live.config.judging.enabled && !live.judges.is_empty();
    let for_rows = live.clone();
    let rows: Vec<ResponseRow> = tokio::task::spawn_blocking(move || {
        let mut rows = prepare(&records, now_ms, &for_rows.config.judging);
        crate::sessions::cost::Prices::from_config(&for_rows.config).apply(&mut rows);
        if plan {
            for r in &mut rows {
                r.judges = super::state::judges_for(&for_rows.judges, r);
            }
        }
        rows
    })
    .await
    .map_err(|e| IngestError::BadRequest(format!("signal task failed: {e}")))?;
    Ok(ctx
        .writer
        .write(rows, live.config.clone(), plan, now_ms)
        .await?)
}
