//! Does the live answer agree with the pinned one?
//!
//! Agreement is what tells a provider-side change from a flaky prompt: both
//! targets get the same request, so when the pinned snapshot still passes
//! and the live alias does not, the model moved. With expectations, agreeing
//! means the same verdict on every expectation; for free-text cases (no
//! expectations) it means similar answers.

use std::collections::BTreeSet;

use super::expect::{Status, Verdict};

/// Default minimum token Jaccard similarity for free-text agreement.
pub const DEFAULT_JACCARD: f64 = 0.5;
/// Default minimum embedding cosine for free-text agreement.
pub const DEFAULT_COSINE: f64 = 0.85;

/// Jaccard similarity of the lowercase word sets of two texts, in [0, 1].
/// Two empty answers are identical (1.0).
pub fn token_jaccard(a: &str, b: &str) -> f64 {
    let words = |s: &str| -> BTreeSet<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (wa, wb) = (words(a), words(b));
    if wa.is_empty() && wb.is_empty() {
        return 1.0;
    }
    let inter = wa.intersection(&wb).count() as f64;
    let union = wa.union(&wb).count() as f64;
    inter / union
}

/// Whether two verdict lists agree: same status for each expectation.
/// Lists containing an error are not comparable (`None`).
pub fn same_verdicts(a: &[Verdict], b: &[Verdict]) -> Option<bool> {
    if a.iter().chain(b).any(|v| v.status == Status::Error) {
        return None;
    }
    Some(a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.status == y.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(status: Status) -> Verdict {
        Verdict {
            kind: "contains".into(),
            status,
            reason: String::new(),
            score: None,
        }
    }

    #[test]
    fn jaccard_on_words_ignores_case_and_punctuation() {
        assert_eq!(token_jaccard("Thirty days.", "thirty DAYS"), 1.0);
        assert_eq!(token_jaccard("a b", "c d"), 0.0);
        assert!((token_jaccard("a b c", "a b d") - 0.5).abs() < 1e-9);
        assert_eq!(token_jaccard("", ""), 1.0);
    }

    #[test]
    fn verdict_agreement() {
        assert_eq!(
            same_verdicts(&[v(Status::Pass)], &[v(Status::Pass)]),
            Some(true)
        );
        assert_eq!(
            same_verdicts(&[v(Status::Pass)], &[v(Status::Fail)]),
            Some(false)
        );
        assert_eq!(same_verdicts(&[v(Status::Pass)], &[v(Status::Error)]), None);
    }
}
