//! What the detectors read and write: roll-ups over a span (all streams in
//! four range queries, so cost follows hours × streams, not records), canary
//! results, the health-score series and the latest verdict per subject.

use std::collections::BTreeMap;

use super::BeginWrite;
use super::{Result, Store, StoreError};
use crate::on_db;
use crate::signals::canary::CanaryObs;
use crate::signals::rollup::{BINS, EmbeddingSum, HourCounts};
use crate::signals::stats::Moments;
use crate::signals::window::Windows;
use crate::signals::{DetectorConfig, Finding, Rule, Snapshot, quiet_span};

type HourlyRow = (String, i64, i64, i64, i64, f64, f64);
type CanaryRow = (i64, String, String, String, String, Option<bool>, i64);

impl Store {
    /// Roll-ups of every stream for hours in `[from_ms, to_ms)`, canary
    /// results and model events created in that span.
    pub async fn load_snapshot(&self, from_ms: i64, to_ms: i64) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        let hourly: Vec<HourlyRow> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, hour_ms, n, refusals, truncations, tokens_sum, tokens_sumsq FROM rollup_hourly WHERE hour_ms >= $1 AND hour_ms < $2",
        ).bind(from_ms).bind(to_ms).fetch_all(pool).await)?;
        for (stream, hour, n, refusals, truncations, sum, sumsq) in hourly {
            snap.streams.entry(stream).or_default().hours.insert(
                hour,
                HourCounts {
                    n: n as u64,
                    refusals: refusals as u64,
                    truncations: truncations as u64,
                    tokens: Moments {
                        n: n as f64,
                        sum,
                        sumsq,
                    },
                },
            );
        }
        let lengths: Vec<(String, i64, i64, i64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, hour_ms, bin, n FROM rollup_length WHERE hour_ms >= $1 AND hour_ms < $2",
        ).bind(from_ms).bind(to_ms).fetch_all(pool).await)?;
        for (stream, hour, bin, n) in lengths {
            let bins = snap
                .streams
                .entry(stream)
                .or_default()
                .length
                .entry(hour)
                .or_insert([0; BINS]);
            bins[(bin.max(0) as usize).min(BINS - 1)] += n as u64;
        }
        let scores: Vec<(String, String, i64, i64, f64, f64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, judge, hour_ms, n, sum, sumsq FROM rollup_scores WHERE hour_ms >= $1 AND hour_ms < $2",
        ).bind(from_ms).bind(to_ms).fetch_all(pool).await)?;
        for (stream, judge, hour, n, sum, sumsq) in scores {
            snap.streams
                .entry(stream)
                .or_default()
                .scores
                .entry(judge)
                .or_default()
                .insert(
                    hour,
                    Moments {
                        n: n as f64,
                        sum,
                        sumsq,
                    },
                );
        }
        let embeddings: Vec<(String, i64, i64, i64, Vec<u8>)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT stream, hour_ms, n, dims, sum FROM rollup_embedding WHERE hour_ms >= $1 AND hour_ms < $2",
        ).bind(from_ms).bind(to_ms).fetch_all(pool).await)?;
        for (stream, hour, n, dims, blob) in embeddings {
            if blob.len() != dims as usize * 8 {
                return Err(StoreError::Corrupt(format!(
                    "rollup_embedding {stream}@{hour}: {} bytes for {dims} dims",
                    blob.len()
                )));
            }
            let v: Vec<f64> = blob
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            let e = snap
                .streams
                .entry(stream)
                .or_default()
                .embedding
                .entry(hour)
                .or_insert_with(|| EmbeddingSum {
                    n: 0,
                    sum: vec![0.0; v.len()],
                });
            if e.sum.len() == v.len() {
                e.n += n as u64;
                e.sum.iter_mut().zip(&v).for_each(|(s, x)| *s += x);
            }
        }
        let canary: Vec<CanaryRow> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT run_id, suite, case_id, target, outcome, agrees_with_pinned, created_ms FROM canary_results WHERE created_ms >= $1 AND created_ms < $2",
        ).bind(from_ms).bind(to_ms).fetch_all(pool).await)?;
        for (run_id, suite, case_id, target, outcome, agrees_with_pinned, at_ms) in canary {
            snap.suites.entry(suite).or_default().push(CanaryObs {
                run_id,
                case_id,
                target,
                outcome,
                agrees_with_pinned,
                at_ms,
            });
        }
        snap.model_events = self
            .model_events("", from_ms)
            .await?
            .into_iter()
            .filter(|e| e.at_ms < to_ms)
            .collect();
        snap.judge_canaries = self.judge_canaries(from_ms, to_ms).await?;
        Ok(snap)
    }

    /// What the detectors read at `now_ms`: the roll-ups, canary results and
    /// model events of the windows' span, and the spans in which alerts were
    /// open (the latest episode of each alert), left out of baselines.
    pub async fn detector_snapshot(&self, now_ms: i64, cfg: &DetectorConfig) -> Result<Snapshot> {
        let (from, to) = Windows::new(now_ms, cfg).span();
        let mut snap = self.load_snapshot(from, to.max(now_ms + 1)).await?;
        snap.logprobs = self.logprob_snapshot(now_ms).await?;
        // Episodes from the history: opened by `pending` (or a reopening
        // `firing` after `resolved`), closed by `resolved`.
        let rows: Vec<(String, String, String, String, i64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT a.rule, a.stream, a.dimension, h.to_state, h.at_ms FROM alert_history h JOIN alerts a ON a.id = h.alert_id \
             WHERE a.id IN (SELECT alert_id FROM alert_history WHERE at_ms >= $1 UNION SELECT id FROM alerts WHERE state IN ('pending', 'firing')) \
             ORDER BY h.alert_id, h.at_ms, h.id",
        ).bind(Windows::new(now_ms, cfg).baseline_limit()).fetch_all(pool).await)?;
        let mut open: Option<(crate::signals::QuietKey, i64)> = None;
        let push =
            |snap: &mut Snapshot, key: crate::signals::QuietKey, from: i64, to: Option<i64>| {
                snap.quiet
                    .entry(key)
                    .or_default()
                    .push(quiet_span(from, to, cfg));
            };
        for (rule, stream, dimension, to_state, at) in rows {
            let Some(rule) = Rule::parse(&rule) else {
                continue;
            };
            let key = (rule, stream, (!dimension.is_empty()).then_some(dimension));
            if let Some((k, from)) = open.take_if(|(k, _)| *k != key) {
                push(&mut snap, k, from, None);
            }
            match (to_state.as_str(), &open) {
                ("pending" | "firing", None) => open = Some((key, at)),
                ("resolved", Some(_)) => {
                    if let Some((k, from)) = open.take() {
                        push(&mut snap, k, from, Some(at));
                    }
                }
                _ => {}
            }
        }
        if let Some((k, from)) = open {
            push(&mut snap, k, from, None);
        }
        let lookback = crate::signals::model_drift::LOOKBACK_MS;
        for (suite, o) in self.equality_tests(now_ms - lookback, now_ms + 1).await? {
            snap.equality.entry(suite).or_default().push(o);
        }
        Ok(snap)
    }

    /// Appends one point per stream to the health-score series (idempotent per instant).
    pub async fn record_health(&self, at_ms: i64, scores: &BTreeMap<String, f64>) -> Result<()> {
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            for (stream, score) in scores {
                sqlx::query("INSERT INTO health_scores (stream, at_ms, score) VALUES ($1, $2, $3) ON CONFLICT (stream, at_ms) DO UPDATE SET score = excluded.score")
                    .bind(stream).bind(at_ms).bind(score).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The health series of `stream` in `[from_ms, to_ms)`, oldest first.
    pub async fn health_series(
        &self,
        stream: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>> {
        Ok(on_db!(self.db(), pool => sqlx::query_as(
            "SELECT at_ms, score FROM health_scores WHERE stream = $1 AND at_ms >= $2 AND at_ms < $3 ORDER BY at_ms",
        ).bind(stream).bind(from_ms).bind(to_ms).fetch_all(pool).await)?)
    }

    /// Replaces the latest verdict of each (stream, rule, dimension) in `findings`.
    pub async fn save_findings(&self, findings: &[Finding]) -> Result<()> {
        on_db!(self.db(), pool => {
            let mut tx = pool.begin_write().await?;
            for f in findings {
                let json = serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let status = serde_json::to_value(f.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                sqlx::query(
                    "INSERT INTO signal_snapshots (stream, rule, dimension, at_ms, status, severity, finding) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (stream, rule, dimension) DO UPDATE SET at_ms = excluded.at_ms, status = excluded.status, severity = excluded.severity, finding = excluded.finding",
                )
                .bind(&f.stream).bind(f.rule.as_str()).bind(f.dimension.as_deref().unwrap_or(""))
                .bind(f.at_ms).bind(status).bind(f.severity.as_str()).bind(json)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The latest saved verdicts, sorted by stream, rule and dimension.
    pub async fn latest_findings(&self) -> Result<Vec<Finding>> {
        let rows: Vec<(String,)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT finding FROM signal_snapshots ORDER BY stream, rule, dimension",
        ).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|(j,)| {
                serde_json::from_str(&j)
                    .map_err(|e| StoreError::Corrupt(format!("signal_snapshots: {e}")))
            })
            .collect()
    }
}
