//! The reloadable part of a running daemon, as data: the config, the judges
//! and the provider clients built from them, swapped as one unit on SIGHUP
//! (`daemon::reload` builds and installs the versions).
//!
//! Subsystems never keep a copy across iterations: each loop reads
//! [`Shared::current`] once per iteration and uses that snapshot to the end
//! of it, so one iteration never mixes two versions and the next one sees
//! the new version without any restart or re-subscription. The canary
//! scheduler additionally watches the channel ([`Shared::subscribe`]),
//! because a new version must re-validate the suites against the new
//! models and judges at once.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::Config;
use crate::current::Current;
use crate::judge::Judge;
use crate::provider::Providers;
use crate::secret::Secret;

/// One version of the reloadable settings.
#[derive(Debug, Clone)]
pub struct Live {
    pub config: Arc<Config>,
    pub judges: Arc<Vec<Judge>>,
    pub providers: Providers,
    /// Bearer tokens for writing records (`ingest.tokens`), read when loaded.
    pub ingest_tokens: Arc<Vec<Secret>>,
    /// Tokens for reading or changing state (`api.tokens`; see `http::auth`).
    pub api_tokens: Arc<Vec<Secret>>,
    /// Counts accepted reloads (0 at start), so watchers can tell versions apart.
    pub generation: u64,
}

impl Live {
    pub fn judge_names(&self) -> BTreeSet<String> {
        self.judges.iter().map(|j| j.name.clone()).collect()
    }
}

/// The current version, shared by every subsystem of one daemon. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Shared(Arc<tokio::sync::watch::Sender<Arc<Live>>>);

impl Shared {
    pub fn new(first: Live) -> Shared {
        Shared(Arc::new(tokio::sync::watch::Sender::new(Arc::new(first))))
    }

    /// The current version: read it once per iteration of a loop, so one
    /// iteration never mixes two versions.
    pub fn current(&self) -> Arc<Live> {
        self.0.borrow().clone()
    }

    /// Follows new versions as they are installed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Live>> {
        self.0.subscribe()
    }

    /// The current version as one subsystem's view of it (a trait that
    /// [`Live`] implements, such as `ingest::Settings`).
    pub fn view<T: ?Sized + 'static>(&self, as_view: fn(Arc<Live>) -> Arc<T>) -> Current<T> {
        let shared = self.clone();
        Current::new(move || as_view(shared.current()))
    }

    /// Installs the next version.
    pub fn replace(&self, next: Live) {
        self.0.send_replace(Arc::new(next));
    }
}

/// The view of the ingest handlers.
impl crate::ingest::Settings for Live {
    fn ingest(&self) -> &crate::ingest::IngestConfig {
        &self.config.ingest
    }
    fn judging(&self) -> &crate::judge::JudgingConfig {
        &self.config.judging
    }
    fn judges(&self) -> &[Judge] {
        &self.judges
    }
    fn prices(&self) -> crate::sessions::cost::Prices {
        crate::sessions::cost::Prices::from_config(&self.config.models, &self.config.prices)
    }
}

/// The view of the daemon's own endpoints and the access check.
impl crate::http::Settings for Live {
    fn ingest_tokens(&self) -> &[Secret] {
        &self.ingest_tokens
    }
    fn api_tokens(&self) -> &[Secret] {
        &self.api_tokens
    }
    fn api(&self) -> &crate::http::auth::ApiConfig {
        &self.config.api
    }
    fn base_url(&self) -> Option<&str> {
        self.config.base_url.as_deref()
    }
    fn detectors(&self) -> &crate::signals::DetectorConfig {
        &self.config.detectors
    }
}

/// The view of the judge worker.
impl crate::judge::worker::Settings for Live {
    fn judging(&self) -> &crate::judge::JudgingConfig {
        &self.config.judging
    }
    fn judges(&self) -> &[Judge] {
        &self.judges
    }
    fn providers(&self) -> &Providers {
        &self.providers
    }
}
