//! The shared state of a running daemon, handed to every subsystem.

use std::sync::Arc;

use crate::config::Config;
use crate::store::Store;

/// Cheap to clone; every field is shared.
#[derive(Clone, Debug)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    /// Identifies this replica in leases and run ownership.
    pub instance_id: Arc<str>,
    /// Ingest tokens and loaded judges (see `ingest::IngestState`).
    pub ingest: Arc<crate::ingest::IngestState>,
    /// The group-commit writer every ingest request goes through.
    pub writer: crate::ingest::Writer,
}

impl App {
    /// Starts the ingest writer tasks: call inside the runtime.
    pub fn new(config: Config, store: Store) -> App {
        let ingest = Arc::new(crate::ingest::IngestState::from_config(&config));
        App {
            ingest,
            writer: crate::ingest::Writer::start(store.clone()),
            config: Arc::new(config),
            store,
            instance_id: instance_id().into(),
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
