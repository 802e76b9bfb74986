//! Replaying history through the detectors: evaluate at every step of
//! simulated time and report when a (rule, stream, dimension) starts or
//! stops firing. The snapshot comes from the same store reads as the
//! daemon's and every step is the daemon's `evaluate_snapshot`, so a
//! backtest shows exactly what the daemon would have said.

use std::collections::BTreeMap;

use serde::Serialize;

use super::finding::{Finding, Rule, Status};
use super::{DetectorConfig, Snapshot, evaluate_snapshot, fmt_time};

/// One line of `canaryd backtest` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `firing` or `resolved`.
    pub event: &'static str,
    pub rule: Rule,
    pub stream: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// RFC 3339 time of the evaluation step.
    pub at: String,
    #[serde(skip)]
    pub at_ms: i64,
    pub value: f64,
    pub baseline: f64,
    pub threshold: f64,
    pub p_value: Option<f64>,
    pub samples: u64,
    pub baseline_samples: u64,
    pub severity: super::Severity,
    pub summary: String,
}

impl Event {
    fn from(kind: &'static str, f: &Finding) -> Event {
        Event {
            event: kind,
            rule: f.rule,
            stream: f.stream.clone(),
            dimension: f.dimension.clone(),
            at: fmt_time(f.at_ms),
            at_ms: f.at_ms,
            value: round(f.value),
            baseline: round(f.baseline),
            threshold: f.threshold,
            p_value: f.p_value,
            samples: f.samples,
            baseline_samples: f.baseline_samples,
            severity: f.severity,
            summary: f.summary.clone(),
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

type Key = (Rule, String, Option<String>);

/// Evaluates at `from_ms`, `from_ms + every_ms`, … up to `to_ms` inclusive
/// and returns the state changes in time order. Informational findings (a
/// lone model change) are reported like the others.
pub fn replay(
    snap: &Snapshot,
    from_ms: i64,
    to_ms: i64,
    every_ms: i64,
    cfg: &DetectorConfig,
    mut on_step: impl FnMut(i64, &[Finding]),
) -> Vec<Event> {
    let mut firing: BTreeMap<Key, Finding> = BTreeMap::new();
    let mut events = Vec::new();
    let mut now = from_ms;
    while now <= to_ms {
        let findings = evaluate_snapshot(snap, now, cfg);
        on_step(now, &findings);
        let mut seen: BTreeMap<Key, &Finding> = BTreeMap::new();
        for f in &findings {
            let key = (f.rule, f.stream.clone(), f.dimension.clone());
            if f.status == Status::Firing {
                if !firing.contains_key(&key) {
                    events.push(Event::from("firing", f));
                }
                seen.insert(key, f);
            }
        }
        let ended: Vec<Key> = firing
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect();
        for key in ended {
            if let Some(last) = firing.remove(&key) {
                // Report the resolve with the current (non-firing) values when present.
                let now_finding = findings
                    .iter()
                    .find(|f| (f.rule, &f.stream, &f.dimension) == (key.0, &key.1, &key.2));
                let mut e = Event::from("resolved", now_finding.unwrap_or(&last));
                e.at = fmt_time(now);
                e.at_ms = now;
                events.push(e);
            }
        }
        for (k, f) in seen {
            firing.insert(k, f.clone());
        }
        now += every_ms.max(1);
    }
    events
}

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
    let flush = async |batch: &mut Vec<crate::ingest::Record>,
                       summary: &mut Summary|
           -> Result<(), BacktestError> {
        let rows = crate::ingest::prepare(batch, received_ms, &judging);
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
            flush(&mut batch, &mut summary).await?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut summary).await?;
    }
    if min_ts > max_ts {
        return Err(BacktestError::Empty(path));
    }
    summary.ingest_secs = started.elapsed().as_secs_f64();

    let started = std::time::Instant::now();
    let cfg = &config.detectors;
    let snap = store
        .load_snapshot(
            min_ts - super::window::HOUR_MS,
            max_ts + super::window::HOUR_MS,
        )
        .await?;
    store.close().await;
    let first = super::window::floor_hour(min_ts) + every_ms.max(super::window::HOUR_MS);
    let last = super::window::ceil_hour(max_ts);
    let events = replay(&snap, first, last, every_ms, cfg, |_, _| summary.steps += 1);
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
