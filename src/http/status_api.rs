//! `GET /api/v1/status`: the status report (health, verdicts, firing) as
//! JSON, evaluated at the time of the request.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::Ctx;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Ctx: axum::extract::FromRef<S>,
{
    Router::new().route("/api/v1/status", get(status))
}

/// True when no API tokens are configured or the request carries one of
/// them (the ingest tokens, current since the last reload).
fn authorized(ctx: &Ctx, headers: &HeaderMap) -> bool {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok());
    crate::ingest::authorize(&ctx.live.current().ingest_tokens, header)
}

async fn status(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if !authorized(&ctx, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong bearer token"})),
        )
            .into_response();
    }
    let now = ctx.clock.now_ms();
    let live = ctx.live.current();
    let cfg = &live.config.detectors;
    match ctx.store.detector_snapshot(now, cfg).await {
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
