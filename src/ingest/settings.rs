//! The `ingest:` section of the config.

use serde::Deserialize;

use crate::secret::SecretRef;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Bearer tokens for writing records (`POST /v1/responses`, `/v1/traces`).
    /// Reading and changing state takes `api.tokens` (see `http::auth`).
    pub tokens: Vec<SecretRef>,
    /// Largest accepted request body, in bytes (after decompression).
    pub max_body_bytes: usize,
    /// Most records in one request (413 above): bounds the memory and the
    /// transaction one request can take.
    pub max_records: usize,
    /// Bytes of request bodies handled at once. A request reserves its
    /// `Content-Length` (`max_body_bytes` when compressed or unknown)
    /// before its body is read and waits up to `busy_wait_ms` for room;
    /// then it gets 503 with `Retry-After`. Memory stays bounded by a few
    /// times this budget however many clients send at once.
    pub max_in_flight_bytes: usize,
    /// How long a request waits for room in `max_in_flight_bytes`, in ms.
    pub busy_wait_ms: u64,
    /// OTLP resource or span attribute that names the stream.
    pub stream_attribute: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            max_body_bytes: 16 * 1024 * 1024,
            max_records: 10_000,
            max_in_flight_bytes: 64 * 1024 * 1024,
            busy_wait_ms: 5_000,
            stream_attribute: "service.name".into(),
        }
    }
}
