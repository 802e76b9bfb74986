//! The generic webhook: a versioned JSON document (see `docs/alerts.md`).
//!
//! Texts are raw (JSON-escaped only): the receiver decides how to show them
//! and must escape them for its own format.

use std::time::Duration;

use serde_json::{Value, json};

use super::message::Message;

/// Version of the payload shape; bumped on incompatible changes.
pub const PAYLOAD_VERSION: u32 = 1;

/// The JSON payload for `msg`.
pub fn payload(msg: &Message) -> Value {
    let mut v = json!({ "version": PAYLOAD_VERSION, "source": "canaryd" });
    if let (Value::Object(out), Ok(Value::Object(m))) = (&mut v, serde_json::to_value(msg)) {
        out.extend(m);
    }
    v
}

/// POSTs `body` as JSON; any non-2xx status is an error. With `secret_url`
/// the URL is kept out of the error (Slack's URL is a credential).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: &str,
    timeout: Duration,
    secret_url: bool,
) -> Result<(), String> {
    let mut req = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let clean = |e: reqwest::Error| {
        let e = if secret_url { e.without_url() } else { e };
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    };
    let resp = req.send().await.map_err(clean)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    Err(format!(
        "HTTP {status}: {}",
        super::message::one_line(&text)
    ))
}
