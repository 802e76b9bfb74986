//! The shape of `canaryd.yaml`. Field names here are a contract with users.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::provider::{ModelRef, ProviderConfig};

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
