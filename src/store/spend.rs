//! Spend reads: the hourly `rollup_spend` roll-up (per stream, hour and
//! user) and the sessions' totals, for the spend detectors, `/metrics`,
//! `canaryd status` and the pages. The writes live with the session
//! writes of the ingest transaction (`sessions.rs`).

use std::collections::BTreeMap;

use super::{Result, Store};
use crate::on_db;

pub use crate::signals::spend_rate::SpendHour;

/// Spend of one stream or user over a period.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpendTotal {
    pub stream: String,
    /// A user, or a session, where the total is per user or session.
    pub key: Option<String>,
    pub calls: i64,
    pub tokens: i64,
    pub cost_usd: f64,
}

/// One user's spend over a period: totals and the hours that had any.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UserSpend {
    pub user: String,
    pub calls: i64,
    pub tokens: i64,
    pub cost_usd: f64,
    pub hours: Vec<SpendHour>,
}

/// Spend of one stream's sessions (for `/metrics` and `canaryd status`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StreamSpend {
    pub stream: String,
    pub sessions: i64,
    pub active: i64,
    pub tokens: i64,
    pub cost_usd: f64,
}

impl Store {
    /// Hourly spend of every stream (all users) from `from_ms`, by stream.
    pub async fn spend_hours(&self, from_ms: i64) -> Result<BTreeMap<String, Vec<SpendHour>>> {
        let rows: Vec<(String, i64, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, hour_ms, CAST(SUM(n) AS BIGINT), CAST(SUM(tokens) AS BIGINT), \
             CAST(SUM(cost_usd) AS DOUBLE PRECISION) FROM rollup_spend WHERE hour_ms >= $1 \
             GROUP BY stream, hour_ms ORDER BY stream, hour_ms",
        ).bind(from_ms).fetch_all(pool).await)?;
        let mut out: BTreeMap<String, Vec<SpendHour>> = BTreeMap::new();
        for (stream, hour_ms, calls, tokens, cost_usd) in rows {
            out.entry(stream).or_default().push(SpendHour {
                hour_ms,
                calls,
                tokens,
                cost_usd,
            });
        }
        Ok(out)
    }

    /// Hourly spend of one stream (all users) in `[from_ms, to_ms)`, for
    /// its page.
    pub async fn stream_spend_hours(
        &self,
        stream: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SpendHour>> {
        let rows: Vec<(i64, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT hour_ms, CAST(SUM(n) AS BIGINT), CAST(SUM(tokens) AS BIGINT), \
             CAST(SUM(cost_usd) AS DOUBLE PRECISION) FROM rollup_spend \
             WHERE stream = $1 AND hour_ms >= $2 AND hour_ms < $3 GROUP BY hour_ms ORDER BY hour_ms",
        ).bind(stream).bind(from_ms).bind(to_ms).fetch_all(pool).await)?;
        Ok(spend_hours(rows))
    }

    /// Hourly spend of one user of a stream from `from_ms`.
    pub async fn user_spend_hours(
        &self,
        stream: &str,
        user: &str,
        from_ms: i64,
    ) -> Result<Vec<SpendHour>> {
        let rows: Vec<(i64, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT hour_ms, n, tokens, cost_usd FROM rollup_spend \
             WHERE stream = $1 AND user_id = $2 AND hour_ms >= $3 ORDER BY hour_ms",
        ).bind(stream).bind(user).bind(from_ms).fetch_all(pool).await)?;
        Ok(spend_hours(rows))
    }

    /// The `top` users of `stream` by cost (then tokens) in `[from_ms,
    /// to_ms)`, each with its hours, for the stream page: one read of the
    /// roll-up restricted to the top users, so a stream with a million
    /// users costs `top` × hours rows, not a million.
    pub async fn stream_user_spend(
        &self,
        stream: &str,
        from_ms: i64,
        to_ms: i64,
        top: usize,
    ) -> Result<Vec<UserSpend>> {
        let top = i64::try_from(top).unwrap_or(i64::MAX);
        let rows: Vec<(String, f64, i64, i64, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT r.user_id, t.cost, t.tokens, r.hour_ms, r.n, r.tokens, r.cost_usd FROM rollup_spend r \
             JOIN (SELECT user_id, CAST(SUM(cost_usd) AS DOUBLE PRECISION) AS cost, \
             CAST(SUM(tokens) AS BIGINT) AS tokens FROM rollup_spend \
             WHERE stream = $1 AND hour_ms >= $2 AND hour_ms < $3 AND user_id <> '' \
             GROUP BY user_id ORDER BY cost DESC, tokens DESC, user_id LIMIT $4) t ON t.user_id = r.user_id \
             WHERE r.stream = $5 AND r.hour_ms >= $6 AND r.hour_ms < $7 \
             ORDER BY t.cost DESC, t.tokens DESC, r.user_id, r.hour_ms",
        ).bind(stream).bind(from_ms).bind(to_ms).bind(top)
            .bind(stream).bind(from_ms).bind(to_ms).fetch_all(pool).await)?;
        let mut out: Vec<UserSpend> = Vec::new();
        for (user, _, _, hour_ms, calls, tokens, cost_usd) in rows {
            if out.last().is_none_or(|u| u.user != user) {
                out.push(UserSpend {
                    user,
                    calls: 0,
                    tokens: 0,
                    cost_usd: 0.0,
                    hours: Vec::new(),
                });
            }
            let u = out.last_mut().expect("pushed above");
            u.calls += calls;
            u.tokens += tokens;
            u.cost_usd += cost_usd;
            u.hours.push(SpendHour {
                hour_ms,
                calls,
                tokens,
                cost_usd,
            });
        }
        Ok(out)
    }

    /// Spend since `from_ms`: per stream (`key` none), and the `top` users
    /// by cost of each stream.
    pub async fn spend_totals(&self, from_ms: i64, top: usize) -> Result<Vec<SpendTotal>> {
        let rows: Vec<(String, String, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, user_id, CAST(SUM(n) AS BIGINT), CAST(SUM(tokens) AS BIGINT), \
             CAST(SUM(cost_usd) AS DOUBLE PRECISION) FROM rollup_spend WHERE hour_ms >= $1 \
             GROUP BY stream, user_id ORDER BY stream, 5 DESC, user_id",
        ).bind(from_ms).fetch_all(pool).await)?;
        let mut out: Vec<SpendTotal> = Vec::new();
        let mut users_of_stream = 0usize;
        for (stream, user, calls, tokens, cost_usd) in rows {
            match out
                .iter_mut()
                .rev()
                .find(|t| t.stream == stream && t.key.is_none())
            {
                Some(t) => {
                    t.calls += calls;
                    t.tokens += tokens;
                    t.cost_usd += cost_usd;
                }
                None => {
                    users_of_stream = 0;
                    out.push(SpendTotal {
                        stream: stream.clone(),
                        key: None,
                        calls,
                        tokens,
                        cost_usd,
                    });
                }
            }
            if !user.is_empty() && users_of_stream < top {
                users_of_stream += 1;
                out.push(SpendTotal {
                    stream,
                    key: Some(user),
                    calls,
                    tokens,
                    cost_usd,
                });
            }
        }
        Ok(out)
    }

    /// The `top` active sessions by cost (then tokens).
    pub async fn top_sessions(&self, top: usize) -> Result<Vec<SpendTotal>> {
        let top = i64::try_from(top).unwrap_or(i64::MAX);
        let rows: Vec<(String, String, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, session_id, calls, tokens, cost_usd FROM sessions WHERE state = 'active' \
             ORDER BY cost_usd DESC, tokens DESC, stream, session_id LIMIT $1",
        ).bind(top).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(stream, s, calls, tokens, cost_usd)| SpendTotal {
                stream,
                key: Some(s),
                calls,
                tokens,
                cost_usd,
            })
            .collect())
    }

    /// Session spend per stream: all sessions, active ones, tokens, cost.
    pub async fn session_spend(&self) -> Result<Vec<StreamSpend>> {
        let rows: Vec<(String, i64, i64, i64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, COUNT(*), SUM(CASE WHEN state = 'active' THEN 1 ELSE 0 END), \
             CAST(SUM(tokens) AS BIGINT), CAST(SUM(cost_usd) AS DOUBLE PRECISION) FROM sessions GROUP BY stream ORDER BY stream",
        ).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(stream, sessions, active, tokens, cost_usd)| StreamSpend {
                stream,
                sessions,
                active,
                tokens,
                cost_usd,
            })
            .collect())
    }
}

/// `(hour_ms, calls, tokens, cost_usd)` rows of `rollup_spend` reads.
fn spend_hours(rows: Vec<(i64, i64, i64, f64)>) -> Vec<SpendHour> {
    rows.into_iter()
        .map(|(hour_ms, calls, tokens, cost_usd)| SpendHour {
            hour_ms,
            calls,
            tokens,
            cost_usd,
        })
        .collect()
}
