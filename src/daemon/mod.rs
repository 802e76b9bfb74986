//! `canaryd serve`: the composition root. It builds the state (`app`), the
//! router (`router`) and the background loops, injects the one clock and
//! the live settings (`reload`) into each subsystem's narrow context, and
//! runs until SIGTERM.

mod app;
mod reload;
mod router;
mod sessions;

use anyhow::Context;
use axum::extract::FromRef;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use app::App;
pub use reload::Rejected;

use crate::clock::Clock;
use crate::config::Loaded;
use crate::secret::redact_url;
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
    let clock = Clock::system();
    let app = App::new(config, store.clone(), clock.clone());
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot watch SIGHUP")?;
    tokio::spawn(reload::watch_sighup(
        hup,
        config_path,
        app.live.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::telemetry::upkeep(shutdown.clone()));
    tokio::spawn(crate::telemetry::store_gauges(
        store.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::telemetry::systemd::watchdog(shutdown.clone()));
    tokio::spawn(retention_loop(app.clone(), shutdown.clone()));
    if let Err(e) = crate::config::ingest_tokens(&app.config)
        .and_then(|_| crate::config::api_tokens(&app.config))
    {
        anyhow::bail!("tokens: {e}");
    }
    let canaries = start_canaries(&app, shutdown.clone()).await?;
    tokio::spawn(detectors_loop(app.clone(), shutdown.clone()));
    let live = app.live.clone();
    tokio::spawn(sessions::run(
        store.clone(),
        app.instance_id.clone(),
        move || live.current().config.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    tokio::task::spawn_blocking(crate::tokens::warm_up);
    let judge_worker = start_judge_worker(&app, &shutdown);
    tracing::info!(%addr, instance = %app.instance_id, "canaryd listening");
    println!("canaryd listening on http://{addr}");
    crate::telemetry::systemd::ready();
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    let live = app.live.clone();
    let notifier = tokio::spawn(crate::alert::notifier::run(
        store.clone(),
        move || crate::config::alert_settings(&live.current().config),
        clock.clone(),
        std::time::Duration::from_secs(5),
        shutdown.clone(),
    ));
    let router = router::router(app);
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
    let _ = judge_worker.await;
    store.close().await;
    tracing::info!("canaryd stopped");
    Ok(())
}

/// Starts the canary scheduler over the live suites, judges and providers.
async fn start_canaries(
    app: &App,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use crate::canary::{runner, schedule};
    // Fail at start on what `App::new` could only log (a missing API key).
    crate::provider::Providers::from_config(&app.config.providers, &app.config.models)?;
    let runner = runner::Runner {
        store: app.store.clone(),
        eval: {
            let live = app.live.current();
            crate::canary::expect::Evaluator::new(live.providers.clone(), &live.judges)
        },
        owner: app.instance_id.clone(),
        clock: app.clock.clone(),
    };
    Ok(schedule::start(runner, app.live.subscribe(), shutdown).await?)
}

/// Starts the judge worker. It idles while judging is off or no judge is
/// loaded, so a reload that adds judges needs no restart.
fn start_judge_worker(app: &App, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let ctx = crate::judge::worker::Ctx::from_ref(app);
    tokio::spawn(crate::judge::worker::run(ctx, shutdown.clone()))
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
        let now = app.clock.now_ms();
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
        let live = app.live.current();
        let r = &live.config.retention;
        let before = |days: u32| now - i64::from(days) * DAY_MS;
        let swept = app
            .store
            .sweep_retention(before(r.raw_days), before(r.rollup_days), 20)
            .await;
        let cut = crate::store::AlertCutoffs {
            health_before_ms: before(r.health_days),
            resolved_alerts_before_ms: before(r.resolved_alert_days),
            sent_notifications_before_ms: before(r.sent_notification_days),
        };
        let alert_side = app.store.sweep_alert_retention(cut, 20).await;
        let annotations = app
            .store
            .sweep_annotations(before(r.annotation_days), 20)
            .await;
        for result in [swept, alert_side, annotations] {
            match result {
                Ok(swept) if swept != Default::default() => {
                    tracing::info!(?swept, "retention applied")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("retention sweep failed: {e}"),
            }
        }
    }
}

/// Evaluates every detector every `detectors.every_secs` on whichever
/// replica holds the `detectors` lease, keeping the latest verdicts and the
/// health series, then turning the findings into alert transitions.
async fn detectors_loop(app: App, shutdown: CancellationToken) {
    // `every_secs: 0` turns evaluation off on this replica; the setting is
    // still re-read every minute, so a reload can turn it back on.
    let period = |secs: u64| if secs == 0 { 60 } else { secs };
    let mut every_secs = period(app.live.current().config.detectors.every_secs);
    let mut tick = detector_interval(every_secs);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let live = app.live.current();
        let cfg = &live.config.detectors;
        if period(cfg.every_secs) != every_secs {
            every_secs = period(cfg.every_secs);
            tick = detector_interval(every_secs);
            tick.tick().await;
        }
        if cfg.every_secs == 0 {
            continue;
        }
        let now = app.clock.now_ms();
        let ttl = 2 * every_secs as i64 * 1000 + 30_000;
        if !matches!(
            app.store
                .try_lease("detectors", &app.instance_id, now, ttl)
                .await,
            Ok(true)
        ) {
            continue;
        }
        match detect_once(&app.store, now, cfg).await {
            Ok(findings) => {
                let firing = findings
                    .iter()
                    .filter(|f| f.status == crate::signals::Status::Firing)
                    .count();
                tracing::info!(findings = findings.len(), firing, "detectors evaluated");
                crate::telemetry::record_findings(&findings);
                let alerts = crate::config::alert_settings(&live.config);
                if let Err(e) = crate::alert::process(&app.store, &findings, now, &alerts).await {
                    tracing::warn!("alert processing failed: {e}");
                }
            }
            Err(e) => tracing::warn!("detector evaluation failed: {e}"),
        }
    }
}

/// One evaluation: load the snapshot, run the (pure) detectors, keep the
/// latest verdicts and a health point per subject. Returns the findings for
/// alerting.
pub async fn detect_once(
    store: &crate::store::Store,
    now_ms: i64,
    cfg: &crate::signals::DetectorConfig,
) -> Result<Vec<crate::signals::Finding>, crate::store::StoreError> {
    let snap = store.detector_snapshot(now_ms, cfg).await?;
    let findings = crate::signals::evaluate_snapshot(&snap, now_ms, cfg);
    store.save_findings(&findings).await?;
    store
        .record_health(
            now_ms,
            &crate::signals::health::health_scores(&findings, &cfg.health),
        )
        .await?;
    Ok(findings)
}

fn detector_interval(every_secs: u64) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(every_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}
