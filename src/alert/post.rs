//! The one HTTP POST of the Slack and webhook channels.

use std::time::Duration;

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
        crate::text::error_chain(&e)
    };
    let resp = req.send().await.map_err(clean)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    Err(format!("HTTP {status}: {}", super::text::one_line(&text)))
}
