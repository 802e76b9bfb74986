//! Loading recorded traffic for a backtest: ingest-format JSON lines go
//! through `ingest::prepare` and `Store::insert_responses` into a scratch
//! SQLite database, model identities are observed in time order as the
//! ingest writer does, and the detectors' snapshot is read back with the
//! daemon's own store reads — then [`replay`] runs the daemon's detectors
//! and alert lifecycle over it.

use serde::Serialize;

use super::replay::{Event, replay};
use crate::signals::fmt_time;
use crate::signals::window::{HOUR_MS, ceil_hour, floor_hour};
use crate::store::ModelIdentity;

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {source}")]
    Record {
        path: String,
        line: usize,
        source: crate::ingest::RecordError,
    },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Alerts(#[from] crate::alert::AlertError),
    #[error("{0} holds no records")]
    Empty(String),
}

/// What a backtest did, beside its events.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub records: u64,
    pub duplicates: u64,
    pub from: String,
    pub to: String,
    pub steps: u64,
    pub ingest_secs: f64,
    pub evaluate_secs: f64,
}

/// A scratch SQLite database in a fresh temporary directory, removed on drop:
/// a backtest never touches the user's database.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads `input` (ingest-format JSON lines) through the ingest code path into
/// a scratch store, then replays every `every_ms` from the first full hour
/// to the last record. `received_ms` stands in for records without a
/// `timestamp`. Events go to `on_event` as they happen.
pub async fn run(
    input: &std::path::Path,
    config: &crate::config::Config,
    every_ms: i64,
    received_ms: i64,
    mut on_event: impl FnMut(&Event),
) -> Result<Summary, BacktestError> {
    use std::io::BufRead;
    let path = input.display().to_string();
    let io = |source| BacktestError::Io {
        path: path.clone(),
        source,
    };
    let dir = std::env::temp_dir().join(format!(
        "canaryd-backtest-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let _scratch = Scratch(dir.clone());
    let store =
        crate::store::Store::connect(&format!("sqlite://{}", dir.join("scratch.db").display()))
            .await?;
    store.migrate().await?;

    let started = std::time::Instant::now();
    let file = std::fs::File::open(input).map_err(io)?;
    let mut summary = Summary::default();
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    let mut batch = Vec::with_capacity(BATCH);
    // Precomputed scores and embeddings are used as given; nothing is judged.
    let judging = crate::judge::JudgingConfig {
        enabled: false,
        ..config.judging.clone()
    };
    // (time, stream, requested model, identity) of every record that names one.
    let mut identities: Vec<(i64, String, String, ModelIdentity)> = Vec::new();
    let flush = async |batch: &mut Vec<crate::ingest::Record>,
                       summary: &mut Summary,
                       identities: &mut Vec<(i64, String, String, ModelIdentity)>|
           -> Result<(), BacktestError> {
        let rows = crate::ingest::prepare(batch, received_ms, &judging);
        for r in &rows {
            if r.response_model.is_some() || r.system_fingerprint.is_some() {
                identities.push((
                    r.ts_ms,
                    r.stream.clone(),
                    r.request_model.clone().unwrap_or_else(|| "*".into()),
                    ModelIdentity {
                        response_model: r.response_model.clone(),
                        system_fingerprint: r.system_fingerprint.clone(),
                    },
                ));
            }
        }
        let out = store.insert_responses(&rows).await?;
        summary.records += out.accepted;
        summary.duplicates += out.duplicates;
        batch.clear();
        Ok(())
    };
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = crate::ingest::parse_one(i, &line).map_err(|source| BacktestError::Record {
            path: path.clone(),
            line: i + 1,
            source,
        })?;
        let ts = rec.timestamp_ms.unwrap_or(received_ms);
        min_ts = min_ts.min(ts);
        max_ts = max_ts.max(ts);
        batch.push(rec);
        if batch.len() >= BATCH {
            flush(&mut batch, &mut summary, &mut identities).await?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut summary, &mut identities).await?;
    }
    // Model changes, as the ingest writer records them, in time order; an
    // identity equal to the last one seen for its scope is skipped here
    // (the store would not record it either).
    identities.sort_by_key(|a| a.0);
    let mut last: std::collections::BTreeMap<(String, String), ModelIdentity> =
        std::collections::BTreeMap::new();
    for (at, stream, requested, identity) in identities {
        let key = (stream, requested);
        if last.get(&key) == Some(&identity) {
            continue;
        }
        store
            .observe_model(&format!("stream:{}", key.0), &key.1, &identity, at)
            .await?;
        last.insert(key, identity);
    }
    if min_ts > max_ts {
        return Err(BacktestError::Empty(path));
    }
    summary.ingest_secs = started.elapsed().as_secs_f64();

    let started = std::time::Instant::now();
    let cfg = &config.detectors;
    let snap = store
        .load_snapshot(min_ts - HOUR_MS, max_ts + HOUR_MS)
        .await?;
    store.close().await;
    let first = floor_hour(min_ts) + every_ms.max(HOUR_MS);
    let last = ceil_hour(max_ts);
    let alerts = crate::config::alert_settings(config);
    let events = replay(snap, (first, last, every_ms), cfg, &alerts, |_, _| {
        summary.steps += 1
    });
    for e in &events {
        on_event(e);
    }
    summary.from = fmt_time(min_ts);
    summary.to = fmt_time(max_ts);
    summary.evaluate_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Records per ingest batch (the API's batches are about this size too).
const BATCH: usize = 2_000;
