//! The HTTP surface of the daemon: health, ingest and API routes, and the
//! status pages (`crate::web`).

mod alerts_api;
pub mod auth;
mod status_api;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::app::App;

/// All routes of the daemon, behind the one access check (`auth::guard`).
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .merge(alerts_api::routes())
        .merge(status_api::routes())
        .route("/metrics", get(metrics))
        .merge(crate::ingest::routes(&app.config.ingest))
        .with_state(app.clone())
        .merge(crate::web::router(app.clone()))
        .layer(axum::middleware::from_fn_with_state(app, auth::guard))
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the database answers.
async fn readyz(State(app): State<App>) -> (StatusCode, String) {
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unreachable: {e}\n"),
        ),
    }
}

/// Prometheus text exposition of canaryd's own metrics.
async fn metrics() -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::telemetry::render(),
    )
}
