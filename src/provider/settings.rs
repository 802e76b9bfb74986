//! The `providers:` and `models:` sections of `canaryd.yaml`: what the
//! provider clients are built from (`Providers::from_config`). They live
//! here, below `config`, which only embeds them.

use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::secret::SecretRef;

/// An OpenAI-compatible endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub base_url: String,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// File holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// systemd credential name holding the API key.
    pub api_key_credential: Option<String>,
    /// Present only to give a clear error: keys never belong in the YAML.
    pub api_key: Option<Spanned<String>>,
    /// Requests in flight at once against this provider.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Requests started per second (0 = unlimited).
    #[serde(default)]
    pub requests_per_second: f64,
    /// Timeout of one HTTP attempt, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Attempts after the first one for 429, 5xx, timeouts and garbage answers.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Base of the jittered exponential backoff, in milliseconds.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

impl ProviderConfig {
    pub fn api_key_ref(&self) -> SecretRef {
        SecretRef {
            env: self.api_key_env.clone(),
            file: self.api_key_file.clone(),
            credential: self.api_key_credential.clone(),
        }
    }
}

/// A named model: which provider serves it and the model string sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    pub provider: String,
    pub model: String,
    /// Price in USD per million input tokens, for judge spend estimates.
    #[serde(default)]
    pub input_cost_per_mtok: f64,
    /// Price in USD per million output tokens.
    #[serde(default)]
    pub output_cost_per_mtok: f64,
}

fn default_concurrency() -> usize {
    8
}
fn default_timeout() -> f64 {
    60.0
}
fn default_retries() -> u32 {
    4
}
fn default_backoff_ms() -> u64 {
    500
}
