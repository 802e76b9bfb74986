//! `canaryd demo`: the first ten minutes in one process. The simulator, the
//! daemon, a production application and stand-ins for the mail relay and
//! Slack run side by side; a silent update of the live alias is staged and
//! the daemon's own detectors, alerting and delivery code report it.
//!
//! `files.rs` writes the scratch directory, `capture.rs` runs the SMTP and
//! webhook stand-ins, `traffic.rs` is the application, `watch.rs` follows
//! the daemon and writes the summary. Nothing here decides a verdict: the
//! demo only feeds real components and reads what they stored.

pub mod capture;
pub mod files;
pub mod traffic;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use watch::Summary;
use watch::{Captured, Console, Watcher};

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(String);

fn err(context: &str, e: impl std::fmt::Display) -> DemoError {
    DemoError(format!("{context}: {e}"))
}

/// What `canaryd demo` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: Option<PathBuf>,
    /// Daemon address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Seconds of healthy live traffic before the update is staged.
    pub update_after: Duration,
    /// How long to wait for the detection after the update.
    pub timeout: Duration,
    pub forever: bool,
    /// Live records per second.
    pub rate: u32,
    pub history_hours: u32,
    pub history_per_hour: u32,
    pub seed: u64,
}

/// Runs the demo and returns what it observed (also written to `summary.json`).
pub async fn run(opts: Options) -> Result<Summary, DemoError> {
    let console = Arc::new(Console::new());
    let layout =
        files::create_root(opts.dir.as_deref()).map_err(|e| err("scratch directory", e))?;
    console.line(&format!("scratch directory: {}", layout.root.display()));
    let stop = CancellationToken::new();

    let scenario =
        crate::sim::Scenario::from_yaml(&layout.root.join("sim-scenario.yaml"), files::SCENARIO)
            .map_err(|e| err("demo scenario", e))?
            .with_seed(opts.seed);
    let update_phase = scenario
        .phase_index("silent-update")
        .ok_or_else(|| DemoError("the demo scenario lacks its silent-update phase".into()))?;
    let (sim_addr, sim, sim_task) =
        crate::sim::spawn(([127, 0, 0, 1], 0).into(), scenario, stop.clone())
            .await
            .map_err(|e| err("simulator", e))?;
    console.line(&format!(
        "simulator on http://{sim_addr}/v1: pinned gpt-4o-2024-08-06, live alias gpt-4o (→ gpt-4o-2024-08-06), judge gpt-4o-mini"
    ));

    let captures: watch::CaptureLog = Default::default();
    let log = captures.clone();
    let on_capture: capture::OnCapture = Arc::new(move |path, description| {
        let kind = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Captured {
                kind,
                path: path.to_path_buf(),
                at_ms: crate::clock::Clock::system().now_ms(),
                description: description.to_string(),
            });
    });
    let smtp = capture::smtp(layout.mail(), on_capture.clone(), stop.clone())
        .await
        .map_err(|e| err("SMTP capture", e))?;
    let hooks = capture::hooks(
        layout.slack(),
        layout.webhook(),
        layout.hook(),
        on_capture,
        stop.clone(),
    )
    .await
    .map_err(|e| err("webhook capture", e))?;
    console.line(&format!(
        "capturing alert email on smtp://{smtp} → {}, Slack and webhook posts on http://{hooks} → {}",
        layout.mail().display(),
        layout.root.join("captured").display()
    ));

    let daemon_addr = free_addr(opts.listen).map_err(|e| err("daemon address", e))?;
    let ep = files::Endpoints {
        daemon: daemon_addr,
        sim: sim_addr,
        smtp,
        hooks,
    };
    files::write_all(&layout, &ep).map_err(|e| err("writing the demo files", e))?;
    let mut loaded = crate::config::load(&layout.config()).map_err(|d| err("demo config", d))?;
    // CANARYD_DATABASE_URL / CANARYD_LISTEN are for the user's own daemon:
    // the demo never writes to their database or takes their port.
    loaded.config.database = layout.database();
    loaded.config.listen = daemon_addr;
    let detectors = loaded.config.detectors.clone();
    let daemon_stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(crate::daemon::run_until(
        loaded,
        daemon_stop.clone(),
        Some(tx),
    ));
    let addr = match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(addr)) => addr,
        _ => {
            stop.cancel();
            daemon_stop.cancel();
            let why = match daemon.await {
                Ok(Err(e)) => format!("{e:#}"),
                _ => "it did not report its address".into(),
            };
            return Err(DemoError(format!("the daemon did not start: {why}")));
        }
    };
    let dashboard = format!("http://{addr}/");
    console.line(&format!(
        "daemon on {dashboard} (SQLite in the scratch directory; config {}) — open the dashboard",
        layout.config().display()
    ));

    let app = traffic::App::new(sim_addr, addr);
    let window_start =
        crate::signals::window::Windows::new(crate::clock::Clock::system().now_ms(), &detectors)
            .current
            .0;
    let history = app
        .replay_history(
            window_start,
            opts.history_hours,
            opts.history_per_hour,
            opts.seed,
        )
        .await
        .map_err(|e| err("replaying history", e))?;
    console.line(&format!(
        "baseline: replayed {history} responses of stream `{}` over the {} hours before the detectors' window (answers from the live alias, timestamps in the past)",
        traffic::STREAM,
        opts.history_hours
    ));

    let counters = Arc::new(traffic::Counters::default());
    let agents = app.clone();
    // The agent pair before the update: the model answers, one turn.
    match agents
        .agent_session("orders-before-update", 12, Duration::from_secs(1))
        .await
    {
        Ok(turns) => console.line(&format!(
            "agent pair (stream `{}`): session orders-before-update answered in {turns} turn{}",
            traffic::AGENT_STREAM,
            if turns == 1 { "" } else { "s" }
        )),
        Err(e) => tracing::warn!("demo agent session: {e}"),
    }
    let traffic_task = tokio::spawn(live_traffic(
        app,
        opts.rate,
        opts.seed,
        counters.clone(),
        stop.clone(),
    ));
    console.line(&format!(
        "live traffic: {} responses/s to POST http://{addr}/v1/responses; canary suite `demo-support` every 10 s on pinned and live",
        opts.rate
    ));
    console.line(&format!(
        "the live alias will be silently updated in {} s",
        opts.update_after.as_secs()
    ));

    let store = crate::store::Store::connect(&layout.database())
        .await
        .map_err(|e| err("opening the demo database", e))?;
    let mut watcher = Watcher::new(store);
    let update_at = tokio::time::Instant::now() + opts.update_after;
    let mut update_ms = None;
    let mut deadline = None;
    let mut detected = false;
    let mut loop_stopped = false;
    // Both the update and the agent loop observed.
    let mut shown = false;
    let mut agents_task = None;
    let mut last_status = tokio::time::Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => { console.line("interrupted"); break; }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if update_ms.is_none() && tokio::time::Instant::now() >= update_at {
            sim.set_phase(Some(update_phase));
            update_ms = Some(crate::clock::Clock::system().now_ms());
            deadline = Some(tokio::time::Instant::now() + opts.timeout);
            console.line(
                "SILENT MODEL UPDATE: the live alias gpt-4o now routes to gpt-4o-2024-11-20 (fingerprint fp_7f2c9a01e3): shorter answers, more refusals, altered facts. Nothing tells canaryd.",
            );
            // The agent pair meets the new model: it asks for clarification
            // instead of answering, and the two agents ask each other.
            let agents = agents.clone();
            let c = console.clone();
            agents_task = Some(tokio::spawn(async move {
                match agents
                    .agent_session("orders-after-update", 12, Duration::from_secs(1))
                    .await
                {
                    Ok(turns) => c.line(&format!(
                        "agent pair: session orders-after-update made {turns} model calls"
                    )),
                    Err(e) => tracing::warn!("demo agent session: {e}"),
                }
            }));
            console.line("agent pair: session orders-after-update started on the updated model");
        }
        if last_status.elapsed() >= Duration::from_secs(15) {
            last_status = tokio::time::Instant::now();
            let failed = counters.failed.load(Ordering::Relaxed);
            console.line(&format!(
                "live: {} responses sent ({} refusals among them){}",
                counters.sent.load(Ordering::Relaxed),
                counters.refusals_seen.load(Ordering::Relaxed),
                if failed > 0 {
                    format!(", {failed} not delivered (see the log)")
                } else {
                    String::new()
                }
            ));
        }
        match watcher.poll(&console, &captures, update_ms).await {
            Ok(p) => {
                if p.session_loop && !loop_stopped {
                    loop_stopped = true;
                    console.line(
                        "agent loop detected: tool_call_loop fired and the kill-switch hook was called.",
                    );
                }
                if p.quality && !detected {
                    detected = true;
                    console.line("detected, alerted and delivered.");
                }
                if detected && loop_stopped && !shown {
                    shown = true;
                    if !opts.forever {
                        break;
                    }
                    console.line(&format!(
                        "still running (--forever): {dashboard} — Ctrl-C to stop"
                    ));
                }
            }
            Err(e) => tracing::warn!("demo watcher: {e}"),
        }
        if !opts.forever && deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            console.line("timed out waiting for the detection");
            break;
        }
    }
    // Let deliveries in flight land before reading the outcome.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = watcher.poll(&console, &captures, update_ms).await;
    let (alerts_fired, model_change_events) = watcher
        .outcome(update_ms)
        .await
        .map_err(|e| err("reading the outcome", e))?;
    stop.cancel();
    daemon_stop.cancel();
    let _ = traffic_task.await;
    if let Some(t) = agents_task {
        t.abort();
    }
    if let Ok(Err(e)) = daemon.await {
        tracing::warn!("daemon: {e:#}");
    }
    let _ = sim_task.await;
    let summary = Summary {
        dir: layout.root.clone(),
        dashboard,
        elapsed_secs: console.elapsed_secs(),
        history_records: history,
        live_records: counters.sent.load(Ordering::Relaxed),
        update_staged: update_ms.is_some(),
        detected,
        session_loop_stopped: loop_stopped,
        alerts_fired,
        model_change_events,
        captured: captures.lock().unwrap_or_else(|e| e.into_inner()).clone(),
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| err("summary", e))?;
    std::fs::write(layout.summary(), json).map_err(|e| err("writing summary.json", e))?;
    Ok(summary)
}

/// The address to give the daemon. Port 0 is resolved here, because the
/// generated config must carry the real address in `base_url` (alert links)
/// before the daemon starts.
fn free_addr(listen: SocketAddr) -> std::io::Result<SocketAddr> {
    if listen.port() != 0 {
        return Ok(listen);
    }
    std::net::TcpListener::bind(listen)?.local_addr()
}

async fn live_traffic(
    app: traffic::App,
    rate: u32,
    seed: u64,
    counters: Arc<traffic::Counters>,
    stop: CancellationToken,
) {
    let serial = AtomicU64::new(0);
    let mut g = crate::signals::synth::Gen::new(seed ^ 0x5eed);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        app.live_second(rate, &serial, &mut g, &counters).await;
    }
}
