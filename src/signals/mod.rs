//! Detectors: pure functions of (data, now, settings) that turn stored
//! signals into verdicts, and the per-stream health score.
//!
//! Each production rule is a sequential CUSUM of hourly log-likelihood
//! ratios (valid under continuous monitoring, with a per-stream false-alarm
//! budget) that fires only when the effect estimated since its change point
//! reaches the configured threshold. No I/O here: the daemon and the
//! backtest load a [`Snapshot`] and call [`evaluate_snapshot`] with `now`.

pub mod canary;
pub mod embedding;
pub mod evaluate;
pub mod finding;
pub mod health;
pub mod judge_drift;
pub mod judge_drop;
pub mod length;
pub mod logprob_shift;
pub mod model_change;
pub mod model_drift;
pub mod rate_baseline;
pub mod rates;
pub mod report;
pub mod rollup;
pub mod sequential;
mod settings;
pub mod spend_rate;
pub mod stats;
pub mod synth;
pub mod verdict;
pub mod window;

pub use evaluate::{QuietKey, Snapshot, evaluate_snapshot, quiet_span};
pub use finding::{Finding, Rule, Severity, Status};
pub use settings::*;

/// `2026-03-08T14:00:00Z` for a UTC millisecond timestamp.
pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}
