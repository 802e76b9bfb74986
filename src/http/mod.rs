//! The daemon's own HTTP endpoints: health, readiness, metrics, the status
//! API, the alerts API and the annotations API. The daemon's router (`daemon::router`) merges
//! them with the ingest routes and the status pages.

mod alerts_api;
mod annotations_api;
pub mod auth;
mod status_api;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use axum::extract::FromRef;

use crate::clock::Clock;
use crate::current::Current;
use crate::secret::Secret;
use crate::store::Store;

/// What these endpoints need from the daemon.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub store: Store,
    pub live: Current<dyn Settings>,
    pub clock: Clock,
}

/// What these endpoints read of the reloadable settings (`live::Live`
/// provides it; `http` names neither it nor the config).
pub trait Settings: Send + Sync {
    /// Bearer tokens for writing records (`ingest.tokens`).
    fn ingest_tokens(&self) -> &[Secret];
    /// Tokens for reading or changing state (`api.tokens`).
    fn api_tokens(&self) -> &[Secret];
    fn api(&self) -> &auth::ApiConfig;
    /// The public URL (`base_url`), which decides the cookie's `Secure`.
    fn base_url(&self) -> Option<&str>;
    fn detectors(&self) -> &crate::signals::DetectorConfig;
}

/// Health, readiness, metrics, status and alerts routes, for any daemon
/// state that provides a [`Ctx`].
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Ctx: FromRef<S>,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .merge(alerts_api::routes())
        .merge(annotations_api::routes())
        .merge(status_api::routes())
        .route("/metrics", get(metrics))
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the database answers.
async fn readyz(State(ctx): State<Ctx>) -> (StatusCode, String) {
    match ctx.store.ping().await {
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
