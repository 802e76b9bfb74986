//! `GET /api/v1/status`: the status report (health, verdicts, firing) as
//! JSON, evaluated at the time of the request.

use axum::extract::State;
use axum::http::StatusCode;
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

/// Access (an API token) is checked by `http::auth::guard` in front of every route.
async fn status(State(ctx): State<Ctx>) -> Response {
    let now = ctx.clock.now_ms();
    let live = ctx.live.current();
    let cfg = live.detectors();
    let read = async {
        let snap = ctx.store.detector_snapshot(now, cfg).await?;
        let open = ctx.store.open_alerts().await?;
        Ok::<_, crate::store::StoreError>((snap, open))
    };
    match read.await {
        Ok((snap, open)) => Json(crate::signals::report::build(
            crate::signals::evaluate_snapshot(&snap, now, cfg),
            &crate::alert::open_states(&open),
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
