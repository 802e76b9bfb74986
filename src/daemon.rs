//! `canaryd serve`: wires the subsystems together and runs until SIGTERM.

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::{Loaded, redact_url};
use crate::store::Store;

/// Runs the daemon until SIGTERM or SIGINT, then drains and returns.
pub async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let config = loaded.config;
    let store = Store::connect(&config.database).await?;
    store.migrate().await.context("applying migrations")?;
    tracing::info!(database = %redact_url(&config.database), "database ready");
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    crate::telemetry::install();
    let app = App::new(config, store.clone());
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_watcher(shutdown.clone()));
    tokio::spawn(crate::telemetry::upkeep(shutdown.clone()));
    tokio::spawn(crate::telemetry::systemd::watchdog(shutdown.clone()));
    tracing::info!(%addr, instance = %app.instance_id, "canaryd listening");
    println!("canaryd listening on http://{addr}");
    crate::telemetry::systemd::ready();
    let notifier = tokio::spawn(crate::alert::notifier::run(
        store.clone(),
        crate::alert::settings_for(&app.config),
        std::time::Duration::from_secs(5),
        shutdown.clone(),
    ));
    let router = crate::http::router(app);
    let token = shutdown.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await
        .context("HTTP server failed")?;
    crate::telemetry::systemd::stopping();
    let _ = notifier.await;
    store.close().await;
    tracing::info!("canaryd stopped");
    Ok(())
}

/// Cancels `token` on SIGTERM or SIGINT.
pub async fn signal_watcher(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
    }
    token.cancel();
}
