//! The reloadable part of a running daemon: the config, the judges and the
//! provider clients built from them, swapped as one unit on SIGHUP.
//!
//! Subsystems never keep a copy across iterations: each loop reads
//! [`crate::app::App::live`] once per iteration and uses that snapshot to the
//! end of it, so one iteration never mixes two versions and the next one
//! sees the new version without any restart or re-subscription. The canary
//! scheduler additionally watches the channel, because a new version must
//! re-validate the suites against the new models and judges at once.
//!
//! A reload is all or nothing: the new config, every judge and every suite
//! must be valid (what `canaryd check` reports as errors), otherwise every
//! problem is logged and the running version stays. Settings bound to
//! resources opened at start (database, listen address, logging, the ingest
//! body limit) are compared and logged as applying at restart.

use std::path::Path;
use std::sync::Arc;

use crate::config::{self, Config, Diagnostics, Secret};
use crate::judge::Judge;
use crate::provider::Providers;

/// One version of the reloadable settings.
#[derive(Debug, Clone)]
pub struct Live {
    pub config: Arc<Config>,
    pub judges: Arc<Vec<Judge>>,
    pub providers: Providers,
    /// Bearer tokens of the ingest endpoints (`ingest.tokens`), read when loaded.
    pub ingest_tokens: Arc<Vec<Secret>>,
    /// Tokens for reading or changing state (`api.tokens`; see `http::auth`).
    pub api_tokens: Arc<Vec<Secret>>,
    /// Counts accepted reloads (0 at start), so watchers can tell versions apart.
    pub generation: u64,
}

/// Why a reload was refused.
#[derive(Debug)]
pub enum Rejected {
    Invalid(Diagnostics),
    /// A provider client or a secret (API key, ingest token) failed.
    Setup(String),
}

impl Live {
    /// The version a daemon starts with, and why the provider clients could
    /// not be built (then none are; the daemon refuses to start). Judges
    /// that fail validation are logged and left out, as the scheduler does
    /// with broken suites; `canaryd check` names them.
    pub fn initial(config: Config) -> (Live, Option<crate::provider::ProviderError>) {
        let judges = load_judges(&config);
        for d in judges.diagnostics.0.iter().filter(|d| d.is_error()) {
            tracing::error!("{d}");
        }
        let (providers, error) = match Providers::from_config(&config) {
            Ok(p) => (hooked(p), None),
            Err(e) => (Providers::default(), Some(e)),
        };
        let live = Live {
            providers,
            // An unreadable token stops `serve` (`IngestState::auth_error`).
            ingest_tokens: Arc::new(crate::ingest::resolve_tokens(&config).unwrap_or_default()),
            api_tokens: Arc::new(
                crate::http::auth::resolve_api_tokens(&config).unwrap_or_default(),
            ),
            judges: Arc::new(judges.judges),
            config: Arc::new(config),
            generation: 0,
        };
        (live, error)
    }

    /// Reads the config at `path` and the judges and suites it names, and
    /// returns the next version, or every reason it cannot be applied.
    pub fn reload(&self, path: &Path) -> Result<Live, Rejected> {
        let loaded = config::load(path).map_err(Rejected::Invalid)?;
        let config = loaded.config;
        let mut errors = config::validate(path, &config);
        let judges = load_judges(&config);
        errors.extend(judges.diagnostics.clone());
        let names = judges.names();
        // A missing directory means no suites; the scheduler logs it.
        if config.canaries.is_dir() {
            let suites = crate::canary::load::load_dir(
                &config.canaries,
                &crate::canary::load::Context {
                    config: Some(&config),
                    judges: Some(&names),
                },
            );
            errors.extend(suites.diagnostics);
        }
        errors.0.retain(|d| d.is_error());
        if !errors.0.is_empty() {
            return Err(Rejected::Invalid(errors));
        }
        let providers =
            Providers::from_config(&config).map_err(|e| Rejected::Setup(e.to_string()))?;
        let ingest_tokens = crate::ingest::resolve_tokens(&config).map_err(Rejected::Setup)?;
        let api_tokens = crate::http::auth::resolve_api_tokens(&config).map_err(Rejected::Setup)?;
        for field in restart_only_changes(&self.config, &config) {
            tracing::warn!(
                setting = field,
                "`{field}` changed in the config; it applies at restart"
            );
        }
        Ok(Live {
            config: Arc::new(config),
            judges: Arc::new(judges.judges),
            providers: hooked(providers),
            ingest_tokens: Arc::new(ingest_tokens),
            api_tokens: Arc::new(api_tokens),
            generation: self.generation + 1,
        })
    }

    /// The evaluator canary runs use for `judge` and `similar` expectations.
    pub fn evaluator(&self) -> crate::canary::expect::Evaluator {
        crate::canary::expect::Evaluator {
            providers: self.providers.clone(),
            judges: self
                .judges
                .iter()
                .map(|j| (j.name.clone(), j.clone()))
                .collect(),
        }
    }

    pub fn judge_names(&self) -> std::collections::BTreeSet<String> {
        self.judges.iter().map(|j| j.name.clone()).collect()
    }
}

/// A missing judges directory means no judges, not an error.
fn load_judges(config: &Config) -> crate::judge::load::Loaded {
    if config.judges.is_dir() {
        crate::judge::load::load_dir(&config.judges, Some(config))
    } else {
        Default::default()
    }
}

fn hooked(p: Providers) -> Providers {
    p.map(|p| p.with_attempt_hook(Arc::new(crate::telemetry::provider_attempt_failed)))
}

/// Top-level settings that differ and are only read at start. Compared by
/// their `Debug` form: secrets there are references (env, file), never values.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    if old.database != new.database {
        out.push("database");
    }
    if old.listen != new.listen {
        out.push("listen");
    }
    if differs(&old.log, &new.log) {
        out.push("log");
    }
    if old.ingest.max_body_bytes != new.ingest.max_body_bytes {
        out.push("ingest.max_body_bytes");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        config::from_str(Path::new("/x/canaryd.yaml"), text).unwrap()
    }

    #[test]
    fn restart_only_settings_are_named() {
        let a = cfg("listen: 127.0.0.1:1\ndetectors: { every_secs: 60 }\n");
        let b = cfg("listen: 127.0.0.1:2\ndetectors: { every_secs: 30 }\n");
        assert_eq!(restart_only_changes(&a, &b), vec!["listen"]);
        assert!(restart_only_changes(&a, &a).is_empty());
        let c = cfg("listen: 127.0.0.1:1\ningest: { max_body_bytes: 10 }\n");
        assert_eq!(restart_only_changes(&a, &c), vec!["ingest.max_body_bytes"]);
    }

    #[test]
    fn reload_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canaryd.yaml");
        let write = |p: &str, text: &str| {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("canaryd.yaml", "detectors: { every_secs: 60 }\n");
        let (start, err) = Live::initial(config::load(&path).unwrap().config);
        assert!(err.is_none());
        write("canaryd.yaml", "detectors: { every_secs: 5 }\n");
        let next = start.reload(&path).expect("valid");
        assert_eq!((next.generation, next.config.detectors.every_secs), (1, 5));
        // A broken judge file refuses the whole new version, naming the file.
        write("judges/bad.yaml", "name: [\n");
        match next.reload(&path) {
            Err(Rejected::Invalid(d)) => {
                assert!(
                    d.0.iter().any(|d| d.path.ends_with("judges/bad.yaml")),
                    "{d:?}"
                )
            }
            other => panic!("accepted a broken judge: {other:?}"),
        }
    }

    #[test]
    fn ingest_tokens_rotate_on_reload_and_an_unreadable_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canaryd.yaml");
        let token = dir.path().join("token");
        std::fs::write(
            &path,
            format!(
                "ingest: {{ tokens: [{{ file: \"{}\" }}] }}\n",
                token.display()
            ),
        )
        .unwrap();
        std::fs::write(&token, "first").unwrap();
        let (start, _) = Live::initial(config::load(&path).unwrap().config);
        let exposed = |l: &Live| {
            l.ingest_tokens
                .iter()
                .map(|t| t.expose().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(exposed(&start), ["first"]);
        std::fs::write(&token, "second").unwrap();
        let next = start.reload(&path).expect("valid");
        assert_eq!(exposed(&next), ["second"]);
        std::fs::remove_file(&token).unwrap();
        assert!(matches!(next.reload(&path), Err(Rejected::Setup(_))));
    }
}
