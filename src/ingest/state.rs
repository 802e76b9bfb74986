//! What the ingest endpoints need at hand: checking bearer tokens, and which
//! judges apply to a record. The tokens and judges themselves are reloadable
//! and live in `App::live`.

use crate::config::{Config, Secret};
use crate::judge::Judge;
use crate::store::ResponseRow;

/// Ingest state, built once at start.
#[derive(Debug, Default)]
pub struct IngestState {
    /// Set when a configured token (ingest or API) could not be read at
    /// start: `serve` then refuses to start. A reload
    /// with an unreadable token is refused instead, keeping the old tokens.
    pub auth_error: Option<String>,
}

impl IngestState {
    /// Checks that the configured tokens can be read now.
    pub fn from_config(config: &Config) -> IngestState {
        let api = crate::http::auth::resolve_api_tokens(config).map(|_| ());
        IngestState {
            auth_error: resolve_tokens(config).and(api).err(),
        }
    }
}

/// Reads every configured ingest token; an unreadable or empty one is an error.
pub fn resolve_tokens(config: &Config) -> Result<Vec<Secret>, String> {
    crate::http::auth::resolve_list("ingest.tokens", &config.ingest.tokens)
}

/// Names of the `judges` that apply to `row` (per their `applies_when`),
/// leaving out those whose score came with the record: judging it again
/// would pay for a score the store already has.
pub fn judges_for(judges: &[Judge], row: &ResponseRow) -> Vec<String> {
    judges
        .iter()
        .filter(|j| {
            !row.output.is_empty()
                && !row.scores.iter().any(|(name, _)| *name == j.name)
                && (!j.applies_when.has_context || row.context.is_some())
                && (!j.applies_when.has_input || row.input.is_some())
        })
        .map(|j| j.name.clone())
        .collect()
}
