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
    mut batch: Vec<crate::store::sessions::SessionSummary>,
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
