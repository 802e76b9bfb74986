//! The `ingest:` section of the config.

use serde::Deserialize;

use crate::config::SecretRef;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Bearer tokens accepted by the ingest and API endpoints. Empty: no auth
    /// (only sensible on loopback).
    pub tokens: Vec<SecretRef>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// OTLP resource or span attribute that names the stream.
    pub stream_attribute: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            max_body_bytes: 16 * 1024 * 1024,
            stream_attribute: "service.name".into(),
        }
    }
}
