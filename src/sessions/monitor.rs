//! One pass of the session detectors, as the daemon runs it.

use super::SessionsConfig;
use super::detect::{expired, session_budget, tool_call_loop};
use crate::signals::{Finding, Rule};
use crate::store::{Store, StoreError};

/// Looks at every session changed since the last pass (up to
/// `max_sessions_per_pass`) and expires idle ones. Returns the findings:
/// firing ones for sessions looping or over budget, `Ok` ones that resolve
/// the alerts of sessions that ended.
pub async fn run_once(
    store: &Store,
    now_ms: i64,
    cfg: &SessionsConfig,
) -> Result<Vec<Finding>, StoreError> {
    let mut findings = Vec::new();
    for mut s in store.dirty_sessions(cfg.max_sessions_per_pass).await? {
        let events = store
            .session_events(&s.stream, &s.session_id, cfg.max_events)
            .await?;
        let found = [
            tool_call_loop(&s, &events, &cfg.tool_call_loop, now_ms),
            session_budget(&s, &cfg.budget_for(&s.stream), now_ms),
        ];
        for f in found.into_iter().flatten() {
            let rule = f.rule.as_str().to_string();
            if !s.fired.contains(&rule) {
                s.fired.push(rule);
            }
            findings.push(f);
        }
        store.mark_session_checked(&s).await?;
    }
    let idle = i64::try_from(cfg.session_idle.0.as_millis()).unwrap_or(i64::MAX / 2);
    for s in store
        .expire_sessions(now_ms - idle, cfg.max_sessions_per_pass)
        .await?
    {
        for rule in &s.fired {
            if let Some(rule) = Rule::parse(rule) {
                findings.push(expired(rule, &s, now_ms));
            }
        }
    }
    Ok(findings)
}

/// One `spend_rate` pass: every stream, and the top spenders of each, for
/// the last complete hour. Firing and `Ok` verdicts are returned (an `Ok`
/// resolves an earlier spike); "insufficient data" changes nothing.
pub async fn spend_pass(
    store: &Store,
    now_ms: i64,
    cfg: &crate::signals::spend_rate::SpendRateConfig,
) -> Result<Vec<Finding>, StoreError> {
    use crate::signals::spend_rate::{spend_rate, tested_hour};
    let hour = tested_hour(now_ms);
    let from = hour - i64::from(cfg.baseline_days) * 24 * 3_600_000;
    let mut out = Vec::new();
    let keep = |v: crate::signals::verdict::Verdict, out: &mut Vec<Finding>| {
        if v.finding.status != crate::signals::Status::InsufficientData {
            out.push(v.finding);
        }
    };
    for (stream, hours) in store.spend_hours(from).await? {
        keep(spend_rate(&stream, None, &hours, now_ms, cfg), &mut out);
    }
    for t in store.spend_totals(hour, cfg.top_users).await? {
        let Some(user) = &t.key else { continue };
        let hours = store.user_spend_hours(&t.stream, user, from).await?;
        let dim = format!("user:{user}");
        keep(
            spend_rate(&t.stream, Some(&dim), &hours, now_ms, cfg),
            &mut out,
        );
    }
    Ok(out)
}

/// The daemon's session loop: every `sessions.every_secs`, on whichever
/// replica holds the `sessions` lease, one [`run_once`] whose findings go
/// through the alert lifecycle (which also flushes alerts whose
/// `group_wait` has passed, so a loop is notified within a pass of it).
/// `config` gives the current reloadable config; `clock` is the daemon's
/// one clock.
pub async fn run(
    store: Store,
    instance_id: std::sync::Arc<str>,
    config: impl Fn() -> std::sync::Arc<crate::config::Config> + Send,
    clock: impl Fn() -> i64 + Send,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut spend_minute = i64::MIN;
    loop {
        let cfg = config();
        let secs = cfg.sessions.every_secs;
        let wait = std::time::Duration::from_secs(if secs == 0 { 60 } else { secs });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if secs == 0 {
            continue;
        }
        let cfg = config();
        let now = clock();
        let ttl = 2 * i64::try_from(wait.as_millis()).unwrap_or(60_000) + 30_000;
        if !matches!(
            store.try_lease("sessions", &instance_id, now, ttl).await,
            Ok(true)
        ) {
            continue;
        }
        let mut result = run_once(&store, now, &cfg.sessions).await;
        // Spend is tested on complete hours: once a minute is plenty.
        if now / 60_000 != spend_minute
            && let Ok(findings) = &mut result
        {
            spend_minute = now / 60_000;
            match spend_pass(&store, now, &cfg.sessions.spend_rate).await {
                Ok(f) => findings.extend(f),
                Err(e) => tracing::warn!("spend_rate failed: {e}"),
            }
        }
        match result {
            Ok(findings) => {
                if !findings.is_empty() {
                    tracing::info!(findings = findings.len(), "session detectors evaluated");
                }
                let alerts = crate::alert::settings_for(&cfg);
                if let Err(e) = crate::alert::process(&store, &findings, now, &alerts).await {
                    tracing::warn!("alert processing (sessions) failed: {e}");
                }
            }
            Err(e) => tracing::warn!("session detectors failed: {e}"),
        }
    }
}
