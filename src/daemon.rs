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
    let app = App::new(config, store.clone());
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_watcher(shutdown.clone()));
    let canaries = start_canaries(&app, shutdown.clone()).await?;
    tracing::info!(%addr, instance = %app.instance_id, "canaryd listening");
    println!("canaryd listening on http://{addr}");
    let router = crate::http::router(app);
    let token = shutdown.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await
        .context("HTTP server failed")?;
    shutdown.cancel();
    if let Err(e) = canaries.await {
        tracing::error!("canary scheduler task failed: {e}");
    }
    store.close().await;
    tracing::info!("canaryd stopped");
    Ok(())
}

/// Starts the canary scheduler over the configured suites and judges.
async fn start_canaries(
    app: &App,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use crate::canary::{expect::Evaluator, runner, schedule};
    let providers = crate::provider::Providers::from_config(&app.config)?;
    let judges = crate::judge::load::load_dir(&app.config.judges, Some(&app.config));
    for d in judges.diagnostics.0.iter().filter(|d| d.is_error()) {
        tracing::error!("{d}");
    }
    let names = judges.names();
    let runner = runner::Runner {
        store: app.store.clone(),
        eval: Evaluator {
            providers,
            judges: judges
                .judges
                .into_iter()
                .map(|j| (j.name.clone(), j))
                .collect(),
        },
        owner: app.instance_id.clone(),
        clock: runner::system_clock(),
    };
    Ok(schedule::start(runner, app.config.clone(), names, shutdown).await?)
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
