//! What the ingest endpoints need at hand: the accepted bearer tokens and
//! the judges that decide which records get judge jobs.

use crate::config::{Config, Secret};
use crate::judge::Judge;
use crate::store::ResponseRow;

/// Ingest state, built once at start.
#[derive(Debug, Default)]
pub struct IngestState {
    tokens: Vec<Secret>,
    /// Set when a configured token could not be read: every request is then
    /// refused (fail closed) and `serve` refuses to start.
    pub auth_error: Option<String>,
    pub judges: Vec<Judge>,
}

impl IngestState {
    /// Reads the tokens now; loads the judges directory (a missing
    /// directory means no judges; invalid files are reported and skipped —
    /// `canaryd check` names them).
    pub fn from_config(config: &Config) -> IngestState {
        let mut tokens = Vec::new();
        let mut auth_error = None;
        for (i, t) in config.ingest.tokens.iter().enumerate() {
            match t.resolve() {
                Ok(Some(s)) if !s.expose().is_empty() => tokens.push(s),
                Ok(_) => auth_error = Some(format!("ingest.tokens[{i}] is empty")),
                Err(e) => auth_error = Some(format!("ingest.tokens[{i}]: {e}")),
            }
        }
        let judges = if config.judges.is_dir() {
            let loaded = crate::judge::load::load_dir(&config.judges, Some(config));
            for d in &loaded.diagnostics.0 {
                tracing::warn!("judge file: {d}");
            }
            loaded.judges
        } else {
            Vec::new()
        };
        IngestState {
            tokens,
            auth_error,
            judges,
        }
    }

    /// Checks an `Authorization` header value. Every configured token is
    /// compared in constant time, so timing tells nothing about which
    /// prefix matched.
    pub fn authorize(&self, header: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        if self.auth_error.is_some() {
            return false;
        }
        if self.tokens.is_empty() {
            return true;
        }
        let Some(given) = header.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        }) else {
            return false;
        };
        let given = given.trim().as_bytes();
        let mut ok = subtle::Choice::from(0u8);
        for t in &self.tokens {
            ok |= t.expose().as_bytes().ct_eq(given);
        }
        ok.into()
    }

    /// Names of the judges that apply to `row` (per their `applies_when`).
    pub fn judges_for(&self, row: &ResponseRow) -> Vec<String> {
        self.judges
            .iter()
            .filter(|j| {
                !row.output.is_empty()
                    && (!j.applies_when.has_context || row.context.is_some())
                    && (!j.applies_when.has_input || row.input.is_some())
            })
            .map(|j| j.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_checked() {
        let s = IngestState {
            tokens: vec![Secret::new("t0k3n"), Secret::new("other")],
            ..Default::default()
        };
        assert!(s.authorize(Some("Bearer t0k3n")));
        assert!(s.authorize(Some("Bearer other")));
        assert!(!s.authorize(Some("Bearer t0k3")));
        assert!(!s.authorize(Some("t0k3n")));
        assert!(!s.authorize(None));
        assert!(IngestState::default().authorize(None), "no tokens: open");
        let broken = IngestState {
            auth_error: Some("x".into()),
            ..Default::default()
        };
        assert!(!broken.authorize(None), "fail closed");
    }
}
