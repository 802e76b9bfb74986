//! The daemon's router: the subsystems' routes merged over one state, each
//! handler extracting its subsystem's context from it.

use axum::Router;
use axum::extract::FromRef;

use super::app::App;

/// All routes of the daemon: health, metrics and the APIs (`http`), ingest,
/// and the status pages, behind the one access check (`http::auth::guard`).
pub fn router(app: App) -> Router {
    let pages = crate::web::router(crate::web::Ctx::from_ref(&app));
    Router::new()
        .merge(crate::http::routes())
        .merge(crate::ingest::routes(&app.config.ingest))
        .with_state(app.clone())
        .merge(pages)
        .layer(axum::middleware::from_fn_with_state(
            app.live
                .view(|l| l as std::sync::Arc<dyn crate::http::Settings>),
            crate::http::auth::guard,
        ))
}
