//! Refusal classifier: did the model decline the task?
//!
//! Phrase lists both miss and over-flag: they miss declines without a
//! first-person "I can't" ("this request violates the usage policy",
//! "outside what I can help with", "No.", "I'd rather not get into that")
//! and flag apologetic-but-helpful answers ("I'm so sorry to hear that —
//! here's how to reset it") and idioms ("I can't stress enough…"). So the
//! classifier reads structure instead (`cues.rs`): a decline cue — first
//! person, impersonal, policy, scope, terse, preference, filter notice,
//! redirect — that is
//! - aimed at the task (an action verb, not "I can't wait"),
//! - near the start of the answer ([`HEAD_CHARS`]; refusals lead),
//! - not inside a quotation or code (`text.rs`), and
//! - not followed by a pivot into substantial help ("…, but in general: …"
//!   with [`HELP_WORDS`] or more words), which makes it a partial answer.
//!
//! It runs on every ingested record, so it is bounded (it reads at most
//! `text::READ_CHARS` characters) and cheap (a dozen compiled regexes; the
//! per-record cost is in BENCHMARKS.md). [`classify`] says which cue fired.
//! Precision and recall on `tests/data/refusals.jsonl` (a tuning split and a
//! held-out split) are measured by `tests/it/ingest_refusal.rs` and reported in
//! ARCHITECTURE.md.

mod cues;
mod text;

pub use cues::Cue;

/// Characters from the start of the answer in which a decline must begin.
const HEAD_CHARS: usize = 300;
/// How far past the head a cue that starts in it may run.
const CUE_TAIL_CHARS: usize = 200;
/// Words of help after a pivot that turn a decline into a partial answer.
const HELP_WORDS: usize = 20;
/// Words after a turn to concrete help ("here's how…", "you can…") that do.
const CONCRETE_HELP_WORDS: usize = 10;

/// Why an answer was classified as a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub cue: Cue,
    /// The matched words (normalised: lower case, apostrophes folded).
    pub evidence: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: \"{}\"", self.cue.name(), self.evidence.trim())
    }
}

/// True when the answer declines the task instead of doing it.
pub fn is_refusal(text: &str) -> bool {
    classify(text).is_some()
}

/// True when the provider stopped the answer with its own filter:
/// `content_filter` (OpenAI, Azure), `refusal` (Anthropic), `safety`,
/// `prohibited_content`, `blocklist` (Gemini). The text of such an answer is
/// often empty or cut off, so its words cannot show the refusal.
pub fn stopped_by_filter(finish_reason: Option<&str>) -> bool {
    finish_reason.is_some_and(|f| {
        [
            "content_filter",
            "refusal",
            "safety",
            "prohibited_content",
            "blocklist",
            "spii",
        ]
        .iter()
        .any(|k| f.eq_ignore_ascii_case(k))
    })
}

/// The decline cue that makes `text` a refusal, if any.
pub fn classify(text: &str) -> Option<Refusal> {
    let t = text::prepare(text);
    let total_words = text::words(&t);
    if total_words == 0 {
        return None;
    }
    let head_end = t.char_indices().nth(HEAD_CHARS).map_or(t.len(), |(i, _)| i);
    // A cue must start in the head; it may run a little past it. (The
    // prepared text is ASCII, so byte and character offsets agree.)
    let search_end = t.len().min(head_end + CUE_TAIL_CHARS);
    let c = cues::cues();
    let idioms: Vec<_> = c
        .idiom
        .find_iter(&t[..head_end])
        .map(|m| m.range())
        .collect();
    let mut best: Option<(usize, usize, Cue)> = None;
    for (cue, re) in &c.decline {
        if cue.max_words().is_some_and(|max| total_words > max) {
            continue;
        }
        let found = re
            .find_iter(&t[..search_end])
            .take_while(|m| m.start() < head_end)
            .find(|m| {
                let overlaps_idiom = idioms
                    .iter()
                    .any(|r| r.start < m.end() && m.start() < r.end);
                !overlaps_idiom && (*cue != Cue::Policy || about_assistant(&t, m.start(), m.end()))
            });
        if let Some(m) = found
            && best.is_none_or(|(start, _, _)| m.start() < start)
        {
            best = Some((m.start(), m.end(), *cue));
        }
    }
    let (start, end, cue) = best?;
    // Partial compliance: a pivot after the decline, then real help.
    let rest = &t[end..];
    let helped = |re: &regex::Regex, min: usize| {
        re.find(rest)
            .is_some_and(|p| text::words(&rest[p.start()..]) >= min)
    };
    if helped(&c.pivot, HELP_WORDS) || helped(&c.concrete, CONCRETE_HELP_WORDS) {
        return None;
    }
    Some(Refusal {
        cue,
        evidence: t[start..end].to_string(),
    })
}

/// A policy citation counts only when its sentence is about the assistant's
/// own act ("…so I can't", "this request violates…"), not a rule for
/// customers ("the policy prohibits smoking near the entrance").
fn about_assistant(t: &str, start: usize, end: usize) -> bool {
    let from = t[..start].rfind(['.', '!', '?', '\n']).map_or(0, |i| i + 1);
    let to = t[end..]
        .find(['.', '!', '?', '\n'])
        .map_or(t.len(), |i| end + i);
    cues::policy_is_about_the_assistant(&t[from..to])
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

    #[test]
    fn the_cue_that_fired_is_named() {
        let r = classify("This request violates the acceptable use policy.").unwrap();
        assert_eq!(r.cue, Cue::Policy, "{r}");
        assert_eq!(classify("Nope.").unwrap().cue, Cue::Terse);
        assert_eq!(
            classify("That's outside the scope of what I can do here.")
                .unwrap()
                .cue,
            Cue::Scope
        );
        assert_eq!(
            classify("I'd rather not get into that.").unwrap().cue,
            Cue::Preference
        );
    }

    #[test]
    fn rules_for_customers_and_idioms_are_not_refusals() {
        for t in [
            "The policy prohibits smoking within 10 metres of the entrance.",
            "I can't stress enough how important backups are: here's a cron line.",
            "I refuse to believe you can't cook! Boil the pasta for 9 minutes.",
            "No problem!",
        ] {
            assert!(!is_refusal(t), "{t}");
        }
    }

    /// The misses and false positives reported against the phrase list.
    #[test]
    fn declines_without_i_cant_and_help_with_it() {
        for t in [
            "This request is inappropriate.",
            "Explaining that would be harmful, so no.",
            "That's outside what I'm permitted to discuss.",
            "No.",
            "Not something I can do.",
            "I'd rather not get into that.",
        ] {
            assert!(is_refusal(t), "{t}");
        }
        for t in [
            "I can't stress enough how much a backup helps: here's a cron line for it.",
            "I won't refuse — here's the query: SELECT 1;",
            "I'm sorry to hear that, here's how to reset it: hold the button for ten seconds.",
            "Refunds can't be issued after 30 days, but you can exchange the item.",
        ] {
            assert!(!is_refusal(t), "{t}");
        }
    }

    #[test]
    fn provider_filter_stops_are_refusals() {
        assert!(stopped_by_filter(Some("content_filter")));
        assert!(stopped_by_filter(Some("SAFETY")));
        assert!(!stopped_by_filter(Some("stop")));
        assert!(!stopped_by_filter(Some("length")));
        assert!(!stopped_by_filter(None));
    }

    #[test]
    fn a_decline_deep_in_a_long_answer_is_not_a_refusal() {
        let t = format!(
            "{} I can't help with that part.",
            "Here is the plan. ".repeat(40)
        );
        assert!(!is_refusal(&t));
    }
}
