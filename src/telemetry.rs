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
        "Ingested production records, by outcome"
    );
    describe_histogram!("canaryd_ingest_request_seconds", "Ingest request latency");
    describe_gauge!("canaryd_judge_queue_depth", "Judge jobs waiting");
    describe_counter!(
        "canaryd_judge_scores_total",
        "Judge results, by judge and outcome"
    );
    describe_counter!(
        "canaryd_judge_spend_usd_total",
        "Estimated judge spend in USD"
    );
    describe_gauge!(
        "canaryd_detector_value",
        "Latest detector value, by rule and stream"
    );
    describe_gauge!("canaryd_alerts_firing", "Alerts currently firing");
    describe_counter!(
        "canaryd_notification_failures_total",
        "Notification attempts that failed, by channel"
    );
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
