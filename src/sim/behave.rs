//! Deterministic answers that mean something.
//!
//! The wording of an answer is a function of the request content, the seed
//! and the phase (the "text seed"), so a repeated canary prompt gets the same
//! answer. Whether this occurrence is refused, truncated or loses its facts
//! is drawn from a second generator seeded with the occurrence index of the
//! request (see `mod.rs`), so over many repeats the rates match the scenario
//! while a fresh run replays identically.

use super::rng::{Rng, StableHasher};
use super::scenario::{Profile, Voice};
use super::text;

/// What the model was asked: the question and any context passages.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// The last user message without its context section.
    pub question: String,
    /// Passages found in fences, `<context>` tags or after a `Context:` line.
    pub context: Vec<String>,
}

/// One role/content pair of the request.
pub struct Turn<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// Finds the question and context passages in the messages.
///
/// canaryd's runner and other RAG front-ends send context in many shapes;
/// all of these are recognised, in any message: `<<<DATA-n … DATA-n>>>`
/// fences, `<context>`/`<document>` tags, and a line `Context:` (or
/// `Passages:`, `Documents:`, `Sources:`) followed by passages up to a
/// `Question:` line.
pub fn parse_prompt(turns: &[Turn<'_>]) -> Prompt {
    let mut context = Vec::new();
    let mut question = String::new();
    for t in turns {
        let rest = take_fences(t.content, &mut context);
        let rest = take_tags(&rest, &mut context);
        let (rest, q) = take_context_section(&rest, &mut context);
        if t.role == "user" {
            question = q.unwrap_or(rest).trim().to_string();
        } else if let Some(q) = q {
            question = q.trim().to_string();
        }
    }
    Prompt { question, context }
}

/// Removes `<<<TAG\n…\nTAG>>>` blocks, collecting their contents. A `<<<`
/// that does not open a well-formed fence is kept as text.
pub fn take_fences(text: &str, out: &mut Vec<String>) -> String {
    let mut rest = String::new();
    let mut s = text;
    while let Some(start) = s.find("<<<") {
        let after = &s[start + 3..];
        let tag_end = after.find('\n').unwrap_or(after.len());
        let tag = after[..tag_end].trim();
        let close = format!("\n{tag}>>>");
        match after[tag_end..].find(&close) {
            Some(end) if !tag.is_empty() && !tag.contains(' ') => {
                let end = tag_end + end;
                rest.push_str(&s[..start]);
                out.push(after[tag_end..end].trim().to_string());
                s = &after[end + close.len()..];
            }
            _ => {
                rest.push_str(&s[..start + 3]);
                s = after;
            }
        }
    }
    rest.push_str(s);
    rest
}

fn take_tags(text: &str, out: &mut Vec<String>) -> String {
    let mut s = text.to_string();
    for tag in ["context", "document", "passage", "source"] {
        let open = format!("<{tag}");
        let close = format!("</{tag}>");
        while let Some(a) = s.find(&open) {
            let Some(gt) = s[a..].find('>').map(|i| a + i + 1) else {
                break;
            };
            let Some(b) = s[gt..].find(&close).map(|i| gt + i) else {
                break;
            };
            out.push(s[gt..b].trim().to_string());
            s.replace_range(a..b + close.len(), "");
        }
    }
    s
}

/// Splits `Context:` … `Question:` sections. Returns the text outside the
/// context section and the question when a `Question:` line was found.
fn take_context_section(text: &str, out: &mut Vec<String>) -> (String, Option<String>) {
    let mut rest = String::new();
    let mut question: Option<String> = None;
    let mut in_context = false;
    let mut passage = String::new();
    let flush = |passage: &mut String, out: &mut Vec<String>| {
        let p = passage.trim();
        if !p.is_empty() {
            out.push(p.to_string());
        }
        passage.clear();
    };
    for line in text.lines() {
        if let Some(v) = label_value(
            line,
            &[
                "context",
                "contexts",
                "passages",
                "passage",
                "documents",
                "sources",
                "background",
            ],
        ) {
            in_context = true;
            flush(&mut passage, out);
            passage.push_str(v);
            continue;
        }
        if let Some(v) = label_value(line, &["question", "query", "user question", "q"]) {
            in_context = false;
            flush(&mut passage, out);
            question = Some(v.to_string());
            continue;
        }
        if in_context {
            let t = line.trim();
            let bullet = t.starts_with("- ") || t.starts_with("* ") || t.starts_with('[');
            if t.is_empty() || bullet {
                flush(&mut passage, out);
            }
            let t = t.trim_start_matches(['-', '*', ' ']);
            let t = match (t.starts_with('['), t.find(']')) {
                (true, Some(i)) => t[i + 1..].trim(),
                _ => t,
            };
            if !t.is_empty() {
                if !passage.is_empty() {
                    passage.push(' ');
                }
                passage.push_str(t);
            }
        } else if let Some(q) = question.as_mut() {
            q.push('\n');
            q.push_str(line);
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    flush(&mut passage, out);
    (rest, question)
}

/// `Label: value` (case-insensitive) → `value`.
fn label_value<'a>(line: &'a str, labels: &[&str]) -> Option<&'a str> {
    let (head, tail) = line.split_once(':')?;
    let head = head.trim().trim_start_matches(['#', '*']).trim();
    labels
        .iter()
        .any(|l| head.eq_ignore_ascii_case(l))
        .then(|| tail.trim())
}

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
fn cut_at_word(s: &str, bytes: usize) -> String {
    if bytes >= s.len() {
        return s.to_string();
    }
    let mut end = bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let head = &s[..end];
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
fn filler(question: &str, voice: Voice, target: u32, rng: &mut Rng) -> String {
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
    out
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
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
    fn finds_context_in_several_shapes() {
        let p = parse_prompt(&[
            Turn {
                role: "system",
                content: "You are helpful.",
            },
            Turn {
                role: "user",
                content: "Context:\n- Refunds are accepted within 30 days.\n- Shipping is free.\n\nQuestion: How long for refunds?",
            },
        ]);
        assert_eq!(
            p.context,
            vec!["Refunds are accepted within 30 days.", "Shipping is free."]
        );
        assert_eq!(p.question, "How long for refunds?");
        let p = parse_prompt(&[Turn {
            role: "user",
            content: "<context>The store opens at 9am.</context>\nWhen does it open?",
        }]);
        assert_eq!(p.context, vec!["The store opens at 9am."]);
        assert_eq!(p.question, "When does it open?");
        let p = parse_prompt(&[Turn {
            role: "user",
            content: "Use this:\n<<<DATA-0000\nA fact.\nDATA-0000>>>\nWhat?",
        }]);
        assert_eq!(p.context, vec!["A fact."]);
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
