//! The canary case of a post-mortem: the worst example's prompt and
//! context, with expectations derived from the healthy answers to the same
//! input — the key fact they all state (`contains`), `refusal: false`, a
//! `judge` minimum for a score drop, a `min_tokens` for a cut or shortened
//! answer — written as a whole suite file that `canaryd check` accepts.

use super::{Incident, Record};
use crate::alert::evidence::input_text;
use crate::signals::Rule;

/// One expectation of the case.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Contains(String),
    Refusal(bool),
    Judge { name: String, min: f64 },
    MinTokens(u32),
}

/// The case and the suite around it.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryCase {
    pub suite: String,
    pub id: String,
    pub targets: Vec<String>,
    pub prompt: String,
    pub context: Vec<String>,
    pub expect: Vec<Expect>,
    /// Why no better expectation could be derived, for the reader.
    pub notes: Vec<String>,
}

/// The passages of a stored `context` column (a JSON list; a passage that
/// is not a string is kept as its JSON).
pub fn passages(raw: Option<&str>) -> Vec<String> {
    let Some(raw) = raw else { return Vec::new() };
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        Ok(serde_json::Value::String(s)) => vec![s],
        Ok(serde_json::Value::Null) => Vec::new(),
        _ => vec![raw.to_string()],
    }
}

/// Words that never end a fact ("30 days of" is "30 days").
const STOP: [&str; 16] = [
    "a", "an", "and", "are", "at", "for", "from", "in", "is", "of", "on", "or", "the", "to",
    "with", "within",
];

/// Words and numbers of `s`, punctuation trimmed.
fn tokens(s: &str) -> Vec<&str> {
    s.split_whitespace()
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric() && c != '$' && c != '%'))
        .filter(|t| !t.is_empty())
        .collect()
}

/// Candidate facts of an answer, most specific first: a number with the
/// word after it ("30 days"), a bare number or amount, then long words.
fn candidates(answer: &str) -> Vec<String> {
    let t = tokens(answer);
    let has_digit = |s: &str| s.chars().any(|c| c.is_ascii_digit());
    let mut out: Vec<String> = Vec::new();
    let word =
        |s: &&str| s.chars().all(char::is_alphabetic) && !STOP.contains(&s.to_lowercase().as_str());
    for (i, w) in t.iter().enumerate() {
        if has_digit(w) {
            let next: Vec<&str> = t[i + 1..]
                .iter()
                .take(2)
                .take_while(|n| word(n))
                .copied()
                .collect();
            for k in (1..=next.len()).rev() {
                out.push(format!("{w} {}", next[..k].join(" ")));
            }
            out.push(w.to_string());
        }
    }
    let mut long: Vec<&str> = t
        .iter()
        .copied()
        .filter(|w| w.chars().count() >= 7 && w.chars().all(char::is_alphabetic))
        .collect();
    long.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    out.extend(long.into_iter().map(String::from));
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.clone()));
    out
}

/// The fact every healthy answer states, preferring one the context also
/// holds and the worst answer lacks; `None` without healthy answers.
pub fn key_fact(healthy: &[&str], context: &[String], worst: &str) -> Option<String> {
    let first = healthy.first()?;
    let common: Vec<String> = candidates(first)
        .into_iter()
        .filter(|c| healthy.iter().all(|h| h.contains(c.as_str())))
        .collect();
    let in_context = |c: &str| context.iter().any(|p| p.contains(c));
    let missing = |c: &str| !worst.contains(c);
    common
        .iter()
        .find(|c| missing(c.as_str()) && in_context(c.as_str()))
        .or_else(|| common.iter().find(|c| missing(c.as_str())))
        .or_else(|| common.iter().find(|c| in_context(c.as_str())))
        .or(common.first())
        .cloned()
}

fn score_of(r: &Record, judge: &str) -> Option<f64> {
    r.scores
        .iter()
        .filter(|s| s.judge == judge)
        .find_map(|s| s.score)
}

/// The judge minimum of a score-drop case: at most the lowest healthy
/// score, and a point above the worst one where that is lower.
fn judge_min(healthy: &[f64], worst: Option<f64>, baseline: f64, threshold: f64) -> Option<f64> {
    let min_healthy = healthy.iter().copied().fold(f64::INFINITY, f64::min);
    let m = if min_healthy.is_finite() {
        let floor = worst.map_or(min_healthy - 1.0, |w| (w + 1.0).max(min_healthy - 1.0));
        floor.min(min_healthy)
    } else if baseline.is_finite() && threshold.is_finite() {
        baseline - threshold
    } else {
        return None;
    };
    Some((m * 10.0).floor() / 10.0)
}

/// Builds the case from the worst record; `None` when there is no record
/// with an input to replay.
pub fn derive(inc: &Incident) -> Option<CanaryCase> {
    let worst = inc.records.first()?;
    let prompt = input_text(worst.row.input.clone())?;
    let context = passages(worst.row.context.as_deref());
    let healthy_out: Vec<&str> = inc.healthy.iter().map(|r| r.row.output.as_str()).collect();
    let mut expect = Vec::new();
    let mut notes = Vec::new();
    let rule = Rule::parse(&inc.alert.rule);
    match key_fact(&healthy_out, &context, &worst.row.output) {
        Some(fact) => expect.push(Expect::Contains(fact)),
        None if healthy_out.is_empty() => notes.push(
            "no earlier answer to this input was stored, so no `contains` could be derived: add the fact a right answer must state".into(),
        ),
        None => notes.push("the healthy answers share no fact canaryd could pick: add one by hand".into()),
    }
    if !healthy_out.is_empty() || (rule == Some(Rule::RefusalRateShift) && worst.row.refusal) {
        expect.push(Expect::Refusal(false));
    }
    if rule == Some(Rule::JudgeScoreDrop) && !inc.alert.dimension.is_empty() {
        let judge = inc.alert.dimension.clone();
        let scores: Vec<f64> = inc
            .healthy
            .iter()
            .filter_map(|r| score_of(r, &judge))
            .collect();
        if let Some(min) = judge_min(
            &scores,
            score_of(worst, &judge),
            inc.alert.baseline,
            inc.alert.threshold,
        ) {
            expect.push(Expect::Judge { name: judge, min });
        }
    }
    let shorter = rule == Some(Rule::TruncationRate)
        || (rule == Some(Rule::LengthDrift) && inc.alert.value < inc.alert.baseline);
    if shorter
        && let Some(min) = inc.healthy.iter().map(|r| r.row.output_tokens).min()
        && min >= 4
    {
        expect.push(Expect::MinTokens((min / 2) as u32));
    }
    if expect.is_empty() {
        notes.push("no expectation could be derived: write what a right answer must do".into());
    }
    Some(CanaryCase {
        suite: format!("incident-{}", inc.alert.id),
        id: format!("alert-{}-worst", inc.alert.id),
        targets: inc.targets.clone(),
        prompt,
        context,
        expect,
        notes,
    })
}

/// A YAML scalar: JSON's double-quoted string is valid YAML.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The prompt as a Tera template that renders to the text itself.
fn literal_template(prompt: &str) -> Option<String> {
    if !(prompt.contains("{{") || prompt.contains("{%") || prompt.contains("{#")) {
        return Some(prompt.to_string());
    }
    // A prompt that closes a raw block itself cannot be wrapped in one.
    (!prompt.contains("endraw")).then(|| format!("{{% raw %}}{prompt}{{% endraw %}}"))
}

/// The suite file holding the case, or why it cannot be written.
pub fn suite_yaml(c: &CanaryCase) -> Result<String, String> {
    let prompt = literal_template(&c.prompt).ok_or_else(|| {
        "the prompt contains Tera `raw` markers: write this case by hand".to_string()
    })?;
    let mut y = String::new();
    y.push_str(&format!(
        "# Built by `canaryd incident export` from {}.\n",
        c.id
    ));
    // The names are built from the alert id: plain scalars.
    y.push_str(&format!("suite: {}\nversion: 1\n", c.suite));
    y.push_str(&format!(
        "description: {}\n",
        q("a canary that would have caught this incident")
    ));
    let targets: Vec<String> = c.targets.iter().map(|t| q(t)).collect();
    y.push_str(&format!("targets: [{}]\n", targets.join(", ")));
    y.push_str("defaults: { temperature: 0 }\ncases:\n");
    y.push_str(&format!("  - id: {}\n", c.id));
    y.push_str(&format!("    prompt: {}\n", q(&prompt)));
    if !c.context.is_empty() {
        y.push_str("    context:\n");
        for p in &c.context {
            y.push_str(&format!("      - {}\n", q(p)));
        }
    }
    y.push_str("    expect:\n");
    for e in &c.expect {
        let line = match e {
            Expect::Contains(s) => format!("contains: {}", q(s)),
            Expect::Refusal(b) => format!("refusal: {b}"),
            Expect::Judge { name, min } => format!("judge: {{ name: {}, min: {min} }}", q(name)),
            Expect::MinTokens(n) => format!("min_tokens: {n}"),
        };
        y.push_str(&format!("      - {line}\n"));
    }
    if c.expect.is_empty() {
        y.push_str("      []\n");
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_fact_is_the_one_the_healthy_answers_share_and_the_worst_lacks() {
        let healthy = [
            "Refunds are accepted within 30 days of delivery, per our policy.",
            "You have 30 days of delivery to ask; after that, no refunds.",
        ];
        let ctx = vec!["Refunds are accepted within 30 days of delivery.".to_string()];
        assert_eq!(
            key_fact(&healthy, &ctx, "You can ask for a refund.").as_deref(),
            Some("30 days")
        );
        assert_eq!(key_fact(&[], &ctx, "x"), None);
    }

    #[test]
    fn the_judge_minimum_sits_between_the_worst_and_the_healthy_scores() {
        assert_eq!(judge_min(&[5.0, 4.0], Some(1.0), 4.5, 0.3), Some(3.0));
        assert_eq!(judge_min(&[5.0], Some(4.5), 4.5, 0.3), Some(5.0));
        assert_eq!(judge_min(&[], None, 4.2, 0.3), Some(3.9));
    }

    #[test]
    fn a_prompt_that_looks_like_a_template_is_kept_literal() {
        let c = CanaryCase {
            suite: "incident-1".into(),
            id: "alert-1-worst".into(),
            targets: vec!["live".into()],
            prompt: "What is {{ secret }}?\n\"quoted\"".into(),
            context: vec!["line\nbreak".into()],
            expect: vec![Expect::Contains("30 days".into()), Expect::Refusal(false)],
            notes: vec![],
        };
        let y = suite_yaml(&c).unwrap();
        assert!(
            y.contains(r#"prompt: "{% raw %}What is {{ secret }}?\n\"quoted\"{% endraw %}""#),
            "{y}"
        );
        assert!(y.contains(r#"      - "line\nbreak""#), "{y}");
        let bad = CanaryCase {
            prompt: "{% endraw %}".into(),
            ..c
        };
        assert!(suite_yaml(&bad).is_err());
    }
}
