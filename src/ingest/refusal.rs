//! Refusal classifier: did the model decline the task?
//!
//! Phrase lists alone flag apologetic-but-helpful answers ("I'm so sorry to
//! hear about the delay — I've refunded the fee"), which are common in
//! customer-facing bots (promptfoo's `is-refusal` has exactly that false
//! positive). So the classifier looks for a *first-person* inability or
//! unwillingness aimed at the task ("I can't help with", "I must decline",
//! "not something I can assist with", "as an AI, I cannot"), only near the
//! start of the answer (refusals lead; a long answer that mentions one in
//! passing is not one), and drops it when real help follows a pivot
//! ("…, but here is…", "instead, …"). Empathy ("sorry to hear", "sorry for
//! the inconvenience") and third-party rules ("refunds can't be issued",
//! "you can't return opened items") are not refusals.
//!
//! Measured on `tests/data/refusals.jsonl` by `tests/it/ingest_refusal.rs`
//! (figures in ARCHITECTURE.md).

use std::sync::OnceLock;

use regex::Regex;

/// Characters from the start of the answer in which a refusal must appear.
const HEAD_CHARS: usize = 280;
/// Words of help after a pivot that turn a refusal into a partial answer.
const HELP_WORDS: usize = 25;

struct Patterns {
    /// "I can't / I'm unable to / I won't … help|provide|…"
    inability: Regex,
    /// "I must decline", "I refuse", "I'd rather not", "I don't feel comfortable"
    declining: Regex,
    /// "not something I can help with", "outside what I can do", "a request I can't fulfil"
    impersonal: Regex,
    /// "as an AI (language model), I cannot …"
    as_an_ai: Regex,
    /// "violates our content policy", "goes against my guidelines"
    policy: Regex,
    /// "but here is …", "instead, …", "however, I can …"
    pivot: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let neg = r"(?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to|am not allowed to|'m not allowed to|am not permitted to|'m not permitted to|won't be able to|will not be able to|'m not going to|am not going to|am not in a position to|'m not in a position to|refuse to|must not|shouldn't|should not)";
        let action = r"(?:help|assist|provide|comply|do|fulfil|fulfill|answer|share|give|create|write|generate|continue|discuss|engage|proceed|complete|support|offer|produce|respond|talk|browse|make|disclose|reveal|go into)";
        let filler = r"(?:\s+(?:you|u|with|further|currently|really|directly|fully|personally|any|that|this))?";
        let re = |s: &str| Regex::new(s).expect("valid refusal pattern");
        Patterns {
            inability: re(&format!(r"\bi\s*{neg}{filler}\s+{action}\b(?:\s+but\b)?")),
            declining: re(
                r"\bi\s*(?:must|have to|need to|'ll have to|will have to)\s+(?:respectfully\s+)?(?:decline|refuse|refrain)\b|\bi\s+(?:refuse|decline)\b|\bi(?:'d| would) rather not\b|\bi\s*(?:don't|do not|'m not|am not)\s+(?:feel\s+)?comfortable\b|\bi'?m designed not to\b|\bi\s*(?:am|'m) not (?:allowed|permitted|able) to\b",
            ),
            impersonal: re(
                r"\bnot (?:something|a request|a task|anything) (?:that )?i(?:'m| am)? (?:can|could|able to|will)\b|\boutside (?:of )?(?:what|the scope of what) i can\b|\bbeyond what i can (?:help|do|assist)\b|\b(?:that|this) (?:is|'s) not something i\b",
            ),
            as_an_ai: re(
                r"\bas an ai(?: language model| assistant| model)?,? i(?:'m| am)? (?:can't|cannot|don't|do not|not|unable)\b",
            ),
            policy: re(
                r"\b(?:violates?|goes against|against|breach(?:es)?)\s+(?:my|our|the|openai's)\s+(?:\w+\s+)?(?:guidelines|policies|policy|rules|terms)\b",
            ),
            pivot: re(
                r"\b(?:but|however|instead|that said|though)\b[,:]?\s+(?:here(?:'s| is| are)|i can|i could|you can|you could|i'd be happy|i'm happy|let me|consider|try)\b|\bhere(?:'s| is| are)\b",
            ),
        }
    })
}

/// Lower case with typographic apostrophes folded, so one pattern covers
/// `can't`, `can’t` and `CAN'T`.
fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' | '\u{02bc}' | '`' => '\'',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// True when the answer declines the task instead of doing it.
pub fn is_refusal(text: &str) -> bool {
    let t = normalize(text.trim());
    if t.is_empty() {
        return false;
    }
    let head_end = t
        .char_indices()
        .nth(HEAD_CHARS)
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    let head = &t[..head_end];
    let p = patterns();
    let hit = [&p.inability, &p.declining, &p.impersonal, &p.as_an_ai]
        .iter()
        .filter_map(|r| r.find_iter(head).find(|m| !m.as_str().ends_with(" but")))
        .map(|m| m.end())
        .min();
    // A policy citation alone counts only in a short answer: long answers
    // quoting a policy are usually explaining it.
    let hit = hit.or_else(|| {
        p.policy
            .find(head)
            .filter(|_| t.split_whitespace().count() <= 40)
            .map(|m| m.end())
    });
    let Some(end) = hit else {
        return false;
    };
    // Partial compliance: a pivot after the refusal followed by real help.
    let rest = &t[end..];
    if let Some(m) = p.pivot.find(rest) {
        let help_words = rest[m.start()..].split_whitespace().count();
        if help_words >= HELP_WORDS {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varied_refusals() {
        for t in [
            "I'm sorry, but I can't help with that.",
            "I’m unable to assist with this request.",
            "As an AI language model, I cannot provide legal advice.",
            "That's not something I can help with.",
            "I must respectfully decline.",
            "I won't be able to help you with that.",
        ] {
            assert!(is_refusal(t), "{t}");
        }
    }

    #[test]
    fn apologetic_but_helpful_is_not_a_refusal() {
        for t in [
            "I'm so sorry to hear about the delay — I've refunded the fee",
            "Sorry for the inconvenience! Your replacement ships tomorrow.",
            "Unfortunately, refunds can't be issued after 30 days, but you can exchange it.",
            "I can't help but notice you asked about pricing: the Pro plan is $20.",
            "",
        ] {
            assert!(!is_refusal(t), "{t}");
        }
    }

    #[test]
    fn partial_answers_with_real_help_are_not_refusals() {
        let t = "I can't give a diagnosis, but here are some general steps many people find useful: \
                 drink water, rest for a day, take your temperature twice a day, and if the fever \
                 stays above 39 degrees for more than two days, see a doctor or call the nurse line.";
        assert!(!is_refusal(t));
        assert!(is_refusal(
            "I can't give a diagnosis, but here is a hotline."
        ));
    }
}
