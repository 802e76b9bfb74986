//! The `judging:` section of the config: how much production traffic the
//! judges see and what they may spend.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgingConfig {
    /// Run the judge worker and enqueue sampled records. Off, nothing is sampled.
    pub enabled: bool,
    /// Share of production responses sent to the judges (0..=1), chosen by a
    /// hash of the record id so replicas agree.
    pub sample_rate: f64,
    /// Records per stream and hour judged even when the rate picks fewer
    /// (low-traffic streams still get enough samples to compare).
    pub floor_per_hour: i64,
    /// Most records per stream and hour judged, whatever the rate.
    pub cap_per_hour: i64,
    /// Per-stream overrides of the three values above.
    pub streams: BTreeMap<String, StreamSampling>,
    /// Judge tokens (input + output) per UTC day; never exceeded.
    pub daily_budget_tokens: i64,
    /// Estimated judge spend per UTC day in USD (from the models' prices); never exceeded.
    pub daily_budget_usd: f64,
    /// Judge calls in flight from this replica.
    pub concurrency: usize,
    /// How long a claimed job stays with a worker before another may take it.
    pub lease_secs: u64,
    /// Attempts per job before a provider error is recorded as final.
    pub max_attempts: i64,
    /// Base of the exponential backoff between job attempts, in seconds.
    pub retry_backoff_secs: f64,
    /// How often the judges' own canaries run, in seconds (0 = never).
    pub canary_interval_secs: u64,
    /// Model name from the config used to embed records that carry no
    /// embedding (only sampled records are embedded). Unset: no embeddings.
    pub embedder: Option<String>,
    /// Most bytes of each of a record's input, context and output a judge
    /// sees; the rest is cut with a marker saying how much (counted in
    /// `canaryd_judge_truncated_total`), so one huge record cannot become
    /// a huge paid prompt.
    pub max_content_bytes: usize,
}

/// Sampling settings of one stream; unset values use the global ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSampling {
    pub sample_rate: Option<f64>,
    pub floor_per_hour: Option<i64>,
    pub cap_per_hour: Option<i64>,
}

impl Default for JudgingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sample_rate: 0.05,
            floor_per_hour: 10,
            cap_per_hour: 500,
            streams: BTreeMap::new(),
            daily_budget_tokens: 5_000_000,
            daily_budget_usd: 5.0,
            concurrency: 4,
            lease_secs: 120,
            max_attempts: 5,
            retry_backoff_secs: 30.0,
            canary_interval_secs: 3600,
            embedder: None,
            max_content_bytes: 32 * 1024,
        }
    }
}

impl JudgingConfig {
    /// The sampling rate of `stream`, clamped to 0..=1 (0 when judging is off).
    pub fn rate(&self, stream: &str) -> f64 {
        if !self.enabled {
            return 0.0;
        }
        self.streams
            .get(stream)
            .and_then(|s| s.sample_rate)
            .unwrap_or(self.sample_rate)
            .clamp(0.0, 1.0)
    }

    /// `(floor, cap)` per hour for `stream` (both 0 when judging is off).
    pub fn floor_cap(&self, stream: &str) -> (i64, i64) {
        if !self.enabled {
            return (0, 0);
        }
        let s = self.streams.get(stream);
        let floor = s
            .and_then(|s| s.floor_per_hour)
            .unwrap_or(self.floor_per_hour);
        let cap = s.and_then(|s| s.cap_per_hour).unwrap_or(self.cap_per_hour);
        (floor.max(0), cap.max(0))
    }
}
