//! The current version of a reloadable value, as a subsystem sees it.
//!
//! The daemon holds the reloadable settings (`live::Shared`, which carries
//! the whole config); a subsystem below the config declares the view it
//! reads (a trait such as `ingest::Settings`) and takes a `Current` of it,
//! built by the daemon over the shared version. So the subsystem names
//! neither `live` nor `config`, and still reads one version per iteration
//! or request, swapped by SIGHUP without a restart.

use std::sync::Arc;

/// A function giving the version in force; read it once per iteration of a
/// loop (or once per request), so one iteration never mixes two versions.
pub struct Current<T: ?Sized>(Arc<dyn Fn() -> Arc<T> + Send + Sync>);

impl<T: ?Sized> Current<T> {
    pub fn new(read: impl Fn() -> Arc<T> + Send + Sync + 'static) -> Current<T> {
        Current(Arc::new(read))
    }

    /// The version in force now.
    pub fn current(&self) -> Arc<T> {
        (self.0)()
    }
}

impl<T: ?Sized> Clone for Current<T> {
    fn clone(&self) -> Self {
        Current(self.0.clone())
    }
}

impl<T: ?Sized> std::fmt::Debug for Current<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Current(..)")
    }
}
