//! The canary scheduler of `canaryd serve`.
//!
//! tokio-cron-scheduler fires the ticks; everything it does not do is here:
//! - **No overlap**: a per-suite lock, and a per-suite lease in the store
//!   for replicas; a tick that finds the previous run of its suite still
//!   going is skipped (and logged), never queued.
//! - **Once per tick across replicas**: a run is started with
//!   `scheduled_for_ms = tick`, unique per suite in the store.
//! - **Catch-up**: at start, a suite whose latest tick was missed while no
//!   replica ran gets exactly one run for that tick, not a burst.
//! - **Time zones**: the crate freezes a zone's UTC offset when a job is
//!   created, so a zoned job is rebuilt when the offset changes (DST).
//! - **Stalled jobs**: a job whose next tick is stuck in the past (the
//!   crate's issue #113) is rebuilt.
//! - **Hot reload**: the suites directory is polled; added, edited and
//!   removed suites take effect without a restart, and a file that fails
//!   validation keeps its last good version scheduled while the error is
//!   logged (and reported by `canaryd check`). A new [`Live`] version
//!   (SIGHUP) rescans at once, against its models and judges, and its
//!   provider clients and judges are used from the next run on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::load::{self, Suite};
use super::runner::{DEFAULT_TIMEOUT_SECS, RunSpec, Runner, Started};
use super::ticks;
use crate::live::Live;
use crate::store::RunTrigger;

/// How often the suites directory is checked for changes.
pub const POLL: Duration = Duration::from_secs(1);

/// A scheduler that could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the canary scheduler: {0}")]
pub struct ScheduleError(String);

/// What a fired job needs.
struct FireCtx {
    /// Replaced (its evaluator) when a new [`Live`] version arrives; a run
    /// takes a clone when it starts and keeps it to the end.
    runner: RwLock<Runner>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// One suite's current good version and its overlap lock. Shared with its
/// cron job, which reads the suite when it fires, so an edit that keeps the
/// schedule takes effect without rebuilding the job.
struct Slot {
    suite: RwLock<Arc<Suite>>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    fn get(&self) -> Arc<Suite> {
        self.suite.read().expect("suite slot poisoned").clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct JobKey {
    cron: String,
    tz: Option<String>,
    offset: i32,
}

struct Entry {
    slot: Arc<Slot>,
    job: Option<(Uuid, JobKey)>,
}

/// The running scheduler's state, owned by its polling task.
struct Scheduler {
    sched: JobScheduler,
    ctx: Arc<FireCtx>,
    live: Arc<Live>,
    entries: BTreeMap<String, Entry>,
    dir_digest: Option<Vec<u8>>,
    reported: BTreeMap<PathBuf, String>,
}

/// Starts scheduling every suite in the live config's `canaries` directory.
/// `runner`'s evaluator is replaced by each new version `live` delivers. The
/// returned task ends after `shutdown` is cancelled and in-flight runs have
/// been recorded (as cancelled); await it before closing the store.
pub async fn start(
    runner: Runner,
    mut live: tokio::sync::watch::Receiver<Arc<Live>>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ScheduleError> {
    let sched = JobScheduler::new()
        .await
        .map_err(|e| ScheduleError(e.to_string()))?;
    sched
        .start()
        .await
        .map_err(|e| ScheduleError(e.to_string()))?;
    let mut s = Scheduler {
        sched,
        ctx: Arc::new(FireCtx {
            runner: RwLock::new(runner),
            shutdown: shutdown.clone(),
            tracker: TaskTracker::new(),
        }),
        live: live.borrow_and_update().clone(),
        entries: BTreeMap::new(),
        dir_digest: None,
        reported: BTreeMap::new(),
    };
    let now = s.now();
    s.reload(now).await;
    s.abandon_stale_runs(now).await;
    s.catch_up(now).await;
    Ok(tokio::spawn(async move {
        let mut every = tokio::time::interval(POLL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watching = true;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = live.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                        continue;
                    }
                    let next = live.borrow_and_update().clone();
                    s.apply(next);
                    let now = s.now();
                    s.reload(now).await;
                }
                _ = every.tick() => {
                    let now = s.now();
                    s.reload(now).await;
                    s.maintain(now).await;
                }
            }
        }
        s.stop().await;
    }))
}

impl Scheduler {
    /// The one place the scheduler reads the clock.
    fn now(&self) -> i64 {
        let clock = self
            .ctx
            .runner
            .read()
            .expect("runner poisoned")
            .clock
            .clone();
        clock.now_ms()
    }

    /// Installs a new settings version: runs started from now on use its
    /// providers and judges, and the next `reload` rescans every file (and
    /// logs every invalid one again) even if none changed, because validity
    /// depends on the models and judges.
    fn apply(&mut self, live: Arc<Live>) {
        tracing::info!(
            generation = live.generation,
            "new settings: rescanning suites"
        );
        self.ctx.runner.write().expect("runner poisoned").eval =
            crate::canary::expect::Evaluator::new(live.providers.clone(), &live.judges);
        self.live = live;
        self.dir_digest = None;
        self.reported.clear();
    }

    /// Re-reads the suites directory if any file in it changed.
    async fn reload(&mut self, now: i64) {
        let dir = self.live.config.canaries.clone();
        let digest = match dir_digest(&dir) {
            Ok(d) => d,
            Err(e) => {
                // An empty digest marks "unreadable", so the error is logged once.
                if self.dir_digest.replace(Vec::new()) != Some(Vec::new()) {
                    tracing::error!(dir = %dir.display(), "cannot read the canaries directory: {e}");
                }
                return;
            }
        };
        if self.dir_digest.as_ref() == Some(&digest) {
            return;
        }
        self.dir_digest = Some(digest);
        let judge_names = self.live.judge_names();
        let ctx = load::Context {
            models: Some(&self.live.config.models),
            judges: Some(&judge_names),
        };
        let loaded = load::load_dir(&dir, &ctx);
        self.report_errors(&loaded);
        let mut seen = BTreeSet::new();
        for suite in loaded.suites {
            seen.insert(suite.name.clone());
            self.upsert(suite, now).await;
        }
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(name, e)| {
                !seen.contains(*name) && !loaded.failed.contains(&e.slot.get().path)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(e) = self.entries.remove(&name) {
                if let Some((id, _)) = e.job {
                    self.remove_job(id).await;
                }
                tracing::info!(suite = %name, "suite removed; no longer scheduled");
            }
        }
    }

    /// Logs each invalid file once per distinct set of problems.
    fn report_errors(&mut self, loaded: &load::Loaded) {
        let mut now_failing = BTreeMap::new();
        for path in &loaded.failed {
            let msgs: Vec<String> = loaded
                .diagnostics
                .0
                .iter()
                .filter(|d| &d.path == path && d.is_error())
                .map(|d| d.to_string())
                .collect();
            now_failing.insert(path.clone(), msgs.join("\n"));
        }
        for (path, msgs) in &now_failing {
            if self.reported.get(path) != Some(msgs) {
                let kept = self
                    .entries
                    .values()
                    .map(|e| e.slot.get())
                    .find(|s| &s.path == path)
                    .map(|s| {
                        format!(
                            "; keeping version {} of suite `{}` running",
                            s.version, s.name
                        )
                    })
                    .unwrap_or_default();
                tracing::error!(path = %path.display(), "invalid suite file{kept}:\n{msgs}");
            }
        }
        self.reported = now_failing;
    }

    /// Adds a suite or installs its new version, rebuilding its job only
    /// when the schedule itself changed.
    async fn upsert(&mut self, suite: Suite, now: i64) {
        let key = job_key(&suite, now);
        let name = suite.name.clone();
        match self.entries.get(&name) {
            Some(e) => {
                let old = e.slot.get();
                if old.content_hash == suite.content_hash && old.path == suite.path {
                    return;
                }
                tracing::info!(suite = %name, version = suite.version, hash = %suite.content_hash, "suite changed on disk; new version active");
                *e.slot.suite.write().expect("suite slot poisoned") = Arc::new(suite);
                if e.job.as_ref().map(|(_, k)| k) != key.as_ref() {
                    self.reschedule(&name, key).await;
                }
            }
            None => {
                tracing::info!(suite = %name, version = suite.version, schedule = ?suite.schedule, "suite loaded");
                let slot = Arc::new(Slot {
                    suite: RwLock::new(Arc::new(suite)),
                    lock: Arc::new(tokio::sync::Mutex::new(())),
                });
                self.entries.insert(name.clone(), Entry { slot, job: None });
                self.reschedule(&name, key).await;
            }
        }
    }

    /// Replaces a suite's cron job (or removes it when `key` is `None`).
    async fn reschedule(&mut self, name: &str, key: Option<JobKey>) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        if let Some((id, _)) = entry.job.take() {
            let _ = self.sched.remove(&id).await;
        }
        let Some(key) = key else { return };
        let ctx = self.ctx.clone();
        let slot = entry.slot.clone();
        let job = Job::new_async_tz(
            key.cron.as_str(),
            ticks::zone(key.tz.as_deref()),
            move |_, _| {
                let ctx = ctx.clone();
                let slot = slot.clone();
                Box::pin(async move {
                    let tracker = ctx.tracker.clone();
                    if !tracker.is_closed() {
                        tracker
                            .track_future(fire(ctx, slot, RunTrigger::Schedule, None))
                            .await;
                    }
                })
            },
        );
        match job {
            Ok(job) => match self.sched.add(job).await {
                Ok(id) => entry.job = Some((id, key)),
                Err(e) => tracing::error!(suite = %name, "cannot schedule suite: {e}"),
            },
            Err(e) => {
                tracing::error!(suite = %name, cron = %key.cron, "cannot schedule suite: {e}")
            }
        }
    }

    async fn remove_job(&self, id: Uuid) {
        if let Err(e) = self.sched.remove(&id).await {
            tracing::warn!("cannot remove cron job: {e}");
        }
    }

    /// Rebuilds zoned jobs whose UTC offset changed and jobs that stopped ticking.
    async fn maintain(&mut self, now: i64) {
        let mut rebuild = Vec::new();
        for (name, e) in &self.entries {
            let Some((id, key)) = &e.job else { continue };
            let want = job_key(&e.slot.get(), now);
            if want.as_ref() != Some(key) {
                tracing::info!(suite = %name, "time zone offset changed; rebuilding its schedule");
                rebuild.push((name.clone(), want));
                continue;
            }
            let next = self.sched.clone().next_tick_for_job(*id).await;
            let stalled = match next {
                Ok(Some(t)) => t.timestamp_millis() < now - 5_000,
                Ok(None) | Err(_) => true,
            };
            if stalled {
                tracing::warn!(suite = %name, "cron job stopped ticking; rebuilding it");
                rebuild.push((name.clone(), want));
            }
        }
        for (name, key) in rebuild {
            self.reschedule(&name, key).await;
        }
    }

    /// Runs left `running` by a process that died are marked abandoned.
    async fn abandon_stale_runs(&self, now: i64) {
        let longest = self
            .entries
            .values()
            .map(|e| e.slot.get().timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS))
            .fold(DEFAULT_TIMEOUT_SECS, f64::max);
        let stale_before = now - ((longest + 60.0) * 1000.0) as i64;
        match self
            .ctx
            .runner()
            .store
            .abandon_stale_runs(stale_before, now)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "marked runs of a stopped process as abandoned"),
            Err(e) => tracing::error!("cannot clean up stale runs: {e}"),
        }
    }

    /// One catch-up run per suite whose latest tick passed while no replica ran.
    async fn catch_up(&self, now: i64) {
        for (name, e) in &self.entries {
            let suite = e.slot.get();
            let Some(cron) = suite.schedule.as_deref().and_then(|c| ticks::parse(c).ok()) else {
                continue;
            };
            let last = match self.ctx.runner().store.last_scheduled_tick(name).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(suite = %name, "cannot read the last run tick: {e}");
                    continue;
                }
            };
            let tz = ticks::zone(suite.timezone.as_deref());
            if let Some(tick) = ticks::catch_up_tick(&cron, tz, last, now) {
                tracing::info!(suite = %name, tick, last_tick = ?last, "missed tick during downtime: one catch-up run");
                let (ctx, slot) = (self.ctx.clone(), e.slot.clone());
                self.ctx
                    .tracker
                    .spawn(fire(ctx, slot, RunTrigger::Catchup, Some(tick)));
            }
        }
    }

    /// Stops firing, lets in-flight runs record their cancellation.
    async fn stop(mut self) {
        if let Err(e) = self.sched.shutdown().await {
            tracing::warn!("cron scheduler shutdown: {e}");
        }
        self.ctx.tracker.close();
        if tokio::time::timeout(Duration::from_secs(30), self.ctx.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("canary runs still in flight after 30s; stopping anyway");
        }
    }
}

/// Runs the suite in `slot` for `tick` (the tick just fired when `None`),
/// unless its previous run is still going.
async fn fire(ctx: Arc<FireCtx>, slot: Arc<Slot>, trigger: RunTrigger, tick: Option<i64>) {
    let suite = slot.get();
    let runner = ctx.runner();
    let tick = match tick {
        Some(t) => t,
        None => {
            let now = runner.clock.now_ms();
            let cron = suite.schedule.as_deref().and_then(|c| ticks::parse(c).ok());
            match cron
                .and_then(|c| ticks::previous_tick(&c, ticks::zone(suite.timezone.as_deref()), now))
            {
                Some(t) => t,
                None => return,
            }
        }
    };
    let Ok(_running) = slot.lock.clone().try_lock_owned() else {
        tracing::warn!(suite = %suite.name, tick, "previous run of this suite is still running; tick skipped");
        return;
    };
    // Replicas sharing a database: the unique tick stops two runs of one
    // tick, this lease stops a run of the next tick overlapping a slow one
    // elsewhere. It outlives the run's timeout, so a dead holder frees it.
    let store = &runner.store;
    let owner = &runner.owner;
    let lease = format!("canary-suite:{}", suite.name);
    let timeout = suite.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    let ttl_ms = ((timeout + 60.0) * 1000.0) as i64;
    match store
        .try_lease(&lease, owner, runner.clock.now_ms(), ttl_ms)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(suite = %suite.name, tick, "another replica is running this suite; tick skipped");
            return;
        }
        Err(e) => {
            tracing::error!(suite = %suite.name, tick, "cannot take the suite lease: {e}");
            return;
        }
    }
    let spec = RunSpec {
        suite: suite.clone(),
        only_targets: vec![],
        trigger,
        scheduled_for_ms: Some(tick),
        cancel: ctx.shutdown.child_token(),
    };
    match runner.run(&spec).await {
        Ok(Started::Ran(_)) => {}
        Ok(Started::TickTaken) => {
            tracing::debug!(suite = %suite.name, tick, "tick already run by another replica")
        }
        Err(e) => tracing::error!(suite = %suite.name, tick, "canary run failed: {e}"),
    }
    if let Err(e) = store.release_lease(&lease, owner).await {
        tracing::warn!(suite = %suite.name, "cannot release the suite lease: {e}");
    }
}

impl FireCtx {
    fn runner(&self) -> Runner {
        self.runner.read().expect("runner poisoned").clone()
    }
}

fn job_key(suite: &Suite, now: i64) -> Option<JobKey> {
    let cron = suite.schedule.clone()?;
    let tz = suite.timezone.clone();
    let offset = ticks::offset_secs(ticks::zone(tz.as_deref()), now);
    Some(JobKey { cron, tz, offset })
}

/// A digest of every suite file's name and content: any edit changes it.
fn dir_digest(dir: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut h = Sha256::new();
    for path in crate::yaml::yaml_files(dir)? {
        h.update(path.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&path).unwrap_or_default());
        h.update([0]);
    }
    Ok(h.finalize().to_vec())
}
