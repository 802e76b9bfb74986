//! One pass of the session detectors, as the daemon runs it.

use super::SessionsConfig;
use super::detect::{expired, session_budget, tool_call_loop};
use crate::signals::{Finding, Rule};
use crate::store::{Store, StoreError};

/// Batches of `max_sessions_per_pass` changed sessions one pass may take
/// before leaving the rest to the next: the work of a pass is bounded, and
/// a burst of new sessions is still worked off within a few passes.
pub const ROUNDS_PER_PASS: usize = 4;

/// Looks at the sessions changed since the last pass (up to
/// [`ROUNDS_PER_PASS`] × `max_sessions_per_pass`) and expires idle ones (up
/// to ten times as many: one statement for those that never fired). Returns the findings:
/// firing ones for sessions looping or over budget, `Ok` ones that resolve
/// the alerts of sessions that ended.
pub async fn run_once(
    store: &Store,
    now_ms: i64,
    cfg: &SessionsConfig,
) -> Result<Vec<Finding>, StoreError> {
    let mut findings = Vec::new();
    for _ in 0..ROUNDS_PER_PASS {
        let batch = store.dirty_sessions(cfg.max_sessions_per_pass).await?;
        let full = batch.len() >= cfg.max_sessions_per_pass;
        check_batch(store, batch, now_ms, cfg, &mut findings).await?;
        if !full {
            break;
        }
    }
    let idle = i64::try_from(cfg.session_idle.0.as_millis()).unwrap_or(i64::MAX / 2);
    for s in store
        .expire_sessions(now_ms - idle, cfg.max_sessions_per_pass.saturating_mul(10))
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

/// Evaluates one batch of changed sessions: their events read in one go
/// and the batch marked checked in one transaction, so a pass costs a few
/// statements and commits, not two per session (at ingest rate a commit
/// per session contended with the ingest writer for SQLite's write lock).
async fn check_batch(
    store: &Store,
    mut batch: Vec<crate::sessions::SessionSummary>,
    now_ms: i64,
    cfg: &SessionsConfig,
    findings: &mut Vec<Finding>,
) -> Result<(), StoreError> {
    let events = {
        let keys: Vec<(&str, &str)> = batch
            .iter()
            .map(|s| (s.stream.as_str(), s.session_id.as_str()))
            .collect();
        store.sessions_events(&keys, cfg.max_events).await?
    };
    for (s, events) in batch.iter_mut().zip(events) {
        let found = [
            tool_call_loop(s, &events, &cfg.tool_call_loop, now_ms),
            session_budget(s, &cfg.budget_for(&s.stream), now_ms),
        ];
        for f in found.into_iter().flatten() {
            let rule = f.rule.as_str().to_string();
            if !s.fired.contains(&rule) {
                s.fired.push(rule);
            }
            findings.push(f);
        }
    }
    store.mark_sessions_checked(&batch).await
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
    clock: crate::clock::Clock,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut spend_minute = i64::MIN;
    let mut swept_hour = i64::MIN;
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
        let now = clock.now_ms();
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
        // Session retention, hourly, after the raw and roll-up ages.
        if now / 3_600_000 != swept_hour {
            swept_hour = now / 3_600_000;
            let day = 86_400_000i64;
            let r = &cfg.retention;
            match store
                .sweep_sessions(
                    now - i64::from(r.raw_days) * day,
                    now - i64::from(r.rollup_days) * day,
                    20,
                )
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "session retention swept"),
                Err(e) => tracing::warn!("session retention failed: {e}"),
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
