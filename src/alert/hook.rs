//! The kill-switch hook: canaryd never stops an agent itself, but when a
//! `tool_call_loop` or `session_budget` alert starts firing it POSTs to the
//! application's orchestrator, which can stop the session — a circuit
//! breaker outside the agent's own reasoning. The call goes through the
//! notification outbox (kind `hook`), so it is retried with backoff and
//! never dropped, and is signed so the orchestrator can trust it:
//! `X-Canaryd-Signature: sha256=<hex HMAC-SHA256 of the body>`.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::store::{AlertRow, NewNotification};

/// The outbox channel and kind of hook calls.
pub const CHANNEL: &str = "sessions.hook";
pub const KIND: &str = "hook";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Canaryd-Signature";

/// Rules whose alerts call the hook.
pub fn applies(rule: &str) -> bool {
    matches!(rule, "tool_call_loop" | "session_budget")
}

/// The outbox row for `alert` (the body is rendered now, like every
/// notification, so a retry sends the same bytes).
pub fn notification(alert: &AlertRow, base_url: Option<&str>, now_ms: i64) -> NewNotification {
    // The session's page: its timeline with the repeated call marked.
    let evidence = session_url(base_url, &alert.stream, &alert.dimension);
    let body = json!({
        "version": 1,
        "source": "canaryd",
        "rule": alert.rule,
        "stream": alert.stream,
        "session_id": alert.dimension,
        "alert_id": alert.id,
        "severity": alert.severity,
        "summary": alert.summary,
        "value": alert.value,
        "threshold": alert.threshold,
        "at_ms": now_ms,
        "evidence_url": evidence,
    });
    NewNotification {
        channel: CHANNEL.into(),
        kind: KIND.into(),
        stream: alert.stream.clone(),
        status: "firing".into(),
        title: format!("{} {}", alert.rule, alert.dimension),
        body: body.to_string(),
        alert_ids: vec![alert.id],
        created_ms: now_ms,
    }
}

/// The path of a session's page on the status site (`web/session_view.rs`):
/// the one builder of that link, for the pages, the alerts' messages and
/// triage lines, and this hook's `evidence_url`. Query parameters, because
/// stream names and session ids may both contain `/`; both are
/// percent-encoded, so the path is safe in an HTML attribute, a Slack link
/// or a plain-text mail.
pub fn session_path(stream: &str, session_id: &str) -> String {
    format!(
        "/sessions?stream={}&id={}",
        urlencoding(stream),
        urlencoding(session_id)
    )
}

/// [`session_path`] under the operator's base URL for links (`alerts.base_url`
/// or the top-level `base_url`); none without one.
pub fn session_url(base_url: Option<&str>, stream: &str, session_id: &str) -> Option<String> {
    base_url.map(|b| {
        format!(
            "{}{}",
            b.trim_end_matches('/'),
            session_path(stream, session_id)
        )
    })
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |x: u8| block.map(|b| b ^ x);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The signature header value for `body`.
pub fn signature(secret: &[u8], body: &str) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret, body.as_bytes()))
    )
}

/// One delivery attempt of a stored hook call.
pub async fn send(
    client: &reqwest::Client,
    cfg: &crate::sessions::settings::HookConfig,
    body: &str,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let secret = cfg
        .secret
        .resolve()
        .map_err(|e| format!("sessions.hook secret: {e}"))?
        .ok_or_else(|| "sessions.hook secret is not set".to_string())?;
    let headers = [(
        SIGNATURE_HEADER.to_string(),
        signature(secret.expose().as_bytes(), body),
    )];
    super::post::post(client, &cfg.url, &headers, body, timeout, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
