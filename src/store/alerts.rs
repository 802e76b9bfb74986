//! Alerts, their history, the notification outbox and silences.
//!
//! Writers that decide from what they read (the lifecycle, the outbox
//! claim) use optimistic concurrency: every alert row carries `rev`, and an
//! update that finds a different `rev` rolls the whole transaction back, so
//! two replicas racing on the same alert never notify twice.

use serde::Serialize;

use super::BeginWrite;
use super::{Result, Store};
use crate::on_db;

/// An alert as stored. `dimension` is `""` when the detector has none.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AlertRow {
    pub id: i64,
    pub rule: String,
    pub stream: String,
    pub dimension: String,
    /// pending | firing | resolved
    pub state: String,
    pub severity: String,
    pub value: f64,
    pub baseline: f64,
    pub threshold: f64,
    pub p_value: Option<f64>,
    pub samples: i64,
    pub baseline_samples: i64,
    pub summary: String,
    pub pending_ms: Option<i64>,
    pub firing_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub last_eval_ms: i64,
    pub last_notified_ms: Option<i64>,
    /// A resolve notice is owed for this episode.
    pub resolve_pending: bool,
    pub rev: i64,
}

/// One row of an alert's history.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AlertHistoryRow {
    pub id: i64,
    pub alert_id: i64,
    pub at_ms: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub value: Option<f64>,
    pub note: Option<String>,
}

/// A change to write: the new row (id 0 inserts) and the `rev` it was read at.
#[derive(Debug, Clone)]
pub struct AlertChange {
    pub row: AlertRow,
    /// History entry to append: (from, to, note), at `row.last_eval_ms` or `at_ms`.
    pub history: Option<(Option<String>, String, Option<String>)>,
    pub at_ms: i64,
}

/// A rendered message for the outbox.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub channel: String,
    pub kind: String,
    pub stream: String,
    /// firing | resolved
    pub status: String,
    pub title: String,
    pub body: String,
    pub alert_ids: Vec<i64>,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: i64,
    pub channel: String,
    pub kind: String,
    pub stream: String,
    pub status: String,
    pub title: String,
    #[serde(skip)]
    pub body: String,
    /// pending | sent
    pub state: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub sent_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SilenceRow {
    pub id: i64,
    pub rule: Option<String>,
    pub stream: Option<String>,
    pub severity: Option<String>,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub comment: String,
    pub created_by: String,
    pub created_ms: i64,
}

pub(super) const ALERT_COLS: &str = "id, rule, stream, dimension, state, severity, value, baseline, threshold, p_value, samples, \
     baseline_samples, summary, pending_ms, firing_ms, resolved_ms, last_eval_ms, last_notified_ms, resolve_pending, rev";
const NOTIF_COLS: &str = "id, channel, kind, stream, status, title, body, state, attempts, next_attempt_ms, last_error, created_ms, sent_ms";
const SILENCE_COLS: &str =
    "id, rule, stream, severity, starts_ms, ends_ms, comment, created_by, created_ms";

impl Store {
    /// Every alert, most recently changed first.
    pub async fn list_alerts(&self, limit: i64) -> Result<Vec<AlertRow>> {
        let sql =
            format!("SELECT {ALERT_COLS} FROM alerts ORDER BY last_eval_ms DESC, id DESC LIMIT $1");
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql))
            .bind(limit).fetch_all(pool).await)?,
        )
    }

    /// The alerts open now (pending or firing): what the status report shows
    /// beside each detector's verdict.
    pub async fn open_alerts(&self) -> Result<Vec<AlertRow>> {
        let sql = format!(
            "SELECT {ALERT_COLS} FROM alerts WHERE state IN ('pending', 'firing') ORDER BY id"
        );
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool).await)?,
        )
    }

    /// Alerts of these keys (for applying findings) — all rows of the streams given.
    pub async fn alerts_of_streams(&self, streams: &[String]) -> Result<Vec<AlertRow>> {
        let mut out = Vec::new();
        for s in streams {
            let sql = format!("SELECT {ALERT_COLS} FROM alerts WHERE stream = $1 ORDER BY id");
            let rows = on_db!(self.db(), pool => sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql))
                .bind(s).fetch_all(pool).await)?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Streams with something that may need notifying: a pending or firing
    /// alert, or an owed resolve notice.
    pub async fn streams_with_open_alerts(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT DISTINCT stream FROM alerts WHERE state IN ('pending', 'firing') OR resolve_pending ORDER BY stream",
        ).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// How many alerts are in `state` now (for the `alerts_firing` gauge).
    pub async fn count_alerts_in_state(&self, state: &str) -> Result<i64> {
        let row: (i64,) = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT COUNT(*) FROM alerts WHERE state = $1",
        ).bind(state).fetch_one(pool).await)?;
        Ok(row.0)
    }

    pub async fn alert_history(&self, alert_id: i64) -> Result<Vec<AlertHistoryRow>> {
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, AlertHistoryRow>(
            "SELECT id, alert_id, at_ms, from_state, to_state, value, note FROM alert_history WHERE alert_id = $1 ORDER BY at_ms, id",
        ).bind(alert_id).fetch_all(pool).await)?,
        )
    }

    /// Writes alert changes and enqueues notifications in one transaction.
    /// Returns the ids of the written alerts (in order), or `None` when
    /// another writer changed one of them since it was read (nothing is written).
    pub async fn write_alerts(
        &self,
        changes: &[AlertChange],
        notifications: &[NewNotification],
    ) -> Result<Option<Vec<i64>>> {
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            let mut ids = Vec::with_capacity(changes.len());
            for c in changes {
                let r = &c.row;
                let id: Option<i64> = if r.id == 0 {
                    let row: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO alerts (rule, stream, dimension, state, severity, value, baseline, threshold, p_value, samples, \
                         baseline_samples, summary, pending_ms, firing_ms, resolved_ms, last_eval_ms, last_notified_ms, resolve_pending, rev) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 1) \
                         ON CONFLICT (rule, stream, dimension) DO NOTHING RETURNING id",
                    )
                    .bind(&r.rule).bind(&r.stream).bind(&r.dimension).bind(&r.state).bind(&r.severity)
                    .bind(r.value).bind(r.baseline).bind(r.threshold).bind(r.p_value).bind(r.samples)
                    .bind(r.baseline_samples).bind(&r.summary).bind(r.pending_ms).bind(r.firing_ms)
                    .bind(r.resolved_ms).bind(r.last_eval_ms).bind(r.last_notified_ms).bind(r.resolve_pending)
                    .fetch_optional(&mut *tx).await?;
                    row.map(|x| x.0)
                } else {
                    let done = sqlx::query(
                        "UPDATE alerts SET state = $3, severity = $4, value = $5, baseline = $6, threshold = $7, p_value = $8, \
                         samples = $9, baseline_samples = $10, summary = $11, pending_ms = $12, firing_ms = $13, resolved_ms = $14, \
                         last_eval_ms = $15, last_notified_ms = $16, resolve_pending = $17, rev = rev + 1 \
                         WHERE id = $1 AND rev = $2",
                    )
                    .bind(r.id).bind(r.rev).bind(&r.state).bind(&r.severity).bind(r.value).bind(r.baseline)
                    .bind(r.threshold).bind(r.p_value).bind(r.samples).bind(r.baseline_samples).bind(&r.summary)
                    .bind(r.pending_ms).bind(r.firing_ms).bind(r.resolved_ms).bind(r.last_eval_ms)
                    .bind(r.last_notified_ms).bind(r.resolve_pending)
                    .execute(&mut *tx).await?.rows_affected();
                    (done == 1).then_some(r.id)
                };
                let Some(id) = id else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                if let Some((from, to, note)) = &c.history {
                    sqlx::query(
                        "INSERT INTO alert_history (alert_id, at_ms, from_state, to_state, value, note) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(id).bind(c.at_ms).bind(from).bind(to).bind(r.value).bind(note)
                    .execute(&mut *tx).await?;
                }
                ids.push(id);
            }
            for n in notifications {
                let (nid,): (i64,) = sqlx::query_as(
                    "INSERT INTO notifications (channel, kind, stream, status, title, body, state, attempts, next_attempt_ms, created_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) RETURNING id",
                )
                .bind(&n.channel).bind(&n.kind).bind(&n.stream).bind(&n.status).bind(&n.title).bind(&n.body)
                .bind(n.created_ms)
                .fetch_one(&mut *tx).await?;
                for a in &n.alert_ids {
                    sqlx::query("INSERT INTO notification_alerts (notification_id, alert_id) VALUES ($1, $2)")
                        .bind(nid).bind(a).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(Some(ids))
        })
    }

    /// Outbox rows waiting to be sent whose time has come, oldest first.
    pub async fn due_notifications(&self, now_ms: i64, limit: i64) -> Result<Vec<NotificationRow>> {
        let sql = format!(
            "SELECT {NOTIF_COLS} FROM notifications WHERE state = 'pending' AND next_attempt_ms <= $1 ORDER BY next_attempt_ms, id LIMIT $2"
        );
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, NotificationRow>(sqlx::AssertSqlSafe(sql))
            .bind(now_ms).bind(limit).fetch_all(pool).await)?,
        )
    }

    /// Takes a due notification for this replica by moving its next attempt
    /// to `until_ms`; false when another replica took it first.
    pub async fn claim_notification(
        &self,
        id: i64,
        seen_next_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        let n = on_db!(self.db(), pool => sqlx::query(
            "UPDATE notifications SET next_attempt_ms = $3 WHERE id = $1 AND next_attempt_ms = $2 AND state = 'pending'",
        ).bind(id).bind(seen_next_ms).bind(until_ms).execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    pub async fn mark_notification_sent(&self, id: i64, attempts: i64, now_ms: i64) -> Result<()> {
        on_db!(self.db(), pool => sqlx::query(
            "UPDATE notifications SET state = 'sent', attempts = $2, sent_ms = $3, last_error = NULL WHERE id = $1",
        ).bind(id).bind(attempts).bind(now_ms).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Keeps a failed notification in the outbox for another try at `next_ms`.
    pub async fn mark_notification_failed(
        &self,
        id: i64,
        attempts: i64,
        next_ms: i64,
        error: &str,
    ) -> Result<()> {
        on_db!(self.db(), pool => sqlx::query(
            "UPDATE notifications SET attempts = $2, next_attempt_ms = $3, last_error = $4 WHERE id = $1",
        ).bind(id).bind(attempts).bind(next_ms).bind(error).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Recent notifications, newest first, with the alerts each carried.
    pub async fn list_notifications(&self, limit: i64) -> Result<Vec<(NotificationRow, Vec<i64>)>> {
        let sql = format!(
            "SELECT {NOTIF_COLS} FROM notifications ORDER BY created_ms DESC, id DESC LIMIT $1"
        );
        let rows = on_db!(self.db(), pool => sqlx::query_as::<_, NotificationRow>(sqlx::AssertSqlSafe(sql))
            .bind(limit).fetch_all(pool).await)?;
        let mut out = Vec::with_capacity(rows.len());
        for n in rows {
            let ids: Vec<(i64,)> = on_db!(self.db(), pool => sqlx::query_as(
                "SELECT alert_id FROM notification_alerts WHERE notification_id = $1 ORDER BY alert_id",
            ).bind(n.id).fetch_all(pool).await)?;
            out.push((n, ids.into_iter().map(|r| r.0).collect()));
        }
        Ok(out)
    }

    pub async fn add_silence(&self, s: &SilenceRow) -> Result<i64> {
        let (id,): (i64,) = on_db!(self.db(), pool => sqlx::query_as(
            "INSERT INTO silences (rule, stream, severity, starts_ms, ends_ms, comment, created_by, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&s.rule).bind(&s.stream).bind(&s.severity).bind(s.starts_ms).bind(s.ends_ms)
        .bind(&s.comment).bind(&s.created_by).bind(s.created_ms)
        .fetch_one(pool).await)?;
        Ok(id)
    }

    /// Silences in force at `now_ms`, or every silence with `include_expired`.
    pub async fn list_silences(
        &self,
        now_ms: i64,
        include_expired: bool,
    ) -> Result<Vec<SilenceRow>> {
        let sql = if include_expired {
            format!("SELECT {SILENCE_COLS} FROM silences WHERE $1 = $1 ORDER BY id")
        } else {
            format!(
                "SELECT {SILENCE_COLS} FROM silences WHERE starts_ms <= $1 AND ends_ms > $1 ORDER BY id"
            )
        };
        Ok(
            on_db!(self.db(), pool => sqlx::query_as::<_, SilenceRow>(sqlx::AssertSqlSafe(sql))
            .bind(now_ms).fetch_all(pool).await)?,
        )
    }

    /// Ends a silence now. False when it does not exist or has already ended.
    pub async fn expire_silence(&self, id: i64, now_ms: i64) -> Result<bool> {
        let n = on_db!(self.db(), pool => sqlx::query(
            "UPDATE silences SET ends_ms = $2 WHERE id = $1 AND ends_ms > $2",
        ).bind(id).bind(now_ms).execute(pool).await?.rows_affected());
        Ok(n == 1)
    }
}
