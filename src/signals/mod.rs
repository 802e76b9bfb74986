//! Detectors: pure functions of (data, now, settings) that turn stored
//! signals into verdicts, and the per-stream health score.
//!
//! Each detector file holds one rule: a window test (effect ≥ the configured
//! threshold *and* significant at the sample sizes at hand, with minimum
//! counts) and, beside it, a sequential CUSUM that reacts within hours.
//! `evaluate` runs them all and controls the false-discovery rate across
//! streams × signals; `backtest` replays recorded traffic through the same
//! code.

pub mod backtest;
pub mod baseline;
pub mod canary;
pub mod embedding;
pub mod evaluate;
pub mod finding;
pub mod health;
pub mod judge_drop;
pub mod length;
pub mod model_change;
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

pub use evaluate::{Snapshot, evaluate, evaluate_snapshot};
pub use finding::{Finding, Rule, Severity, Status};
pub use settings::*;

/// `2026-03-08T14:00:00Z` for a UTC millisecond timestamp.
pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}
