//! Fluent filler text for questions without context or scripted answer.

use super::behave::cut_at_word;
use super::rng::Rng;
use super::scenario::Voice;
use super::text;

struct Vocabulary {
    openers: &'static [&'static str],
    subjects: &'static [&'static str],
    verbs: &'static [&'static str],
    objects: &'static [&'static str],
    tails: &'static [&'static str],
}

const FORMAL: Vocabulary = Vocabulary {
    openers: &[
        "Regarding",
        "With respect to",
        "On the question of",
        "Concerning",
    ],
    subjects: &[
        "The recommended approach",
        "A careful review",
        "The underlying process",
        "This configuration",
        "The documented procedure",
        "A structured plan",
        "The standard practice",
        "An incremental change",
    ],
    verbs: &[
        "improves",
        "supports",
        "clarifies",
        "requires",
        "reduces",
        "strengthens",
        "depends on",
        "highlights",
    ],
    objects: &[
        "the overall reliability",
        "a consistent outcome",
        "the key requirements",
        "long-term maintainability",
        "the expected behaviour",
        "clear responsibilities",
        "measurable progress",
        "the relevant constraints",
    ],
    tails: &[
        "in most situations",
        "over time",
        "when applied consistently",
        "for everyday use",
        "across the organisation",
        "under normal conditions",
        "as a general rule",
        "according to established guidance",
    ],
};

const CASUAL: Vocabulary = Vocabulary {
    openers: &["So, about", "Okay, for", "Quick take on", "Honestly, with"],
    subjects: &[
        "The easiest fix",
        "Your best bet",
        "Most folks",
        "A quick tweak",
        "The trick",
        "This hack",
        "A simple setup",
        "The cool part",
    ],
    verbs: &[
        "totally helps",
        "kinda needs",
        "makes",
        "boosts",
        "skips",
        "nails",
        "gets you",
        "beats",
    ],
    objects: &[
        "way fewer headaches",
        "a pretty solid result",
        "the fun stuff",
        "super quick wins",
        "a nice little boost",
        "the whole thing",
        "stuff that just works",
        "good vibes",
    ],
    tails: &[
        "pretty much always",
        "no worries",
        "if you ask me",
        "for sure",
        "most days",
        "right away",
        "give or take",
        "at the end of the day",
    ],
};

/// Fluent filler of about `target` tokens about the question's topic.
pub(super) fn filler(question: &str, voice: Voice, target: u32, rng: &mut Rng) -> String {
    let v = match voice {
        Voice::Formal => &FORMAL,
        Voice::Casual => &CASUAL,
    };
    let topic: Vec<String> = text::words(question)
        .filter(|w| !text::is_stopword(w))
        .take(4)
        .collect();
    let mut out = String::new();
    if !topic.is_empty() {
        out.push_str(&format!(
            "{} {}, {} {} {} {}.",
            rng.pick(v.openers),
            topic.join(" "),
            lower_first(rng.pick(v.subjects)),
            rng.pick(v.verbs),
            rng.pick(v.objects),
            rng.pick(v.tails)
        ));
    }
    while text::token_estimate(&out) < u64::from(target) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!(
            "{} {} {} {}.",
            rng.pick(v.subjects),
            rng.pick(v.verbs),
            rng.pick(v.objects),
            rng.pick(v.tails)
        ));
    }
    // Whole sentences overshoot; end the last one early to hit the target.
    let limit = target as usize * 4;
    if out.len() > limit + 8 {
        out = cut_at_word(&out, limit);
        out.push('.');
    }
    out
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}
