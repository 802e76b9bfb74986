//! The daemon's router: the subsystems' routes merged over one state, each
//! handler extracting its subsystem's context from it.

use axum::Router;
use axum::extract::FromRef;

use super::app::App;

/// All routes of the daemon: health, metrics and the APIs (`http`), ingest,
/// and the status pages.
pub fn router(app: App) -> Router {
    let pages = crate::web::router(crate::web::Ctx::from_ref(&app));
    Router::new()
        .merge(crate::http::routes())
        .merge(crate::ingest::routes(app.config.ingest.max_body_bytes))
        .with_state(app)
        .merge(pages)
}
