//! Building and installing versions of the live settings ([`Live`]): the
//! first at start, the next on SIGHUP.
//!
//! A reload is all or nothing: the new config and every judge must be
//! valid (what `canaryd check` reports as errors), otherwise every problem
//! is logged and the running version stays. A broken suite file is logged
//! and does not block it: the scheduler keeps that suite's last good
//! version, so a rotated token still applies. Settings bound to
//! resources opened at start (database, listen address, logging, the ingest
//! body limit) are compared and logged as applying at restart.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::diag::Diagnostics;
use crate::live::{Live, Shared};
use crate::provider::Providers;

/// Why a reload was refused.
#[derive(Debug)]
pub enum Rejected {
    Invalid(Diagnostics),
    /// A provider client or a secret (API key, ingest token) failed.
    Setup(String),
}

/// The version a daemon starts with, and why the provider clients could
/// not be built (then none are; the daemon refuses to start). Judges that
/// fail validation are logged and left out, as the scheduler does with
/// broken suites; `canaryd check` names them.
pub fn initial(config: Config) -> (Live, Option<crate::provider::ProviderError>) {
    let judges = load_judges(&config);
    for d in judges.diagnostics.0.iter().filter(|d| d.is_error()) {
        tracing::error!("{d}");
    }
    let (providers, error) = match Providers::from_config(&config.providers, &config.models) {
        Ok(p) => (hooked(p), None),
        Err(e) => (Providers::default(), Some(e)),
    };
    let live = Live {
        providers,
        // An unreadable token stops `serve` (`run_until` checks it).
        ingest_tokens: Arc::new(config::ingest_tokens(&config).unwrap_or_default()),
        api_tokens: Arc::new(config::api_tokens(&config).unwrap_or_default()),
        judges: Arc::new(judges.judges),
        config: Arc::new(config),
        generation: 0,
    };
    (live, error)
}

/// Reads the config at `path` and the judges and suites it names, and
/// returns the version after `current`, or every reason it cannot be
/// applied.
pub fn next(current: &Live, path: &Path) -> Result<Live, Rejected> {
    let loaded = config::load(path).map_err(Rejected::Invalid)?;
    let config = loaded.config;
    let mut errors = config::validate(path, &config);
    let judges = load_judges(&config);
    errors.extend(judges.diagnostics.clone());
    let names = judges.names();
    // A missing directory means no suites; the scheduler logs it. A broken
    // suite file does not block the reload (token rotation, a new model):
    // the scheduler keeps that suite's last good version, as it does when
    // the file changes without a SIGHUP; the config itself stays all or
    // nothing.
    if config.canaries.is_dir() {
        let suites = crate::canary::load::load_dir(
            &config.canaries,
            &crate::canary::load::Context {
                models: Some(&config.models),
                judges: Some(&names),
            },
        );
        for d in suites.diagnostics.0.iter().filter(|d| d.is_error()) {
            tracing::error!("suite kept at its last good version: {d}");
        }
    }
    errors.0.retain(|d| d.is_error());
    if !errors.0.is_empty() {
        return Err(Rejected::Invalid(errors));
    }
    let providers = Providers::from_config(&config.providers, &config.models)
        .map_err(|e| Rejected::Setup(e.to_string()))?;
    let ingest_tokens = config::ingest_tokens(&config).map_err(Rejected::Setup)?;
    let api_tokens = config::api_tokens(&config).map_err(Rejected::Setup)?;
    for field in restart_only_changes(&current.config, &config) {
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
        generation: current.generation + 1,
    })
}

/// SIGHUP (`systemctl reload`): reads the config, judges and suites again
/// and, when all are valid, installs them as the next [`Live`] version that
/// every loop picks up at its next iteration (the scheduler at once). When
/// anything is invalid every problem is logged as `path:line:column` and the
/// running version continues. Without this handler SIGHUP's default action
/// would kill the daemon.
pub async fn watch_sighup(
    mut hup: tokio::signal::unix::Signal,
    config_path: std::path::PathBuf,
    live: Shared,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        crate::telemetry::systemd::reloading();
        let current = live.current();
        // Loading reads files and builds clients: keep it off the runtime.
        let path = config_path.clone();
        let result = tokio::task::spawn_blocking(move || next(&current, &path)).await;
        match result {
            Ok(Ok(next)) => {
                tracing::info!(
                    generation = next.generation,
                    judges = next.judges.len(),
                    "SIGHUP: configuration, judges and suites reloaded"
                );
                metrics::counter!("canaryd_reloads_total", "outcome" => "applied").increment(1);
                live.replace(next);
            }
            Ok(Err(rejected)) => {
                match &rejected {
                    Rejected::Invalid(d) => {
                        for d in &d.0 {
                            tracing::error!("reload rejected: {d}");
                        }
                    }
                    Rejected::Setup(e) => tracing::error!("reload rejected: {e}"),
                }
                metrics::counter!("canaryd_reloads_total", "outcome" => "rejected").increment(1);
                tracing::error!("SIGHUP: new configuration invalid; the running version continues");
            }
            Err(e) => tracing::error!("SIGHUP: reload task failed: {e}"),
        }
        crate::telemetry::systemd::ready();
    }
}

/// A missing judges directory means no judges, not an error.
fn load_judges(config: &Config) -> crate::judge::load::Loaded {
    if config.judges.is_dir() {
        crate::judge::load::load_dir(&config.judges, Some(&config.models))
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
        let (start, err) = initial(config::load(&path).unwrap().config);
        assert!(err.is_none());
        write("canaryd.yaml", "detectors: { every_secs: 5 }\n");
        let next = next(&start, &path).expect("valid");
        assert_eq!((next.generation, next.config.detectors.every_secs), (1, 5));
        // A broken judge file refuses the whole new version, naming the file.
        write("judges/bad.yaml", "name: [\n");
        match super::next(&next, &path) {
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
        let (start, _) = initial(config::load(&path).unwrap().config);
        let exposed = |l: &Live| {
            l.ingest_tokens
                .iter()
                .map(|t| t.expose().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(exposed(&start), ["first"]);
        std::fs::write(&token, "second").unwrap();
        let next = next(&start, &path).expect("valid");
        assert_eq!(exposed(&next), ["second"]);
        std::fs::remove_file(&token).unwrap();
        assert!(matches!(super::next(&next, &path), Err(Rejected::Setup(_))));
    }
}
