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
use crate::store::{InsertOutcome, JobPlan, ModelIdentity, ResponseRow, StoreError};

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
    if app.ingest.authorize(&app.live().ingest_tokens, h) {
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
    let started = std::time::Instant::now();
    let stored = async {
        let records = tokio::task::spawn_blocking(move || super::parse_body(&body))
            .await
            .map_err(|e| IngestError::BadRequest(format!("parse task failed: {e}")))??;
        store_records(&app, records, crate::daemon::now_ms()).await
    }
    .await;
    crate::telemetry::record_ingest(stored.as_ref().ok(), started);
    Ok((StatusCode::ACCEPTED, Json(stored?)))
}

/// The shared write path of the JSON API and OTLP: signals, sampling, one
/// transaction, then model identity once per distinct identity in the batch.
pub async fn store_records(
    app: &App,
    records: Vec<Record>,
    now_ms: i64,
) -> Result<InsertOutcome, IngestError> {
    if records.is_empty() {
        return Ok(InsertOutcome::default());
    }
    let live = app.live();
    let judging = live.config.judging.clone();
    let rows: Vec<ResponseRow> =
        tokio::task::spawn_blocking(move || prepare(&records, now_ms, &judging))
            .await
            .map_err(|e| IngestError::BadRequest(format!("signal task failed: {e}")))?;
    let state = app.ingest.clone();
    let judging = &live.config.judging;
    let judges_for = |r: &ResponseRow| super::state::judges_for(&live.judges, r);
    let floor_cap = |s: &str| judging.floor_cap(s);
    let plan = JobPlan {
        judges_for: &judges_for,
        floor_cap: &floor_cap,
        now_ms,
    };
    let use_plan = judging.enabled && !live.judges.is_empty();
    let _serial = match app.store.backend() {
        crate::store::Backend::Sqlite => Some(state.sqlite_writes.lock().await),
        crate::store::Backend::Postgres => None,
    };
    let outcome = app
        .store
        .ingest_responses(&rows, use_plan.then_some(&plan))
        .await?;
    observe_identities(app, &rows).await?;
    Ok(outcome)
}

/// How often an unchanged model identity is written again.
const IDENTITY_REFRESH_MS: i64 = 60_000;

/// (stream, requested model, response model, fingerprint, latest time).
type Sighting<'a> = (
    &'a str,
    &'a str,
    &'a Option<String>,
    &'a Option<String>,
    i64,
);

/// Records which model answered, once per distinct (stream, requested
/// model, response model, fingerprint) in the batch, in order of first
/// appearance, so a change inside a batch is still an event.
async fn observe_identities(app: &App, rows: &[ResponseRow]) -> Result<(), StoreError> {
    let mut seen: Vec<Sighting> = Vec::new();
    for r in rows {
        if r.response_model.is_none() && r.system_fingerprint.is_none() {
            continue;
        }
        let requested = r.request_model.as_deref().unwrap_or("*");
        match seen.iter_mut().find(|s| {
            s.0 == r.stream
                && s.1 == requested
                && *s.2 == r.response_model
                && *s.3 == r.system_fingerprint
        }) {
            Some(s) => s.4 = s.4.max(r.ts_ms),
            None => seen.push((
                &r.stream,
                requested,
                &r.response_model,
                &r.system_fingerprint,
                r.ts_ms,
            )),
        }
    }
    for (stream, requested, model, fp, at) in seen {
        let scope = format!("stream:{stream}");
        let key = (scope.clone(), requested.to_string());
        {
            // Unchanged and written within the last minute: nothing to learn.
            let cache = app
                .ingest
                .identity_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((m, f, written)) = cache.get(&key)
                && m == model
                && f == fp
                && (at - written).abs() < IDENTITY_REFRESH_MS
            {
                continue;
            }
        }
        let identity = ModelIdentity {
            response_model: model.clone(),
            system_fingerprint: fp.clone(),
        };
        if let Some(ev) = app
            .store
            .observe_model(&scope, requested, &identity, at)
            .await?
        {
            tracing::warn!(scope = %ev.scope, old = ?ev.old_model, new = ?ev.new_model, "model identity changed");
        }
        app.ingest
            .identity_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (model.clone(), fp.clone(), at));
    }
    Ok(())
}
