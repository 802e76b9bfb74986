//! The `alerts:` section of the config.

use std::path::Path;

use serde::Deserialize;

use crate::config::Diagnostics;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Seconds before a still-firing alert is notified again.
    pub repeat_interval_secs: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            repeat_interval_secs: 4 * 3600,
        }
    }
}

impl AlertsConfig {
    /// Resolves relative paths (templates, secret files) against the config directory.
    pub fn rebase(&mut self, _base: &Path) {}

    /// Checks what serde cannot.
    pub fn validate(&self, _path: &Path) -> Diagnostics {
        Diagnostics::default()
    }
}
