//! The `judging:` section of the config.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgingConfig {
    /// Share of production responses sent to the judges (0..=1).
    pub sample_rate: f64,
}

impl Default for JudgingConfig {
    fn default() -> Self {
        Self { sample_rate: 0.05 }
    }
}
