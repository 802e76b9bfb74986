//! The shared state of a running daemon, handed to every subsystem.

use std::sync::Arc;

use crate::config::Config;
use crate::live::Live;
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
    /// Token checking (see `ingest::IngestState`).
    pub ingest: Arc<crate::ingest::IngestState>,
    /// The current reloadable settings; SIGHUP sends a new version.
    pub live: Arc<tokio::sync::watch::Sender<Arc<Live>>>,
    /// The group-commit writer every ingest request goes through.
    pub writer: crate::ingest::Writer,
}

impl App {
    /// Builds the state with the initial [`Live`] version and starts the
    /// ingest writer tasks (call inside the runtime). Provider clients
    /// that cannot be built (a missing API key) are logged and left out;
    /// `daemon::run_until` refuses to start on the same error.
    pub fn new(config: Config, store: Store) -> App {
        let ingest = Arc::new(crate::ingest::IngestState::from_config(&config));
        let (live, error) = Live::initial(config.clone());
        if let Some(e) = error {
            tracing::error!("providers: {e}");
        }
        App {
            ingest,
            writer: crate::ingest::Writer::start(store.clone()),
            config: Arc::new(config),
            store,
            instance_id: instance_id().into(),
            live: Arc::new(tokio::sync::watch::Sender::new(Arc::new(live))),
        }
    }

    /// The current version of the reloadable settings: read it once per
    /// iteration of a loop, so one iteration never mixes two versions.
    pub fn live(&self) -> Arc<Live> {
        self.live.borrow().clone()
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
