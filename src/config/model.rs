//! The shape of `canaryd.yaml`. Field names here are a contract with users.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::secret::SecretRef;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite://path` or `postgres://...`; `CANARYD_DATABASE_URL` overrides it.
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory of canary suite files.
    #[serde(default = "default_canaries")]
    pub canaries: PathBuf,
    /// Directory of judge files.
    #[serde(default = "default_judges")]
    pub judges: PathBuf,
    #[serde(default)]
    pub providers: BTreeMap<String, Spanned<ProviderConfig>>,
    /// Named model references; suites and judges use these names.
    #[serde(default)]
    pub models: BTreeMap<String, Spanned<ModelRef>>,
    /// Public URL of this daemon, used for links in alerts.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub ingest: crate::ingest::IngestConfig,
    /// Who may read or change state over HTTP (`http::auth`).
    #[serde(default)]
    pub api: crate::http::auth::ApiConfig,
    /// Serve without any token on an address other than loopback. Without
    /// it `check` and `serve` refuse such a config.
    #[serde(default)]
    pub insecure_no_auth: bool,
    #[serde(default)]
    pub judging: crate::judge::JudgingConfig,
    #[serde(default)]
    pub detectors: crate::signals::DetectorConfig,
    #[serde(default)]
    pub alerts: crate::alert::AlertsConfig,
    #[serde(default)]
    pub sessions: crate::sessions::SessionsConfig,
    /// Prices of production models (USD per million tokens), for the cost
    /// of records that do not send `cost_usd`.
    #[serde(default)]
    pub prices: BTreeMap<String, crate::sessions::cost::Price>,
    #[serde(default)]
    pub retention: RetentionConfig,
}

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

/// Log output. `format: auto` is human on a terminal and JSON elsewhere
/// (journald, files, containers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Human,
    Json,
}

/// How long data is kept. Roll-ups and scores outlive raw texts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days to keep full response texts and canary answers.
    pub raw_days: u32,
    /// Days to keep roll-ups, scores and alerts.
    pub rollup_days: u32,
    /// Days to keep the health-score series (one point per stream and evaluation).
    pub health_days: u32,
    /// Days to keep an alert after it resolved (and its resolve notice went out).
    pub resolved_alert_days: u32,
    /// Days to keep delivered notifications; undelivered ones are never deleted.
    pub sent_notification_days: u32,
    /// Days to keep change annotations (by the time of the change). As
    /// long as the roll-ups by default: an annotation explains a chart, so
    /// one outliving its chart explains nothing, and one gone before it
    /// leaves a step on the chart unexplained.
    pub annotation_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw_days: 30,
            rollup_days: 400,
            health_days: 90,
            resolved_alert_days: 90,
            sent_notification_days: 30,
            annotation_days: 400,
        }
    }
}

fn default_database() -> String {
    "sqlite://canaryd.db".into()
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid literal")
}
fn default_canaries() -> PathBuf {
    "./canaries".into()
}
fn default_judges() -> PathBuf {
    "./judges".into()
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
