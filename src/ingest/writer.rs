//! Group commit: concurrent ingest requests share one transaction.
//!
//! Committing each request alone pays one commit per request, and on
//! PostgreSQL concurrent transactions serialize anyway on the roll-up rows
//! of the same stream and hour. So requests queue here; a writer takes every
//! request waiting (up to [`MAX_ROWS`] records), stores them in one
//! transaction with their roll-ups and judge jobs, and answers each request
//! only after the commit. Under light load a group is one request and
//! nothing waits; under heavy load the cost per record falls.
//!
//! The writer also records model identities after each commit. On SQLite it
//! is the only ingest writer, so ingest writes never contend with each other.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::Settings;
use crate::store::{
    Backend, InsertOutcome, JobPlan, ModelIdentity, ResponseRow, Store, StoreError,
};

/// Records per transaction, at most. A group stops growing here so one
/// transaction stays short and its memory bounded.
pub const MAX_ROWS: usize = 2_000;
/// Requests waiting for a writer; beyond this, handlers wait to enqueue
/// (backpressure to the clients instead of unbounded memory).
const QUEUE: usize = 64;
/// How often an unchanged model identity is written again.
const IDENTITY_REFRESH_MS: i64 = 60_000;

/// A request's records on their way to the database.
struct Job {
    rows: Vec<ResponseRow>,
    /// The judging settings in force when the request arrived.
    config: Arc<dyn Settings>,
    /// Whether judge jobs are enqueued for this request's records.
    plan: bool,
    now_ms: i64,
    done: oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// Handle to the writer tasks. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer tasks: one on SQLite (it has one writer anyway),
    /// two on PostgreSQL so one group is built and sent while the previous
    /// one commits. The tasks end when every handle is dropped, after
    /// finishing the queued requests.
    pub fn start(store: Store) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let identities = Arc::new(Mutex::new(IdentityCache::new()));
        let writers = match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        };
        for _ in 0..writers {
            tokio::spawn(run(store.clone(), rx.clone(), identities.clone()));
        }
        Writer { tx }
    }

    /// Stores `rows` (signals computed, `judges` filled in) and returns once
    /// they are committed.
    pub async fn write(
        &self,
        rows: Vec<ResponseRow>,
        config: Arc<dyn Settings>,
        plan: bool,
        now_ms: i64,
    ) -> Result<InsertOutcome, StoreError> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            rows,
            config,
            plan,
            now_ms,
            done,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the ingest writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the ingest writer has stopped".into()))?
    }
}

/// (scope, requested model) → (response model, fingerprint, written at ms).
type IdentityCache = HashMap<(String, String), (Option<String>, Option<String>, i64)>;

async fn run(
    store: Store,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    identities: Arc<Mutex<IdentityCache>>,
) {
    loop {
        let group = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut rows = first.rows.len();
            let mut group = vec![first];
            while rows < MAX_ROWS {
                match rx.try_recv() {
                    Ok(job) => {
                        rows += job.rows.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        write_group(&store, group, &identities).await;
    }
}

/// Writes a group in one transaction and answers each request.
async fn write_group(store: &Store, group: Vec<Job>, identities: &Mutex<IdentityCache>) {
    let config = group[0].config.clone();
    let now_ms = group.iter().map(|j| j.now_ms).max().unwrap_or_default();
    let plan_any = group.iter().any(|j| j.plan);
    // Judge jobs are planned per record: a request that asked for none
    // contributes records without judges.
    let mut rows = Vec::with_capacity(group.iter().map(|j| j.rows.len()).sum());
    let mut replies = Vec::with_capacity(group.len());
    for job in group {
        replies.push((job.rows.len(), job.done));
        rows.extend(job.rows.into_iter().map(|mut r| {
            if !job.plan {
                r.judges.clear();
            }
            r
        }));
    }
    let judging = config.judging();
    let floor_cap = |s: &str| judging.floor_cap(s);
    let plan = JobPlan {
        floor_cap: &floor_cap,
        now_ms,
    };
    let started = std::time::Instant::now();
    let result = store
        .ingest_responses_marked(&rows, plan_any.then_some(&plan))
        .await;
    metrics::histogram!("canaryd_ingest_commit_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok((outcome, marks)) => {
            metrics::counter!("canaryd_judge_jobs_enqueued_total").increment(outcome.jobs);
            // Committed: identity bookkeeping failing must not turn an
            // acknowledged write into an error (it is retried next batch).
            if let Err(e) = observe_identities(store, &rows, identities).await {
                tracing::warn!("model identity not recorded: {e}");
            }
            let mut at = 0;
            for (len, reply) in replies {
                let accepted = marks[at..at + len].iter().filter(|m| **m).count() as u64;
                at += len;
                let _ = reply.send(Ok(InsertOutcome {
                    accepted,
                    duplicates: len as u64 - accepted,
                    jobs: 0,
                }));
            }
        }
        Err(e) => {
            tracing::error!(records = rows.len(), "ingest transaction failed: {e}");
            let msg = e.to_string();
            for (_, reply) in replies {
                let _ = reply.send(Err(StoreError::Unavailable(msg.clone())));
            }
        }
    }
}

/// (stream, requested model, response model, fingerprint, latest time).
type Sighting<'a> = (
    &'a str,
    &'a str,
    &'a Option<String>,
    &'a Option<String>,
    i64,
);

/// Records which model answered, once per distinct (stream, requested
/// model, response model, fingerprint) in the group, in order of first
/// appearance, so a change inside a group is still an event. An unchanged
/// identity is written at most once a minute.
async fn observe_identities(
    store: &Store,
    rows: &[ResponseRow],
    cache: &Mutex<IdentityCache>,
) -> Result<(), StoreError> {
    let mut seen: Vec<Sighting> = Vec::new();
    for r in rows {
        if r.response_model.is_none() && r.system_fingerprint.is_none() {
            continue;
        }
        let requested = r.request_model.as_deref().unwrap_or("*");
        match seen.iter_mut().find(|s| {
            s.0 == r.stream
                && s.1 == requested
                && *s.2 == r.response_model
                && *s.3 == r.system_fingerprint
        }) {
            Some(s) => s.4 = s.4.max(r.ts_ms),
            None => seen.push((
                &r.stream,
                requested,
                &r.response_model,
                &r.system_fingerprint,
                r.ts_ms,
            )),
        }
    }
    // Held throughout: two writers observing the same scope out of order
    // would record a change and its reversal.
    let mut cache = cache.lock().await;
    for (stream, requested, model, fp, at) in seen {
        let scope = format!("stream:{stream}");
        let key = (scope.clone(), requested.to_string());
        if let Some((m, f, written)) = cache.get(&key)
            && m == model
            && f == fp
            && (at - written).abs() < IDENTITY_REFRESH_MS
        {
            continue;
        }
        let identity = ModelIdentity {
            response_model: model.clone(),
            system_fingerprint: fp.clone(),
        };
        if let Some(ev) = store
            .observe_model(&scope, requested, &identity, at)
            .await?
        {
            tracing::warn!(scope = %ev.scope, old = ?ev.old_model, new = ?ev.new_model, "model identity changed");
        }
        cache.insert(key, (model.clone(), fp.clone(), at));
    }
    Ok(())
}
