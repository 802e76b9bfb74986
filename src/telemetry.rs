//! canaryd's own observability: Prometheus metrics and systemd notification.
//!
//! Subsystems record with the `metrics` macros (`metrics::counter!(...)`);
//! the daemon installs one process-wide Prometheus recorder and serves it on
//! `/metrics`. Metric names are listed in [`describe`] so they appear (at
//! zero) before the first event, which keeps dashboards and alerts simple.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = match PrometheusBuilder::new().install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (embedding in a host app):
                // keep a private one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
            handle
        })
        .clone()
}

/// The text exposition of every metric.
pub fn render() -> String {
    install().render()
}

/// Histograms need periodic upkeep or their memory grows.
pub async fn upkeep(shutdown: tokio_util::sync::CancellationToken) {
    let handle = install();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "canaryd_canary_runs_total",
        "Canary suite runs, by suite and status"
    );
    describe_counter!(
        "canaryd_canary_case_results_total",
        "Canary case results, by suite, target and outcome"
    );
    describe_counter!(
        "canaryd_provider_errors_total",
        "Failed provider attempts, by provider and kind"
    );
    describe_counter!(
        "canaryd_ingest_records_total",
        "Ingested production records, by outcome (accepted, duplicate; rejected counts refused requests)"
    );
    describe_histogram!("canaryd_ingest_request_seconds", "Ingest request latency");
    describe_gauge!(
        "canaryd_judge_queue_depth",
        "Judge jobs by state (pending, running)"
    );
    describe_counter!(
        "canaryd_judge_scores_total",
        "Judge results, by judge and outcome"
    );
    describe_gauge!(
        "canaryd_judge_spend_usd_today",
        "Estimated judge spend of the current UTC day in USD, all replicas"
    );
    describe_gauge!(
        "canaryd_judge_spend_tokens_today",
        "Judge tokens of the current UTC day, all replicas"
    );
    describe_gauge!(
        "canaryd_detector_value",
        "Latest detector value, by rule and stream"
    );
    describe_gauge!("canaryd_alerts_firing", "Alerts currently firing");
    describe_gauge!(
        "canaryd_spend_usd_24h",
        "Production spend of a stream over the last 24 h (USD)"
    );
    describe_gauge!(
        "canaryd_spend_tokens_24h",
        "Production tokens of a stream over the last 24 h"
    );
    describe_gauge!(
        "canaryd_user_spend_usd_24h",
        "Spend of a stream's top users over the last 24 h (USD)"
    );
    describe_gauge!(
        "canaryd_session_spend_usd",
        "Spend of the costliest active sessions (USD)"
    );
    describe_gauge!(
        "canaryd_session_tokens",
        "Tokens of the costliest active sessions"
    );
    describe_gauge!(
        "canaryd_sessions_active",
        "Agent sessions not yet expired, per stream"
    );
    describe_counter!(
        "canaryd_notification_failures_total",
        "Notification deliveries that failed, by channel"
    );
    describe_counter!(
        "canaryd_notifications_sent_total",
        "Notifications delivered, by channel"
    );
    describe_counter!(
        "canaryd_reloads_total",
        "SIGHUP reloads, by outcome (applied, rejected)"
    );
    metrics::counter!("canaryd_reloads_total", "outcome" => "applied").absolute(0);
    metrics::counter!("canaryd_reloads_total", "outcome" => "rejected").absolute(0);
    for outcome in ["accepted", "duplicate", "rejected"] {
        metrics::counter!("canaryd_ingest_records_total", "outcome" => outcome).absolute(0);
    }
    metrics::gauge!("canaryd_alerts_firing").set(0.0);
    metrics::counter!("canaryd_provider_errors_total", "provider" => "none", "kind" => "none")
        .absolute(0);
}

/// Counts a failed provider attempt; installed as every provider's hook.
pub fn provider_attempt_failed(provider: &str, error: &crate::provider::ProviderError) {
    metrics::counter!(
        "canaryd_provider_errors_total",
        "provider" => provider.to_string(),
        "kind" => error.kind()
    )
    .increment(1);
}

/// Sets the latest value of each detector's chart, keyed like its alert.
pub fn record_findings(findings: &[crate::signals::Finding]) {
    for f in findings.iter().filter(|f| f.value.is_finite()) {
        metrics::gauge!(
            "canaryd_detector_value",
            "rule" => f.rule.as_str(),
            "stream" => f.stream.clone(),
            "dimension" => f.dimension.clone().unwrap_or_default()
        )
        .set(f.value);
    }
}

/// Counts one ingest request's records and its latency.
pub fn record_ingest(outcome: Option<&crate::store::InsertOutcome>, started: std::time::Instant) {
    match outcome {
        Some(o) => {
            metrics::counter!("canaryd_ingest_records_total", "outcome" => "accepted")
                .increment(o.accepted);
            metrics::counter!("canaryd_ingest_records_total", "outcome" => "duplicate")
                .increment(o.duplicates);
        }
        None => {
            metrics::counter!("canaryd_ingest_records_total", "outcome" => "rejected").increment(1)
        }
    }
    metrics::histogram!("canaryd_ingest_request_seconds").record(started.elapsed().as_secs_f64());
}

/// Refreshes the gauges read from the database (the same on every replica,
/// since the queue, the spend and the alerts are shared) every few seconds.
pub async fn store_gauges(
    store: crate::store::Store,
    clock: crate::clock::Clock,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut spenders = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(c) = store.judge_job_counts().await {
            metrics::gauge!("canaryd_judge_queue_depth", "state" => "pending")
                .set(c.pending as f64);
            metrics::gauge!("canaryd_judge_queue_depth", "state" => "running")
                .set(c.running as f64);
        }
        if let Ok((tokens, usd)) = store.judge_spend(clock.now_ms()).await {
            metrics::gauge!("canaryd_judge_spend_tokens_today").set(tokens as f64);
            metrics::gauge!("canaryd_judge_spend_usd_today").set(usd);
        }
        if let Ok(n) = store.count_alerts_in_state("firing").await {
            metrics::gauge!("canaryd_alerts_firing").set(n as f64);
        }
        if let Err(e) = crate::sessions::spend_gauges(&store, clock.now_ms(), &mut spenders).await {
            tracing::debug!("spend gauges: {e}");
        }
    }
}

/// systemd `Type=notify`: readiness, watchdog and stopping.
pub mod systemd {
    use sd_notify::NotifyState;

    /// Tells systemd we are ready (no-op outside systemd).
    pub fn ready() {
        let _ = sd_notify::notify(&[NotifyState::Ready]);
    }

    /// Tells systemd we are reloading, then ready again.
    pub fn reloading() {
        let _ = sd_notify::notify(&[NotifyState::Reloading]);
    }

    pub fn stopping() {
        let _ = sd_notify::notify(&[NotifyState::Stopping]);
    }

    /// Pings the watchdog at half its interval until shutdown.
    pub async fn watchdog(shutdown: tokio_util::sync::CancellationToken) {
        let Some(interval) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) else {
            return;
        };
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => { let _ = sd_notify::notify(&[NotifyState::Watchdog]); }
            }
        }
    }
}
