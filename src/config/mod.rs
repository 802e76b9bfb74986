//! Loading and validating `canaryd.yaml`.

pub mod diag;
mod model;
pub mod secret;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use model::*;
pub use secret::{Secret, SecretError, SecretRef, ingest_tokens};

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
    let mut config: Config = yaml::parse(path, text)?;
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
    d
}

/// Hides a password in a database URL so it can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
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
