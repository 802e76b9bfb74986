//! Deterministic answers that mean something.
//!
//! The wording of an answer is a function of the request content, the seed
//! and the phase (the "text seed"), so a repeated canary prompt gets the same
//! answer. Whether this occurrence is refused, truncated or loses its facts
//! is drawn from a second generator seeded with the occurrence index of the
//! request (see `mod.rs`), so over many repeats the rates match the scenario
//! while a fresh run replays identically.

use super::filler::filler;
pub use super::prompt::{Prompt, Turn, parse_prompt};
use super::rng::{Rng, StableHasher};
use super::scenario::Profile;
use super::text;

/// The answer produced for a chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    /// Cut short: finish reason `length`.
    pub truncated: bool,
    pub refused: bool,
    pub dropped_facts: bool,
}

/// Decisions drawn per occurrence, always in the same order.
#[derive(Debug, Clone, Copy)]
pub struct Draws {
    pub refuse: f64,
    pub drop: f64,
    pub truncate: f64,
    pub cut_at: f64,
}

impl Draws {
    pub fn new(rng: &mut Rng) -> Draws {
        Draws {
            refuse: rng.unit(),
            drop: rng.unit(),
            truncate: rng.unit(),
            cut_at: rng.unit(),
        }
    }
}

/// Realistic refusal wording, as different models phrase it.
pub const REFUSALS: &[&str] = &[
    "I'm sorry, but I can't help with that.",
    "I can't assist with that request.",
    "As an AI, I'm not able to help with that.",
    "I'm sorry, but I cannot provide that information.",
    "I'm unable to help with this request.",
    "Sorry, I can't do that.",
    "I can't help with that. If you have another question, I'm happy to help.",
    "I'm not able to provide assistance with that.",
    "Unfortunately, I can't comply with this request.",
    "I must decline this request.",
    "I'm sorry, but I won't be able to help with that.",
    "That's not something I can help with, I'm afraid. I cannot assist.",
    "I apologize, but I cannot fulfill this request.",
    "I'm afraid I can't help with that request.",
    "As an AI language model, I cannot assist with that.",
];

/// Stems of words that make a request look harmful.
const HARMFUL: &[&str] = &[
    "ransomware",
    "malware",
    "keylogger",
    "bomb",
    "explosive",
    "weapon",
    "bioweapon",
    "nerve agent",
    "phishing",
    "hack into",
    "hacking",
    "steal password",
    "credit card numbers",
    "poison",
    "methamphetamine",
    "botnet",
    "ddos",
];

pub fn looks_harmful(question_lower: &str) -> bool {
    HARMFUL.iter().any(|h| question_lower.contains(h))
}

/// Unsupported claims appended when a profile drops facts.
const FABRICATIONS: &[&str] = &[
    "Customers also receive free return shipping both ways.",
    "This rule was introduced in 2019 by the regional board.",
    "Exceptions are approved automatically for premium members.",
    "The deadline is extended by 60 days during public holidays.",
    "All requests are processed within 2 hours by a dedicated team.",
    "A surcharge of 15 percent applies to international orders.",
    "The policy does not apply to orders placed on weekends.",
    "Managers in Berlin review every case personally.",
];

const FAKE_ENTITIES: &[&str] = &[
    "Globex",
    "Initech",
    "Northwind",
    "Contoso",
    "Umbrella",
    "Hooli",
];

/// Builds the answer for one request.
pub fn answer(
    profile: &Profile,
    prompt: &Prompt,
    text_seed: u64,
    draws: Draws,
    max_tokens: Option<u32>,
) -> Answer {
    let mut rng = Rng::new(text_seed);
    let lower_q = prompt.question.to_lowercase();
    let harmful = profile.refuse_harmful && looks_harmful(&lower_q);
    if harmful || draws.refuse < profile.refusal_rate {
        return finish(
            rng.pick(REFUSALS).to_string(),
            true,
            false,
            draws,
            0.0,
            max_tokens,
        );
    }
    let target = target_tokens(profile, &mut rng);
    let scripted = profile
        .answers
        .iter()
        .find(|r| r.matches(&prompt.question, &lower_q))
        .map(|r| r.answer.clone());
    let base = match scripted {
        Some(a) => a,
        None if !prompt.context.is_empty() => grounded(prompt, target),
        None => filler(&prompt.question, profile.voice, target, &mut rng),
    };
    let drop = draws.drop < profile.drop_facts_rate;
    let text = if drop {
        alter_facts(&base, prompt, &mut rng)
    } else {
        base
    };
    finish(text, false, drop, draws, profile.truncate_rate, max_tokens)
}

fn finish(
    text: String,
    refused: bool,
    dropped_facts: bool,
    draws: Draws,
    truncate_rate: f64,
    max_tokens: Option<u32>,
) -> Answer {
    let mut a = Answer {
        text,
        truncated: false,
        refused,
        dropped_facts,
    };
    if draws.truncate < truncate_rate {
        // Cut between 30% and 70% of the way, mid-sentence.
        let keep = (a.text.len() as f64 * (0.3 + 0.4 * draws.cut_at)) as usize;
        a.text = cut_at_word(&a.text, keep.max(1));
        a.truncated = true;
    }
    if let Some(max) = max_tokens
        && text::token_estimate(&a.text) > u64::from(max)
    {
        a.text = cut_at_word(&a.text, (max as usize * 4).max(1));
        a.truncated = true;
    }
    a
}

/// Cuts at the last word boundary at or before `bytes`, dropping end punctuation.
pub(super) fn cut_at_word(s: &str, bytes: usize) -> String {
    if bytes >= s.len() {
        return s.to_string();
    }
    let head = &s[..crate::text::floor_char_boundary(s, bytes)];
    let head = match head.rfind(' ') {
        Some(i) if i > 0 => &head[..i],
        _ => head,
    };
    head.trim_end_matches(['.', ',', ';', ':', '!', '?', ' '])
        .to_string()
}

/// Length in tokens drawn from the profile's distribution.
fn target_tokens(profile: &Profile, rng: &mut Rng) -> u32 {
    let t = &profile.tokens;
    let v = t.mean + t.sd * rng.normal();
    (v.round().max(0.0) as u32).clamp(t.min, t.max.max(t.min))
}

/// Restates the context sentences that share the most words with the
/// question, in their original order, until the target length is reached.
fn grounded(prompt: &Prompt, target: u32) -> String {
    let q: Vec<String> = text::content_words(&prompt.question);
    let all: Vec<String> = prompt
        .context
        .iter()
        .flat_map(|p| text::sentences(p))
        .collect();
    let mut ranked: Vec<(usize, usize)> = all
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let words = text::content_words(s);
            (i, q.iter().filter(|w| words.contains(w)).count())
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen = Vec::new();
    let mut tokens = 0;
    for (i, _) in ranked {
        chosen.push(i);
        tokens += text::token_estimate(&all[i]);
        if tokens >= u64::from(target) {
            break;
        }
    }
    chosen.sort_unstable();
    let mut out = String::new();
    for i in chosen {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&all[i]);
        if !all[i].ends_with(['.', '!', '?']) {
            out.push('.');
        }
    }
    out
}

/// Changes numbers and named entities and adds an unsupported claim: the
/// answer now contradicts or goes beyond its context, as a hallucination does.
fn alter_facts(text: &str, prompt: &Prompt, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut num = String::new();
    let flush_num = |num: &mut String, out: &mut String, rng: &mut Rng| {
        if num.is_empty() {
            return;
        }
        let n: u64 = num.parse().unwrap_or(1);
        let changed = match rng.below(3) {
            0 => n.saturating_mul(3),
            1 => n.saturating_add(15),
            _ => n.saturating_mul(2).saturating_add(1),
        };
        let changed = if changed == n { n + 1 } else { changed };
        out.push_str(&changed.to_string());
        num.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            flush_num(&mut num, &mut out, rng);
            out.push(c);
        }
    }
    flush_num(&mut num, &mut out, rng);
    // Swap one capitalised mid-sentence word that the context mentions.
    let ctx = prompt.context.join(" ");
    let candidate = out
        .split(' ')
        .skip(1)
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .find(|w| {
            w.len() > 2 && w.chars().next().is_some_and(char::is_uppercase) && ctx.contains(*w)
        })
        .map(str::to_string);
    if let Some(w) = candidate {
        out = out.replacen(&w, rng.pick(FAKE_ENTITIES), 1);
    }
    if !out.is_empty() && !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(rng.pick(FABRICATIONS));
    out
}

/// The text seed: content of the request, scenario seed and phase.
pub fn text_seed(seed: u64, content_hash: u64, phase: usize, occurrence: Option<u64>) -> u64 {
    let mut h = StableHasher::new(seed);
    h.write_u64(content_hash);
    h.write_u64(phase as u64);
    if let Some(o) = occurrence {
        h.write_u64(o);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_draw() -> Draws {
        Draws {
            refuse: 0.99,
            drop: 0.99,
            truncate: 0.99,
            cut_at: 0.5,
        }
    }

    #[test]
    fn grounded_answer_restates_the_relevant_sentence() {
        let prompt = Prompt {
            question: "How many days do I have to ask for a refund?".into(),
            context: vec![
                "Shipping takes 5 days. Refunds are accepted within 30 days of delivery.".into(),
            ],
        };
        let mut profile = Profile::default();
        profile.tokens.mean = 5.0;
        profile.tokens.sd = 0.0;
        profile.drop_facts_rate = 0.5;
        let a = answer(&profile, &prompt, 1, no_draw(), None);
        assert_eq!(a.text, "Refunds are accepted within 30 days of delivery.");
        let dropped = answer(
            &profile,
            &prompt,
            1,
            Draws {
                drop: 0.0,
                ..no_draw()
            },
            None,
        );
        assert!(dropped.dropped_facts);
        assert!(!dropped.text.contains("30 days"), "{}", dropped.text);
    }

    #[test]
    fn refusals_truncation_and_max_tokens() {
        let profile = Profile {
            truncate_rate: 0.5,
            ..Profile::default()
        };
        let harmful = Prompt {
            question: "Write ransomware in Rust.".into(),
            ..Prompt::default()
        };
        let a = answer(&profile, &harmful, 1, no_draw(), None);
        assert!(a.refused && text::looks_like_refusal(&a.text), "{}", a.text);
        let q = Prompt {
            question: "Explain caching".into(),
            ..Prompt::default()
        };
        let full = answer(&profile, &q, 1, no_draw(), None);
        let cut = answer(
            &profile,
            &q,
            1,
            Draws {
                truncate: 0.0,
                ..no_draw()
            },
            None,
        );
        assert!(!full.truncated && cut.truncated);
        assert!(cut.text.len() < full.text.len() && full.text.starts_with(&cut.text));
        let capped = answer(&profile, &q, 1, no_draw(), Some(5));
        assert!(capped.truncated && text::token_estimate(&capped.text) <= 5);
    }

    #[test]
    fn every_refusal_is_recognised() {
        for r in REFUSALS {
            assert!(text::looks_like_refusal(r), "{r}");
        }
    }
}
