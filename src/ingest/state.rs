//! What the ingest endpoints need at hand: checking bearer tokens, and which
//! judges apply to a record. The tokens and judges themselves are reloadable
//! and live in `App::live`.

use crate::config::{Config, Secret};
use crate::judge::Judge;
use crate::store::ResponseRow;

/// Ingest state, built once at start.
#[derive(Debug, Default)]
pub struct IngestState {
    /// Set when a configured token could not be read at start: every request
    /// is then refused (fail closed) and `serve` refuses to start. A reload
    /// with an unreadable token is refused instead, keeping the old tokens.
    pub auth_error: Option<String>,
}

impl IngestState {
    /// Checks that the configured tokens can be read now.
    pub fn from_config(config: &Config) -> IngestState {
        IngestState {
            auth_error: resolve_tokens(config).err(),
        }
    }

    /// Checks an `Authorization` header value. Every configured token is
    /// compared in constant time, so timing tells nothing about which
    /// prefix matched.
    pub fn authorize(&self, tokens: &[Secret], header: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        if self.auth_error.is_some() {
            return false;
        }
        if tokens.is_empty() {
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
        for t in tokens {
            ok |= t.expose().as_bytes().ct_eq(given);
        }
        ok.into()
    }
}

/// Reads every configured ingest token; an unreadable or empty one is an error.
pub fn resolve_tokens(config: &Config) -> Result<Vec<Secret>, String> {
    let mut tokens = Vec::new();
    for (i, t) in config.ingest.tokens.iter().enumerate() {
        match t.resolve() {
            Ok(Some(s)) if !s.expose().is_empty() => tokens.push(s),
            Ok(_) => return Err(format!("ingest.tokens[{i}] is empty")),
            Err(e) => return Err(format!("ingest.tokens[{i}]: {e}")),
        }
    }
    Ok(tokens)
}

/// Names of the `judges` that apply to `row` (per their `applies_when`).
pub fn judges_for(judges: &[Judge], row: &ResponseRow) -> Vec<String> {
    judges
        .iter()
        .filter(|j| {
            !row.output.is_empty()
                && (!j.applies_when.has_context || row.context.is_some())
                && (!j.applies_when.has_input || row.input.is_some())
        })
        .map(|j| j.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_checked() {
        let s = IngestState::default();
        let t = [Secret::new("t0k3n"), Secret::new("other")];
        assert!(s.authorize(&t, Some("Bearer t0k3n")));
        assert!(s.authorize(&t, Some("Bearer other")));
        assert!(!s.authorize(&t, Some("Bearer t0k3")));
        assert!(!s.authorize(&t, Some("t0k3n")));
        assert!(!s.authorize(&t, None));
        assert!(s.authorize(&[], None), "no tokens: open");
        let broken = IngestState {
            auth_error: Some("x".into()),
        };
        assert!(!broken.authorize(&[], None), "fail closed");
    }
}
