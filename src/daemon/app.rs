//! The state of a running daemon, and the narrow context each subsystem
//! takes from it (axum's `FromRef` substates): subsystems declare what they
//! need and never name [`App`].

use std::sync::Arc;

use axum::extract::FromRef;

use crate::clock::Clock;
use crate::config::Config;
use crate::live::Shared;
use crate::store::Store;

/// Cheap to clone; every field is shared.
#[derive(Clone, Debug)]
pub struct App {
    /// The config the daemon started with. Settings that can change while it
    /// runs are read from [`App::live`] instead.
    pub config: Arc<Config>,
    pub store: Store,
    /// Identifies this replica in leases and run ownership.
    pub instance_id: Arc<str>,
    /// The current reloadable settings; SIGHUP installs a new version.
    pub live: Shared,
    /// The group-commit writer every ingest request goes through.
    pub writer: crate::ingest::Writer,
    /// The one clock every subsystem reads `now` from.
    pub clock: Clock,
}

impl App {
    /// Builds the state with the initial live version and starts the ingest
    /// writer tasks (call inside the runtime). Provider clients that cannot
    /// be built (a missing API key) are logged and left out; `run_until`
    /// refuses to start on the same error.
    pub fn new(config: Config, store: Store, clock: Clock) -> App {
        let (live, error) = super::reload::initial(config.clone());
        if let Some(e) = error {
            tracing::error!("providers: {e}");
        }
        App {
            writer: crate::ingest::Writer::start(store.clone()),
            config: Arc::new(config),
            store,
            instance_id: instance_id().into(),
            live: Shared::new(live),
            clock,
        }
    }
}

impl FromRef<App> for crate::ingest::Ctx {
    fn from_ref(app: &App) -> Self {
        crate::ingest::Ctx {
            live: app.live.view(|l| l as Arc<dyn crate::ingest::Settings>),
            writer: app.writer.clone(),
            clock: app.clock.clone(),
            store: app.store.clone(),
        }
    }
}

impl FromRef<App> for crate::http::Ctx {
    fn from_ref(app: &App) -> Self {
        crate::http::Ctx {
            store: app.store.clone(),
            live: app.live.view(|l| l as Arc<dyn crate::http::Settings>),
            clock: app.clock.clone(),
        }
    }
}

impl FromRef<App> for crate::web::Ctx {
    fn from_ref(app: &App) -> Self {
        crate::web::Ctx {
            store: app.store.clone(),
            live: app.live.clone(),
            clock: app.clock.clone(),
        }
    }
}

impl FromRef<App> for crate::judge::worker::Ctx {
    fn from_ref(app: &App) -> Self {
        crate::judge::worker::Ctx {
            store: app.store.clone(),
            owner: app.instance_id.clone(),
            live: app
                .live
                .view(|l| l as Arc<dyn crate::judge::worker::Settings>),
            clock: app.clock.clone(),
        }
    }
}

/// `hostname:pid:random`, unique per process even when replicas share a host.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
