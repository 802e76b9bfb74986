//! The outbox: delivering enqueued notifications, durably.
//!
//! A notification is rendered once, when it is enqueued, so a retry sends
//! exactly what would have been sent. One delivery tries `retry.attempts`
//! times with doubling backoff; if all fail the row stays in the outbox
//! with `last_error` and a later `next_attempt_ms` (doubling from
//! `retry.outbox_delay` up to `retry.max_delay`). Rows are never dropped:
//! a channel that was removed from the config keeps its rows waiting, and
//! they are visible in `canaryd alerts`.
//!
//! Replicas share the outbox: a row is claimed by moving its
//! `next_attempt_ms` forward with a compare-and-set before it is sent.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::AlertError;
use super::render::Email;
use super::settings::{AlertsConfig, ChannelConfig, HeaderValue};
use crate::store::{NotificationRow, Store};

/// How long a claimed row is hidden from other replicas while it is sent.
const CLAIM_MS: i64 = 10 * 60 * 1000;
/// Rows handled per call.
const BATCH: i64 = 50;

/// What one call of [`deliver_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub sent: usize,
    pub failed: usize,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Sends every notification due at `now_ms`.
pub async fn deliver_due(
    store: &Store,
    cfg: &AlertsConfig,
    now_ms: i64,
) -> Result<Delivery, AlertError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AlertError::Send(e.to_string()))?;
    let mut out = Delivery::default();
    for n in store.due_notifications(now_ms, BATCH).await? {
        if !store
            .claim_notification(n.id, n.next_attempt_ms, now_ms + CLAIM_MS)
            .await?
        {
            continue;
        }
        let (tries, result) = send_with_retries(&client, cfg, &n).await;
        let attempts = n.attempts + i64::from(tries);
        match result {
            Ok(()) => {
                store.mark_notification_sent(n.id, attempts, now_ms).await?;
                tracing::info!(id = n.id, channel = %n.channel, title = %n.title, "notification sent");
                metrics::counter!("canaryd_notifications_sent_total", "channel" => n.channel.clone())
                    .increment(1);
                out.sent += 1;
            }
            Err(e) => {
                let rounds = n.attempts / i64::from(cfg.retry.attempts.max(1));
                let delay = ms(cfg.retry.outbox_delay.0)
                    .saturating_mul(1i64 << rounds.clamp(0, 20))
                    .min(ms(cfg.retry.max_delay.0));
                store
                    .mark_notification_failed(n.id, attempts, now_ms + delay, &e)
                    .await?;
                tracing::warn!(id = n.id, channel = %n.channel, attempts, error = %e, retry_in_ms = delay, "notification failed; kept in the outbox");
                metrics::counter!("canaryd_notification_failures_total", "channel" => n.channel.clone())
                    .increment(1);
                out.failed += 1;
            }
        }
    }
    Ok(out)
}

/// Up to `retry.attempts` tries with doubling backoff. Returns the tries made.
async fn send_with_retries(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    n: &NotificationRow,
) -> (u32, Result<(), String>) {
    let hook = (n.kind == super::hook::KIND).then_some(cfg.hook.as_ref());
    if matches!(hook, Some(None)) {
        return (
            0,
            Err("sessions.hook is not in the config (kept until it is)".into()),
        );
    }
    let channel = cfg.channels.get(&n.channel);
    if hook.is_none() && channel.is_none() {
        return (
            0,
            Err(format!(
                "channel {:?} is not in the config (kept until it is)",
                n.channel
            )),
        );
    }
    let attempts = cfg.retry.attempts.max(1);
    let mut backoff = cfg.retry.backoff.0;
    let mut last = String::new();
    for i in 1..=attempts {
        let sent = match (hook.flatten(), channel) {
            (Some(h), _) => super::hook::send(client, h, &n.body, Duration::from_secs(10)).await,
            (None, Some(c)) => send_once(client, c, &n.body).await,
            (None, None) => unreachable!("checked above"),
        };
        match sent {
            Ok(()) => return (i, Ok(())),
            Err(e) => last = e,
        }
        if i < attempts {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
    }
    (attempts, Err(last))
}

async fn send_once(
    client: &reqwest::Client,
    channel: &ChannelConfig,
    body: &str,
) -> Result<(), String> {
    match channel {
        ChannelConfig::Email(cfg) => {
            let email: Email =
                serde_json::from_str(body).map_err(|e| format!("stored email is corrupt: {e}"))?;
            super::email::send(cfg, &email).await
        }
        ChannelConfig::Slack(cfg) => {
            let url = cfg
                .webhook_url
                .resolve()
                .map_err(|e| format!("Slack webhook URL: {e}"))?
                .ok_or_else(|| "Slack webhook URL is not configured".to_string())?;
            super::slack::send(client, &url, body, cfg.timeout.0).await
        }
        ChannelConfig::Webhook(cfg) => {
            let mut headers = Vec::new();
            for (k, v) in &cfg.headers {
                let value = match v {
                    HeaderValue::Literal(s) => s.clone(),
                    HeaderValue::Secret(r) => r
                        .resolve()
                        .map_err(|e| format!("header {k}: {e}"))?
                        .map(|s| s.expose().to_string())
                        .unwrap_or_default(),
                };
                headers.push((k.clone(), value));
            }
            super::post::post(client, &cfg.url, &headers, body, cfg.timeout.0, false).await
        }
    }
}

/// The daemon's alert loop: every `tick`, lets `group_wait` and
/// `repeat_interval` elapse (`process` with no findings) and delivers the
/// outbox, at the time `clock` gives. `settings`
/// is asked once per tick, so channels and routes changed by a reload apply
/// to the next delivery.
pub async fn run(
    store: Store,
    settings: impl Fn() -> AlertsConfig + Send,
    clock: crate::clock::Clock,
    tick: Duration,
    shutdown: CancellationToken,
) {
    tracing::info!(
        channels = settings().channels.len(),
        "alert notifier started"
    );
    loop {
        let cfg = settings();
        let now = clock.now_ms();
        if let Err(e) = super::process(&store, &[], now, &cfg).await {
            tracing::warn!(error = %e, "alert processing failed");
        }
        if let Err(e) = deliver_due(&store, &cfg, now).await {
            tracing::warn!(error = %e, "alert delivery failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
    tracing::info!("alert notifier stopped");
}
