//! Retention: raw texts go after `raw_days` (GenAI log events still waiting
//! for a span that never came too), roll-ups and scores after
//! `rollup_days`; the health series, resolved alerts (with their history)
//! and delivered notifications after their own ages, change annotations
//! after theirs. Deletes run in bounded batches so a large backlog never
//! holds a long lock or a huge transaction.

use super::{Result, Store};
use crate::on_db;

/// Rows removed by one sweep, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    pub responses: u64,
    pub canary_answers: u64,
    /// OTLP log events whose span never arrived.
    pub log_events: u64,
    pub rollups: u64,
    pub health_scores: u64,
    pub alerts: u64,
    pub notifications: u64,
    /// Change annotations (people's, pipelines' and the automatic ones).
    pub annotations: u64,
}

/// Cutoffs of the alert-side tables (UTC ms; older rows go).
#[derive(Debug, Clone, Copy)]
pub struct AlertCutoffs {
    pub health_before_ms: i64,
    /// Resolved alerts whose resolve notice is no longer owed.
    pub resolved_alerts_before_ms: i64,
    /// Notifications delivered before this.
    pub sent_notifications_before_ms: i64,
}

/// Largest number of rows one statement touches.
pub const BATCH: i64 = 5_000;

impl Store {
    /// Deletes up to `max_batches` batches of each kind older than the cutoffs.
    /// Returns what was removed; call again while it removes full batches.
    pub async fn sweep_retention(
        &self,
        raw_before_ms: i64,
        rollup_before_ms: i64,
        max_batches: u32,
    ) -> Result<Swept> {
        let mut swept = Swept::default();
        for _ in 0..max_batches {
            let n = on_db!(self.db(), pool => sqlx::query(
                "DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE ts_ms < $1 ORDER BY ts_ms LIMIT $2)",
            )
            .bind(raw_before_ms)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected());
            swept.responses += n;
            if n < BATCH as u64 {
                break;
            }
        }
        for _ in 0..max_batches {
            // Canary verdicts and counts are kept; only the long texts go.
            let n = on_db!(self.db(), pool => sqlx::query(
                "UPDATE canary_results SET answer = NULL, request = '[]' WHERE id IN \
                 (SELECT id FROM canary_results WHERE created_ms < $1 AND answer IS NOT NULL LIMIT $2)",
            )
            .bind(raw_before_ms)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected());
            swept.canary_answers += n;
            if n < BATCH as u64 {
                break;
            }
        }
        for _ in 0..max_batches {
            // A log whose span is older than the raw texts would be joined
            // to a record that retention already removed: it can go.
            let n = on_db!(self.db(), pool => sqlx::query(
                "DELETE FROM otlp_log_events WHERE id IN \
                 (SELECT id FROM otlp_log_events WHERE received_ms < $1 ORDER BY id LIMIT $2)",
            )
            .bind(raw_before_ms)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected());
            swept.log_events += n;
            if n < BATCH as u64 {
                break;
            }
        }
        for table in [
            "rollup_hourly",
            "rollup_length",
            "rollup_scores",
            "rollup_embedding",
        ] {
            // Roll-up tables are small (per stream and hour); one statement each.
            let sql = format!("DELETE FROM {table} WHERE hour_ms < $1");
            swept.rollups += on_db!(self.db(), pool => sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(rollup_before_ms)
                .execute(pool)
                .await?
                .rows_affected());
        }
        Ok(swept)
    }

    /// Deletes up to `max_batches` batches of change annotations whose change
    /// happened (`ts_ms`) before `before_ms`, whatever their source: an
    /// annotation is drawn on the charts and cited by alerts near it, so it
    /// is worth keeping as long as the roll-ups it explains, and no longer.
    /// The table is small (one row per recorded change), so the batch's
    /// subquery needs no index of its own.
    pub async fn sweep_annotations(&self, before_ms: i64, max_batches: u32) -> Result<Swept> {
        let mut swept = Swept::default();
        for _ in 0..max_batches {
            let n = on_db!(self.db(), pool => sqlx::query(
                "DELETE FROM annotations WHERE id IN \
                 (SELECT id FROM annotations WHERE ts_ms < $1 ORDER BY ts_ms, id LIMIT $2)",
            )
            .bind(before_ms)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected());
            swept.annotations += n;
            if n < BATCH as u64 {
                break;
            }
        }
        Ok(swept)
    }

    /// Deletes up to `max_batches` batches of each alert-side kind older than
    /// `cut`. Undelivered notifications, firing or pending alerts and alerts
    /// still owing a resolve notice are never touched; an alert's history and
    /// links go with it (`ON DELETE CASCADE`).
    pub async fn sweep_alert_retention(
        &self,
        cut: AlertCutoffs,
        max_batches: u32,
    ) -> Result<Swept> {
        let mut swept = Swept::default();
        let kinds: [(&'static str, i64, &mut u64); 3] = [
            (
                "DELETE FROM health_scores WHERE (stream, at_ms) IN \
                 (SELECT stream, at_ms FROM health_scores WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
                cut.health_before_ms,
                &mut swept.health_scores,
            ),
            (
                "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications \
                 WHERE state = 'sent' AND sent_ms < $1 ORDER BY id LIMIT $2)",
                cut.sent_notifications_before_ms,
                &mut swept.notifications,
            ),
            (
                "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts WHERE state = 'resolved' \
                 AND NOT resolve_pending AND resolved_ms < $1 ORDER BY id LIMIT $2)",
                cut.resolved_alerts_before_ms,
                &mut swept.alerts,
            ),
        ];
        for (sql, before, count) in kinds {
            for _ in 0..max_batches {
                let n = on_db!(self.db(), pool => sqlx::query(sql)
                    .bind(before)
                    .bind(BATCH)
                    .execute(pool)
                    .await?
                    .rows_affected());
                *count += n;
                if n < BATCH as u64 {
                    break;
                }
            }
        }
        Ok(swept)
    }
}
