//! Agent sessions: runaway loops and sessions over budget, caught while
//! they run.
//!
//! Records name their session (`session_id`, OTLP `gen_ai.conversation.id`,
//! the trace id as a fallback) and may carry the agent and its tool calls.
//! The ingest transaction stores one event per new record of a session and
//! keeps the session's summary (calls, tokens, cost, first/last time) up to
//! date, marking it *dirty* (`store/sessions.rs`). Every `every_secs` the
//! replica holding the `sessions` lease reads the dirty summaries and the
//! latest events of each, runs the pure detectors (`detect.rs`), and feeds
//! their findings to the ordinary alert lifecycle; idle sessions expire with
//! their summary kept, and their alerts resolve (`monitor.rs`). State lives
//! in the database, so the daemon's memory does not grow with the number of
//! sessions and a restarted or replacement replica carries on.

pub mod cost;
pub mod detect;
pub mod monitor;
pub mod settings;

pub use settings::SessionsConfig;

/// How many users and sessions `/metrics` and `canaryd status` show.
pub const TOP_SPENDERS: usize = 10;

/// Spend as `canaryd status` prints it: per stream over the last 24 h with
/// its top users, and the active sessions that cost most.
pub async fn spend_text(
    store: &crate::store::Store,
    now_ms: i64,
) -> Result<String, crate::store::StoreError> {
    use std::fmt::Write;
    let totals = store
        .spend_totals(now_ms - 24 * 3_600_000, TOP_SPENDERS)
        .await?;
    let sessions = store.top_sessions(TOP_SPENDERS).await?;
    let mut s = String::new();
    if totals.is_empty() && sessions.is_empty() {
        return Ok(s);
    }
    let _ = writeln!(s, "\nspend (last 24 h)");
    for t in &totals {
        let who = match &t.key {
            None => t.stream.clone(),
            Some(u) => format!("  user {u}"),
        };
        let _ = writeln!(
            s,
            "  {who:<40} ${:>10.4}  {:>10} tokens  {:>7} calls",
            t.cost_usd, t.tokens, t.calls
        );
    }
    if !sessions.is_empty() {
        let _ = writeln!(s, "\nactive sessions by spend");
        for t in &sessions {
            let _ = writeln!(
                s,
                "  {:<40} ${:>10.4}  {:>10} tokens  {:>7} calls",
                format!("{} / {}", t.stream, t.key.as_deref().unwrap_or("")),
                t.cost_usd,
                t.tokens,
                t.calls
            );
        }
    }
    Ok(s)
}

/// Sets the spend gauges of `/metrics` from the store (stream totals over
/// 24 h, the top users, the top active sessions); series that left a top
/// list are set to 0 so they stop pointing at old spenders.
pub async fn spend_gauges(
    store: &crate::store::Store,
    now_ms: i64,
    shown: &mut std::collections::HashSet<(String, String, String)>,
) -> Result<(), crate::store::StoreError> {
    let mut now_shown = std::collections::HashSet::new();
    for t in store
        .spend_totals(now_ms - 24 * 3_600_000, TOP_SPENDERS)
        .await?
    {
        match t.key {
            None => {
                metrics::gauge!("canaryd_spend_usd_24h", "stream" => t.stream.clone())
                    .set(t.cost_usd);
                metrics::gauge!("canaryd_spend_tokens_24h", "stream" => t.stream)
                    .set(t.tokens as f64);
            }
            Some(user) => {
                metrics::gauge!("canaryd_user_spend_usd_24h", "stream" => t.stream.clone(), "user" => user.clone())
                    .set(t.cost_usd);
                now_shown.insert(("user".to_string(), t.stream, user));
            }
        }
    }
    for t in store.top_sessions(TOP_SPENDERS).await? {
        let session = t.key.unwrap_or_default();
        metrics::gauge!("canaryd_session_spend_usd", "stream" => t.stream.clone(), "session" => session.clone())
            .set(t.cost_usd);
        metrics::gauge!("canaryd_session_tokens", "stream" => t.stream.clone(), "session" => session.clone())
            .set(t.tokens as f64);
        now_shown.insert(("session".to_string(), t.stream, session));
    }
    for (kind, stream, key) in shown.difference(&now_shown) {
        if kind == "user" {
            metrics::gauge!("canaryd_user_spend_usd_24h", "stream" => stream.clone(), "user" => key.clone()).set(0.0);
        } else {
            metrics::gauge!("canaryd_session_spend_usd", "stream" => stream.clone(), "session" => key.clone()).set(0.0);
            metrics::gauge!("canaryd_session_tokens", "stream" => stream.clone(), "session" => key.clone()).set(0.0);
        }
    }
    *shown = now_shown;
    for s in store.session_spend().await? {
        metrics::gauge!("canaryd_sessions_active", "stream" => s.stream).set(s.active as f64);
    }
    Ok(())
}
