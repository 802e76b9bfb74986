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

use super::{Record, prepare};
use crate::app::App;
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
pub fn authorize(app: &App, headers: &HeaderMap) -> Result<(), IngestError> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if app.ingest.authorize(h) {
        Ok(())
    } else {
        Err(IngestError::Unauthorized)
    }
}

pub async fn post_responses(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<InsertOutcome>), IngestError> {
    authorize(&app, &headers)?;
    let records = tokio::task::spawn_blocking(move || super::parse_body(&body))
        .await
        .map_err(|e| IngestError::BadRequest(format!("parse task failed: {e}")))??;
    let outcome = store_records(&app, records, crate::daemon::now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}

/// The shared write path of the JSON API and OTLP: signals and the judges
/// that apply, computed off the executor, then the group-commit writer.
pub async fn store_records(
    app: &App,
    records: Vec<Record>,
    now_ms: i64,
) -> Result<InsertOutcome, IngestError> {
    if records.is_empty() {
        return Ok(InsertOutcome::default());
    }
    let started = std::time::Instant::now();
    let config = app.config.clone();
    let state = app.ingest.clone();
    let plan = config.judging.enabled && !state.judges.is_empty();
    let rows: Vec<ResponseRow> = tokio::task::spawn_blocking(move || {
        let mut rows = prepare(&records, now_ms, &config.judging);
        if plan {
            for r in &mut rows {
                r.judges = state.judges_for(r);
            }
        }
        rows
    })
    .await
    .map_err(|e| IngestError::BadRequest(format!("signal task failed: {e}")))?;
    let outcome = app
        .writer
        .write(rows, app.config.clone(), plan, now_ms)
        .await?;
    metrics::histogram!("canaryd_ingest_request_seconds").record(started.elapsed().as_secs_f64());
    Ok(outcome)
}
