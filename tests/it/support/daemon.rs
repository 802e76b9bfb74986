//! `canaryd serve` as a user runs it: the real binary in a project
//! directory, on the random port its config asks for (`listen:
//! 127.0.0.1:0`), optionally on a test database, killed on drop.

use std::ops::{Deref, DerefMut};
use std::path::Path;

use super::Spawned;

/// A running `canaryd serve`; derefs to the [`Spawned`] process (its
/// `base_url`, `stderr()`, `signal()`, `wait_exit()`).
pub struct TestDaemon {
    proc: Spawned,
}

impl TestDaemon {
    /// Starts `canaryd serve` in `dir` (its `canaryd.yaml`, unless `args`
    /// name another config) and waits until it listens.
    pub fn start(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> TestDaemon {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        TestDaemon {
            proc: Spawned::start(&all, dir, envs),
        }
    }

    /// [`TestDaemon::start`] on the database at `db_url`
    /// (`CANARYD_DATABASE_URL` overrides the config's `database`).
    pub fn on_db(dir: &Path, db_url: &str) -> TestDaemon {
        TestDaemon::start(dir, &[], &[("CANARYD_DATABASE_URL", db_url)])
    }

    /// `http://host:port` of the daemon.
    pub fn url(&self) -> &str {
        &self.proc.base_url
    }
}

impl Deref for TestDaemon {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.proc
    }
}

impl DerefMut for TestDaemon {
    fn deref_mut(&mut self) -> &mut Spawned {
        &mut self.proc
    }
}
