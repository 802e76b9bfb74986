//! What one ingest request may take: its share of `max_in_flight_bytes`
//! (else, after `busy_wait_ms`, 503 with `Retry-After`, before the body is
//! read), and every refusal as JSON naming the limit or what is accepted.
//!
//! The body limit and the decompression layer answer in plain text (or an
//! empty 415); [`json_errors`] rewrites those answers so a client sees one
//! shape, `{"error": …}` plus `limit` or `accepted_encodings`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Semaphore;

use super::IngestConfig;

/// Encodings the decompression layer accepts.
pub const ACCEPTED_ENCODINGS: [&str; 2] = ["gzip", "identity"];

/// Seconds a client refused for load is told to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// Permits are KiB of body, so the budget fits a `u32` semaphore count.
const UNIT: usize = 1024;

#[derive(Clone, Debug)]
pub struct Limits {
    budget: Arc<Semaphore>,
    budget_units: usize,
    max_in_flight_bytes: usize,
    max_body_bytes: usize,
    wait: std::time::Duration,
}

impl Limits {
    pub fn new(config: &IngestConfig) -> Limits {
        let units = config
            .max_in_flight_bytes
            .div_ceil(UNIT)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Limits {
            budget: Arc::new(Semaphore::new(units)),
            budget_units: units,
            max_in_flight_bytes: config.max_in_flight_bytes,
            max_body_bytes: config.max_body_bytes,
            wait: std::time::Duration::from_millis(config.busy_wait_ms),
        }
    }

    /// What a request reserves: its declared length when it is not
    /// compressed (the body limit applies after decompression, so a
    /// compressed body may grow to the limit), capped by the limit and by
    /// the budget itself so that one largest request always fits.
    fn units_for(&self, req: &Request) -> u32 {
        let compressed = req
            .headers()
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("identity"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let bytes = match declared {
            Some(n) if !compressed => n.min(self.max_body_bytes),
            _ => self.max_body_bytes,
        };
        bytes.div_ceil(UNIT).clamp(1, self.budget_units) as u32
    }
}

/// Holds a reservation for the whole request (reading, parsing, storing);
/// no room within `busy_wait_ms` means 503, before any of the body is read.
pub async fn in_flight(State(l): State<Limits>, req: Request, next: Next) -> Response {
    let units = l.units_for(&req);
    let permit = tokio::time::timeout(l.wait, l.budget.clone().acquire_many_owned(units)).await;
    let Ok(Ok(_permit)) = permit else {
        crate::telemetry::ingest_refused_busy();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
            axum::Json(json!({
                "error": format!(
                    "ingest is at its limit of {} bytes of requests in progress (ingest.max_in_flight_bytes); retry after {RETRY_AFTER_SECS} s",
                    l.max_in_flight_bytes
                ),
                "limit": l.max_in_flight_bytes,
            })),
        )
            .into_response();
    };
    next.run(req).await
}

/// Rewrites the plain-text refusals of the layers below into JSON.
pub async fn json_errors(State(l): State<Limits>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let value = match status {
        StatusCode::PAYLOAD_TOO_LARGE => json!({
            "error": format!(
                "the body is larger than ingest.max_body_bytes ({} bytes, measured after decompression)",
                l.max_body_bytes
            ),
            "limit": l.max_body_bytes,
        }),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => json!({
            "error": format!(
                "unsupported Content-Encoding; accepted: {}",
                ACCEPTED_ENCODINGS.join(", ")
            ),
            "accepted_encodings": ACCEPTED_ENCODINGS,
        }),
        _ if text.is_empty() => {
            json!({ "error": status.canonical_reason().unwrap_or("bad request") })
        }
        _ => json!({ "error": format!("cannot read the body: {text}") }),
    };
    let mut resp = Response::from_parts(parts, Body::from(value.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    resp
}
