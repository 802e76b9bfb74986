//! Secrets (API keys, webhook URLs, SMTP passwords).
//!
//! They never live in the YAML: the config names where to find them (an
//! environment variable, a file, or a systemd credential) and `Secret` keeps
//! the value out of `Debug`, `Display` and therefore out of every log line.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A secret value. Its `Debug` prints `Secret(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The only way to read the value; grep for it when auditing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a secret comes from. Exactly one source may be given; none means
/// "no secret" (fine for a loopback simulator).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Name of an environment variable holding the value.
    pub env: Option<String>,
    /// A file holding the value (relative paths are resolved against the config file).
    pub file: Option<PathBuf>,
    /// A systemd credential name, read from `$CREDENTIALS_DIRECTORY/<name>`.
    pub credential: Option<String>,
}

/// Why a secret could not be read. The message names the source, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set; export it or use a file/credential instead")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "credential {0} requested but $CREDENTIALS_DIRECTORY is not set (is the unit using LoadCredential=?)"
    )]
    NoCredentialsDirectory(String),
    #[error("only one of env, file and credential may be given for one secret")]
    Ambiguous,
}

impl SecretRef {
    pub fn is_empty(&self) -> bool {
        self.env.is_none() && self.file.is_none() && self.credential.is_none()
    }

    /// Resolves relative file paths against `base` (the config file's directory).
    pub fn rebase(&mut self, base: &Path) {
        if let Some(f) = &self.file
            && f.is_relative()
        {
            self.file = Some(base.join(f));
        }
    }

    /// Reads the secret now. `Ok(None)` when no source is configured.
    pub fn resolve(&self) -> Result<Option<Secret>, SecretError> {
        let sources = [
            self.env.is_some(),
            self.file.is_some(),
            self.credential.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(SecretError::Ambiguous);
        }
        if let Some(var) = &self.env {
            return std::env::var(var)
                .map(|v| Some(Secret(v)))
                .map_err(|_| SecretError::MissingEnv(var.clone()));
        }
        if let Some(path) = &self.file {
            return read_trimmed(path).map(Some);
        }
        if let Some(name) = &self.credential {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                .ok_or_else(|| SecretError::NoCredentialsDirectory(name.clone()))?;
            return read_trimmed(&Path::new(&dir).join(name)).map(Some);
        }
        Ok(None)
    }
}

fn read_trimmed(path: &Path) -> Result<Secret, SecretError> {
    std::fs::read_to_string(path)
        .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
        .map_err(|source| SecretError::File {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads every secret in `refs` (`field` names them in errors as
/// `field[i]`); an unreadable or empty one is an error, so a configured
/// credential is never silently dropped.
pub fn resolve_all(refs: &[SecretRef], field: &str) -> Result<Vec<Secret>, String> {
    let mut out = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        match r.resolve() {
            Ok(Some(s)) if !s.expose().is_empty() => out.push(s),
            Ok(_) => return Err(format!("{field}[{i}] is empty")),
            Err(e) => return Err(format!("{field}[{i}]: {e}")),
        }
    }
    Ok(out)
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

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("sk-live-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(!format!("{:?}", Some(s)).contains("very-secret"));
    }

    #[test]
    fn reads_file_and_credential() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "abc\n").unwrap();
        let mut r = SecretRef {
            file: Some("key".into()),
            ..Default::default()
        };
        r.rebase(dir.path());
        assert_eq!(r.resolve().unwrap().unwrap().expose(), "abc");
    }

    #[test]
    fn two_sources_are_rejected() {
        let r = SecretRef {
            env: Some("A".into()),
            file: Some("b".into()),
            credential: None,
        };
        assert!(matches!(r.resolve(), Err(SecretError::Ambiguous)));
    }
}
