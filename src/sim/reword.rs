//! The quiet swap (`reword: <fraction>`): a model that answers the same
//! facts in a slightly different voice, the way a new fine-tune or
//! quantization behind an unchanged name does.
//!
//! With probability `fraction` each: an opener is put before the answer, a
//! closer after it, and each word of a small table of common words is
//! replaced by a synonym. Digits, capitalised words and every other word are
//! never touched, so `contains` checks on facts ("30 days", "Paris") keep
//! passing; `equals` and anchored regexes may not. Draws come from the
//! occurrence's own seed, so repeats are reworded differently (a changed
//! distribution, not one changed answer).

use super::rng::Rng;

const OPENERS: &[&str] = &[
    "Sure.",
    "Good question.",
    "Here is the short answer:",
    "Happy to help.",
    "In short:",
];

const CLOSERS: &[&str] = &[
    "Hope this helps.",
    "Let me know if anything is unclear.",
    "Feel free to ask a follow-up.",
];

/// (word, synonym): lower-case whole words only.
const SYNONYMS: &[(&str, &str)] = &[
    ("are", "get"),
    ("also", "as well"),
    ("can", "may"),
    ("must", "need to"),
    ("usually", "typically"),
    ("within", "inside"),
    ("after", "following"),
    ("before", "prior to"),
    ("about", "roughly"),
    ("helps", "assists"),
    ("improves", "enhances"),
    ("requires", "needs"),
    ("supports", "backs"),
    ("reduces", "lowers"),
    ("clarifies", "explains"),
    ("highlights", "stresses"),
    ("makes", "renders"),
    ("the", "this"),
];

/// `text` reworded with probability `fraction` per change, drawn from `seed`.
pub fn reword(text: &str, fraction: f64, seed: u64) -> String {
    if fraction <= 0.0 || text.is_empty() {
        return text.to_string();
    }
    let mut rng = Rng::new(seed ^ 0x5eed_4e30_0d00_0000);
    let mut out = String::with_capacity(text.len() + 48);
    if rng.unit() < fraction {
        out.push_str(rng.pick(OPENERS));
        out.push(' ');
    }
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let core = word.trim_end_matches(|c: char| c.is_ascii_punctuation());
        let tail = &word[core.len()..];
        match SYNONYMS.iter().find(|(w, _)| *w == core) {
            Some((_, s)) if rng.unit() < fraction => {
                out.push_str(s);
                out.push_str(tail);
            }
            _ => out.push_str(word),
        }
    }
    if rng.unit() < fraction {
        if !out.ends_with(['.', '!', '?']) {
            out.push('.');
        }
        out.push(' ');
        out.push_str(rng.pick(CLOSERS));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewording_keeps_facts_and_capitalised_words() {
        let a = "Refunds are accepted within 30 days of delivery in Paris.";
        for seed in 0..50 {
            let r = reword(a, 0.9, seed);
            assert!(
                r.contains("30 days") && r.contains("Refunds") && r.contains("Paris"),
                "{r}"
            );
        }
        assert_eq!(reword(a, 0.0, 1), a);
        let changed = (0..50).filter(|s| reword(a, 0.3, *s) != a).count();
        assert!(changed > 20 && changed < 50, "{changed}");
        assert_eq!(reword(a, 0.5, 7), reword(a, 0.5, 7));
    }
}
