//! What the ingest endpoints check on every request: the bearer token, and
//! which judges apply to a record. The tokens and judges themselves are
//! reloadable and come from the live settings; a token that cannot be read
//! stops `serve` at start and refuses a reload, so every running version
//! has readable tokens.

use crate::config::Secret;
use crate::judge::Judge;
use crate::store::ResponseRow;

/// Checks an `Authorization` header value against `tokens` (none
/// configured: open). Every configured token is compared in constant time,
/// so timing tells nothing about which prefix matched.
pub fn authorize(tokens: &[Secret], header: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
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
        let t = [Secret::new("t0k3n"), Secret::new("other")];
        assert!(authorize(&t, Some("Bearer t0k3n")));
        assert!(authorize(&t, Some("Bearer other")));
        assert!(!authorize(&t, Some("Bearer t0k3")));
        assert!(!authorize(&t, Some("t0k3n")));
        assert!(!authorize(&t, None));
        assert!(authorize(&[], None), "no tokens: open");
    }
}
