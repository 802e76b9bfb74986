//! Loading and validating `canaryd.yaml`.

mod model;

use std::path::{Path, PathBuf};

// The building blocks below every settings section, re-exported for the
// callers above `config` (the CLI, the daemon, the tests).
use crate::diag::{Diagnostic, Diagnostics};
use crate::secret::{Secret, redact_url};
use crate::yaml;
pub use model::*;

/// Environment variable that overrides the `database` key.
pub const DATABASE_URL_ENV: &str = "CANARYD_DATABASE_URL";
/// Environment variable that overrides the `listen` key (containers).
pub const LISTEN_ENV: &str = "CANARYD_LISTEN";
/// Environment variable naming the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "CANARYD_CONFIG";

/// A validated config and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub path: PathBuf,
}

/// Which file to read: `--config`, else `$CANARYD_CONFIG`, else `./canaryd.yaml`.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("canaryd.yaml"),
    }
}

/// Reads, parses and validates the config file, resolving relative paths
/// against its directory and applying environment overrides.
pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::error(
            path,
            0,
            0,
            format!("cannot read config: {e} (pass --config or set {CONFIG_ENV})"),
        )
    })?;
    let config = from_str(path, &text)?;
    Ok(Loaded {
        config,
        path: path.to_path_buf(),
    })
}

/// Parses config text as if it were read from `path` (used by `load` and tests).
pub fn from_str(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let mut config: Config = yaml::parse_all(path, text)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    rebase(&mut config, &base);
    if let Ok(url) = std::env::var(DATABASE_URL_ENV)
        && !url.is_empty()
    {
        config.database = url;
    }
    let mut diags = Diagnostics::default();
    if let Ok(listen) = std::env::var(LISTEN_ENV)
        && !listen.is_empty()
    {
        match listen.parse() {
            Ok(addr) => config.listen = addr,
            Err(e) => diags.push(Diagnostic::error(
                path,
                0,
                0,
                format!("{LISTEN_ENV}={listen:?}: {e}"),
            )),
        }
    }
    diags.extend(validate(path, &config));
    diags.extend(ranges(path, &config));
    locate(&mut diags, text);
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(config)
}

fn rebase(config: &mut Config, base: &Path) {
    let join = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    join(&mut config.canaries);
    join(&mut config.judges);
    for provider in config.providers.values_mut() {
        if let Some(f) = provider.value.api_key_file.as_mut() {
            join(f);
        }
    }
    if let Some(rest) = config.database.strip_prefix("sqlite://")
        && !rest.starts_with('/')
        && !rest.starts_with(':')
        && !rest.is_empty()
    {
        config.database = format!("sqlite://{}", base.join(rest).display());
    }
    config.alerts.rebase(base);
    if let Some(hook) = config.sessions.hook.as_mut() {
        hook.secret.rebase(base);
    }
    for t in config
        .ingest
        .tokens
        .iter_mut()
        .chain(config.api.tokens.iter_mut())
    {
        t.rebase(base);
    }
}

/// Semantic checks that serde cannot express. Every problem is reported.
pub fn validate(path: &Path, config: &Config) -> Diagnostics {
    let mut d = Diagnostics::default();
    if !(config.database.starts_with("sqlite:")
        || config.database.starts_with("postgres://")
        || config.database.starts_with("postgresql://"))
    {
        d.push(Diagnostic::error(
            path,
            0,
            0,
            format!(
                "database must start with sqlite:// or postgres://, got {:?}",
                redact_url(&config.database)
            ),
        ));
    }
    for (name, provider) in &config.providers {
        let p = &provider.value;
        if let Some(key) = &p.api_key {
            d.push(Diagnostic::at(
                path,
                key,
                format!(
                    "provider {name}: API keys are not accepted in the YAML; use api_key_env, api_key_file or api_key_credential"
                ),
            ));
        }
        let sources = [
            p.api_key_env.is_some(),
            p.api_key_file.is_some(),
            p.api_key_credential.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            d.push(Diagnostic::at(
                path,
                provider,
                format!("provider {name}: give only one of api_key_env, api_key_file, api_key_credential"),
            ));
        }
        if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
            d.push(Diagnostic::at(
                path,
                provider,
                format!("provider {name}: base_url must be an http:// or https:// URL"),
            ));
        }
        if p.max_concurrency == 0 {
            d.push(Diagnostic::at(
                path,
                provider,
                format!("provider {name}: max_concurrency must be at least 1"),
            ));
        }
    }
    for (name, model) in &config.models {
        if !config.providers.contains_key(&model.value.provider) {
            let hint = yaml::hint(
                &model.value.provider,
                config.providers.keys().map(String::as_str),
            );
            d.push(Diagnostic::at(
                path,
                model,
                format!(
                    "model {name}: unknown provider `{}`{hint}",
                    model.value.provider
                ),
            ));
        }
    }
    d.extend(config.alerts.validate(path));
    d.extend(access(path, config));
    d
}

/// The access model's rules on the config (`http::auth`): an address other
/// than loopback needs a token unless `insecure_no_auth` says otherwise,
/// and a class left without tokens while another has some is closed.
fn access(path: &Path, config: &Config) -> Diagnostics {
    let mut d = Diagnostics::default();
    let (ingest, api) = (
        !config.ingest.tokens.is_empty(),
        !config.api.tokens.is_empty(),
    );
    if !ingest && !api && !config.listen.ip().is_loopback() && !config.insecure_no_auth {
        d.push(Diagnostic::error(
            path,
            0,
            0,
            format!(
                "listen {} is not a loopback address and no tokens are configured, so anyone who can reach it could read production content and silence alerts; \
add `api.tokens: [{{ env: CANARYD_API_TOKEN }}]` (status pages, API, metrics) and `ingest.tokens: [{{ env: CANARYD_INGEST_TOKEN }}]` (writing records), \
each also `{{ file: PATH }}` or `{{ credential: NAME }}`, or set `insecure_no_auth: true` to serve without authentication",
                config.listen
            ),
        ));
    }
    if ingest && !api {
        d.push(Diagnostic::warning(
            path,
            0,
            0,
            "ingest.tokens is set but api.tokens is not: the status pages, the alerts and status API and /metrics refuse every request until api.tokens is set",
        ));
    }
    if api && !ingest {
        d.push(Diagnostic::warning(
            path,
            0,
            0,
            "api.tokens is set but ingest.tokens is not: POST /v1/responses and /v1/traces refuse every request until ingest.tokens is set",
        ));
    }
    if config.insecure_no_auth && (ingest || api) {
        d.push(Diagnostic::warning(
            path,
            0,
            0,
            "insecure_no_auth has no effect while tokens are configured",
        ));
    }
    d
}

/// Values serde accepts but that make no sense (`judging.sample_rate: 7`),
/// each named by its key; `locate` adds the key's position.
fn ranges(path: &Path, c: &Config) -> Diagnostics {
    let mut d = Diagnostics::default();
    let mut bad = |key: String, found: String, expected: &str| {
        d.push(Diagnostic::error(
            path,
            0,
            0,
            format!("{key}: found {found}, expected {expected}"),
        ))
    };
    let j = &c.judging;
    let rate = |r: f64| (0.0..=1.0).contains(&r);
    if !rate(j.sample_rate) {
        bad(
            "judging.sample_rate".into(),
            j.sample_rate.to_string(),
            "a number from 0 to 1",
        );
    }
    for (name, s) in &j.streams {
        if let Some(r) = s.sample_rate.filter(|r| !rate(*r)) {
            bad(
                format!("judging.streams.{name}.sample_rate"),
                r.to_string(),
                "a number from 0 to 1",
            );
        }
    }
    let jd = &c.detectors.judge_drift;
    for (key, v) in [
        ("detectors.judge_drift.min_off_share", jd.min_off_share),
        (
            "detectors.judge_drift.healthy_off_share",
            jd.healthy_off_share,
        ),
    ] {
        if !(v > 0.0 && v < 1.0) {
            bad(
                key.into(),
                v.to_string(),
                "a number between 0 and 1 (exclusive)",
            );
        }
    }
    if jd.healthy_off_share >= jd.min_off_share && jd.min_off_share > 0.0 {
        bad(
            "detectors.judge_drift.healthy_off_share".into(),
            jd.healthy_off_share.to_string(),
            "less than detectors.judge_drift.min_off_share",
        );
    }
    let at_least = |v: i64, min: i64| v >= min;
    for (key, v, min) in [
        ("judging.floor_per_hour", j.floor_per_hour, 0),
        ("judging.cap_per_hour", j.cap_per_hour, 0),
        ("judging.daily_budget_tokens", j.daily_budget_tokens, 0),
        ("judging.max_attempts", j.max_attempts, 1),
        ("judging.concurrency", j.concurrency as i64, 1),
        ("judging.lease_secs", j.lease_secs as i64, 1),
        ("judging.max_content_bytes", j.max_content_bytes as i64, 1),
        ("ingest.max_body_bytes", c.ingest.max_body_bytes as i64, 1),
        ("ingest.max_records", c.ingest.max_records as i64, 1),
        (
            "ingest.max_in_flight_bytes",
            c.ingest.max_in_flight_bytes as i64,
            1,
        ),
    ] {
        if !at_least(v, min) {
            bad(key.into(), v.to_string(), &format!("at least {min}"));
        }
    }
    for (key, v) in [
        ("judging.daily_budget_usd", j.daily_budget_usd),
        ("judging.retry_backoff_secs", j.retry_backoff_secs),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bad(key.into(), v.to_string(), "a number of at least 0");
        }
    }
    d
}

/// Points diagnostics that know their key but not its place at the key:
/// `ranges`' `a.b.c: …`, and the alerts section's `alerts: channel NAME` /
/// `alerts: route N`, which would otherwise point at 1:1.
pub fn locate(diags: &mut Diagnostics, text: &str) {
    for d in diags.0.iter_mut().filter(|d| d.line == 0) {
        let keys: Vec<String> = if let Some(rest) = d.message.strip_prefix("alerts: channel ") {
            let name = rest.split([':', ' ']).next().unwrap_or("");
            vec!["alerts".into(), "channels".into(), name.into()]
        } else if d.message.starts_with("alerts: route") {
            vec!["alerts".into(), "routes".into()]
        } else if d.message.starts_with("alerts:") {
            vec!["alerts".into()]
        } else if d.message.starts_with("sessions.hook") {
            vec!["sessions".into(), "hook".into()]
        } else if let Some((key, _)) = d.message.split_once(": found ") {
            key.split('.').map(String::from).collect()
        } else {
            continue;
        };
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        if let Some((line, column)) = yaml::key_position(text, &keys) {
            (d.line, d.column) = (line, column);
        }
    }
}

/// The bearer tokens for writing records (`ingest.tokens`).
pub fn ingest_tokens(config: &Config) -> Result<Vec<Secret>, String> {
    crate::secret::resolve_all(&config.ingest.tokens, "ingest.tokens")
}

/// The bearer tokens for reading or changing state (`api.tokens`).
pub fn api_tokens(config: &Config) -> Result<Vec<Secret>, String> {
    crate::secret::resolve_all(&config.api.tokens, "api.tokens")
}

/// The alert settings with the top-level `base_url` as the fallback for links.
pub fn alert_settings(config: &Config) -> crate::alert::AlertsConfig {
    let mut cfg = config.alerts.clone();
    if cfg.base_url.is_none() {
        cfg.base_url = config.base_url.clone();
    }
    cfg.hook = config.sessions.hook.clone();
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
database: sqlite://canaryd.db
listen: 127.0.0.1:8080
canaries: ./canaries
judges: ./judges
providers:
  openai: { base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY }
models:
  pinned:   { provider: openai, model: gpt-4o-2024-08-06 }
  live:     { provider: openai, model: gpt-4o }
  judge:    { provider: openai, model: gpt-4o-mini }
  embedder: { provider: openai, model: text-embedding-3-small }
"#;

    #[test]
    fn contract_example_parses_and_paths_are_relative_to_file() {
        let c = from_str(Path::new("/etc/canaryd/canaryd.yaml"), EXAMPLE).unwrap();
        assert_eq!(c.canaries, Path::new("/etc/canaryd/./canaries"));
        assert_eq!(c.database, "sqlite:///etc/canaryd/canaryd.db");
        assert_eq!(c.models["live"].value.model, "gpt-4o");
    }

    #[test]
    fn literal_api_key_is_an_error() {
        let text = "providers:\n  openai:\n    base_url: http://x\n    api_key: sk-123\n";
        let e = from_str(Path::new("c.yaml"), text).unwrap_err();
        assert!(e.to_string().contains("not accepted in the YAML"), "{e}");
        assert!(!e.to_string().contains("sk-123"));
    }

    #[test]
    fn unknown_provider_is_reported_with_hint() {
        let text = "providers:\n  openai: { base_url: http://x }\nmodels:\n  a: { provider: opneai, model: m }\n";
        let e = from_str(Path::new("c.yaml"), text).unwrap_err();
        assert!(e.to_string().contains("did you mean `openai`"), "{e}");
        assert!(e.to_string().starts_with("c.yaml:4:"), "{e}");
    }

    #[test]
    fn redacts_password() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
