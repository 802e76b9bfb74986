//! `GET /api/v1/status`: the status report (health, verdicts, firing) as
//! JSON, evaluated at the time of the request.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;

pub fn routes() -> Router<App> {
    Router::new().route("/api/v1/status", get(status))
}

/// True when no API tokens are configured or the request carries one of
/// them (the ingest tokens, current since the last reload).
fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok());
    app.ingest.authorize(&app.live().ingest_tokens, header)
}

async fn status(State(app): State<App>, headers: HeaderMap) -> Response {
    if !authorized(&app, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong bearer token"})),
        )
            .into_response();
    }
    let now = crate::daemon::now_ms();
    let live = app.live();
    let cfg = &live.config.detectors;
    match app.store.detector_snapshot(now, cfg).await {
        Ok(snap) => Json(crate::signals::report::build(
            crate::signals::evaluate_snapshot(&snap, now, cfg),
            now,
            cfg,
        ))
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "status evaluation failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": e.to_string()})),
            )
                .into_response()
        }
    }
}
