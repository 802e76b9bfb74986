//! Which judges apply to a record. The judges are reloadable and come from
//! the live settings; bearer tokens are checked in front of every route by
//! `http::auth`.

use crate::judge::Judge;
use crate::store::ResponseRow;

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
