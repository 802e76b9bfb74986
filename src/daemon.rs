//! `canaryd serve`: wires the subsystems together and runs until SIGTERM.

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::{Loaded, redact_url};
use crate::store::Store;

/// Runs the daemon until SIGTERM or SIGINT, then drains and returns.
pub async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    signal_watcher(shutdown.clone());
    run_until(loaded, shutdown, None).await
}

/// Runs the daemon until `shutdown` is cancelled. `bound` receives the
/// listening address once the daemon is ready, for embedders (`canaryd demo`)
/// that ask for port 0.
pub async fn run_until(
    loaded: Loaded,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<()> {
    let config_path = loaded.path.clone();
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
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot watch SIGHUP")?;
    tokio::spawn(reload_watcher(hup, config_path, shutdown.clone()));
    tokio::spawn(crate::telemetry::upkeep(shutdown.clone()));
    tokio::spawn(crate::telemetry::systemd::watchdog(shutdown.clone()));
    tokio::spawn(retention_loop(app.clone(), shutdown.clone()));
    if let Some(e) = &app.ingest.auth_error {
        anyhow::bail!("ingest tokens: {e}");
    }
    let canaries = start_canaries(&app, shutdown.clone()).await?;
    tokio::spawn(detectors_loop(app.clone(), shutdown.clone()));
    tokio::task::spawn_blocking(crate::ingest::tokens::warm_up);
    let judge_worker = start_judge_worker(&app, &shutdown);
    tracing::info!(%addr, instance = %app.instance_id, "canaryd listening");
    println!("canaryd listening on http://{addr}");
    crate::telemetry::systemd::ready();
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
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
    shutdown.cancel();
    if let Err(e) = canaries.await {
        tracing::error!("canary scheduler task failed: {e}");
    }
    let _ = notifier.await;
    if let Some(w) = judge_worker {
        let _ = w.await;
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
    let providers = crate::provider::Providers::from_config(&app.config)?.map(|p| {
        p.with_attempt_hook(std::sync::Arc::new(
            crate::telemetry::provider_attempt_failed,
        ))
    });
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

/// Starts the judge worker when judging is on and judges are loaded.
fn start_judge_worker(
    app: &App,
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if !app.config.judging.enabled || app.ingest.judges.is_empty() {
        return None;
    }
    match crate::provider::Providers::from_config(&app.config) {
        Ok(p) => Some(tokio::spawn(crate::judge::worker::run(
            app.clone(),
            p.map(|p| {
                p.with_attempt_hook(std::sync::Arc::new(
                    crate::telemetry::provider_attempt_failed,
                ))
            }),
            shutdown.clone(),
        ))),
        Err(e) => {
            tracing::error!("judge worker not started: {e}");
            None
        }
    }
}

/// SIGHUP (`systemctl reload`): re-validates the config, suites and judges
/// and logs every problem, so an invalid new version is reported while the
/// running one continues. Suites are picked up by the scheduler's own
/// directory watch (a broken file keeps its last good version); changes to
/// the config file itself take effect at the next restart, which the log
/// says. Without this handler SIGHUP's default action would kill the daemon.
async fn reload_watcher(
    mut hup: tokio::signal::unix::Signal,
    config_path: std::path::PathBuf,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        crate::telemetry::systemd::reloading();
        let report = crate::check::check_all(&config_path).await;
        let errors: Vec<_> = report
            .diagnostics
            .0
            .iter()
            .filter(|d| d.is_error())
            .collect();
        for d in &errors {
            tracing::error!("reload rejected: {d}");
        }
        if errors.is_empty() {
            tracing::info!(
                suites = report.suites,
                judges = report.judges,
                "SIGHUP: configuration valid; suites are reloaded from disk, config-file changes apply at restart"
            );
        } else {
            tracing::error!(
                errors = errors.len(),
                "SIGHUP: new configuration invalid; the running version continues"
            );
        }
        crate::telemetry::systemd::ready();
    }
}

/// Cancels `token` on SIGTERM or SIGINT. The handlers are installed before
/// this returns, so a caller that announces readiness afterwards can never be
/// killed by a signal's default action in between.
pub fn signal_watcher(token: CancellationToken) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    tokio::spawn(async move {
        let (mut term, mut int) = match (term, int) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot watch SIGTERM/SIGINT: {e}");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
        token.cancel();
    })
}

/// Milliseconds since the Unix epoch: the daemon's one reading of the clock,
/// handed down to the logic as `now`.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Applies retention every few minutes on whichever replica holds the lease.
async fn retention_loop(app: App, shutdown: CancellationToken) {
    const DAY_MS: i64 = 86_400_000;
    let period = std::time::Duration::from_secs(300);
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        let held = app
            .store
            .try_lease(
                "retention",
                &app.instance_id,
                now,
                2 * period.as_millis() as i64,
            )
            .await;
        if !matches!(held, Ok(true)) {
            continue;
        }
        let r = &app.config.retention;
        let raw_before = now - i64::from(r.raw_days) * DAY_MS;
        let rollup_before = now - i64::from(r.rollup_days) * DAY_MS;
        match app
            .store
            .sweep_retention(raw_before, rollup_before, 20)
            .await
        {
            Ok(swept) if swept != Default::default() => tracing::info!(?swept, "retention applied"),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention sweep failed: {e}"),
        }
    }
}

/// Evaluates every detector every `detectors.every_secs` on whichever
/// replica holds the `detectors` lease, keeping the latest verdicts and the
/// health series, then turning the findings into alert transitions.
async fn detectors_loop(app: App, shutdown: CancellationToken) {
    let cfg = &app.config.detectors;
    let period = std::time::Duration::from_secs(cfg.every_secs.max(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        let ttl = 2 * period.as_millis() as i64 + 30_000;
        if !matches!(
            app.store
                .try_lease("detectors", &app.instance_id, now, ttl)
                .await,
            Ok(true)
        ) {
            continue;
        }
        match crate::signals::report::run_once(&app.store, now, cfg).await {
            Ok(findings) => {
                let firing = findings
                    .iter()
                    .filter(|f| f.status == crate::signals::Status::Firing)
                    .count();
                tracing::info!(findings = findings.len(), firing, "detectors evaluated");
                let alerts = crate::alert::settings_for(&app.config);
                if let Err(e) = crate::alert::process(&app.store, &findings, now, &alerts).await {
                    tracing::warn!("alert processing failed: {e}");
                }
            }
            Err(e) => tracing::warn!("detector evaluation failed: {e}"),
        }
    }
}
