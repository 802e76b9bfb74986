//! The `detectors:` section of the config.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Length of the current window, in hours.
    pub window_hours: u32,
    /// Length of the baseline before the window, in days.
    pub baseline_days: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            window_hours: 24,
            baseline_days: 7,
        }
    }
}
