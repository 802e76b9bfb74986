//! The session loop the daemon starts (issue 19: the loops live in the
//! composition root, so `sessions` never names the config or the alert
//! lifecycle): the detectors of `sessions::monitor`, whose findings go
//! through `alert::process`, and the session retention sweep.

use crate::sessions::monitor;
use crate::store::Store;

/// The daemon's session loop: every `sessions.every_secs`, on whichever
/// replica holds the `sessions` lease, one [`monitor::run_once`] whose findings go
/// through the alert lifecycle (which also flushes alerts whose
/// `group_wait` has passed, so a loop is notified within a pass of it).
/// `config` gives the current reloadable config; `clock` is the daemon's
/// one clock.
pub(super) async fn run(
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
        let mut result = monitor::run_once(&store, now, &cfg.sessions).await;
        // Spend is tested on complete hours: once a minute is plenty.
        if now / 60_000 != spend_minute
            && let Ok(findings) = &mut result
        {
            spend_minute = now / 60_000;
            match monitor::spend_pass(&store, now, &cfg.sessions.spend_rate).await {
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
                let alerts = crate::config::alert_settings(&cfg);
                if let Err(e) = crate::alert::process(&store, &findings, now, &alerts).await {
                    tracing::warn!("alert processing (sessions) failed: {e}");
                }
            }
            Err(e) => tracing::warn!("session detectors failed: {e}"),
        }
    }
}
