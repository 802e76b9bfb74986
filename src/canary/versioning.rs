//! "You changed the cases but not the version": compares each suite's
//! content hash with the last content stored for it.
//!
//! Results are grouped by (suite, version, content hash), so an unbumped
//! edit never mixes results; the warning exists because authors read
//! `version` as "the meaning of these cases" and a silent edit under the
//! same number makes dashboards compare different things.

use std::path::Path;

use super::load::Suite;
use crate::diag::{Diagnostic, Diagnostics};
use crate::store::Store;

/// Warnings for suites whose content changed while `version` did not.
/// Reads the database only if it already exists: `check` never creates one,
/// and an unreachable or unmigrated database yields no warnings.
pub async fn unbumped_versions(database_url: &str, suites: &[Suite]) -> Diagnostics {
    let mut d = Diagnostics::default();
    if suites.is_empty() || !database_exists(database_url) {
        return d;
    }
    let Ok(store) = Store::connect(database_url).await else {
        return d;
    };
    for s in suites {
        match store.latest_suite_version(&s.name).await {
            Ok(Some(last)) if last.version == s.version && last.content_hash != s.content_hash => {
                d.push(Diagnostic::warning(
                    &s.path,
                    0,
                    0,
                    format!(
                        "suite `{}` changed since version {} was last run but `version` was not bumped; \
                         bump it if the cases mean something different now",
                        s.name, s.version
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("cannot compare suite versions with the database: {e}");
                break;
            }
        }
    }
    store.close().await;
    d
}

/// A SQLite file must already be there; a server database is assumed to exist
/// (connecting never creates one).
fn database_exists(url: &str) -> bool {
    match url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Some(rest) => {
            let path = rest.split('?').next().unwrap_or("");
            !path.is_empty() && !path.starts_with(':') && Path::new(path).is_file()
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_existing_sqlite_files_count() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.db");
        let url = format!("sqlite://{}", f.display());
        assert!(!database_exists(&url));
        std::fs::write(&f, b"").unwrap();
        assert!(database_exists(&url));
        assert!(database_exists(&format!("{url}?mode=rwc")));
        assert!(!database_exists("sqlite::memory:"));
        assert!(database_exists("postgres://u@h/db"));
    }
}
