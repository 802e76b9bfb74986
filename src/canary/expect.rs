//! Checking an answer against a case's expectations.
//!
//! Every expectation yields a [`Verdict`] with a reason a person can act on
//! ("expected to contain \"30 days\"; answer was …"). Local checks are pure;
//! `judge` and `similar` call a model, and when that call fails the verdict
//! is an *error*, never a failure: a judge outage is not a regression.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::suite::{Expectation, JudgeExpectation, SimilarExpectation};
use crate::judge::Judge;
use crate::judge::template::JudgeInput;
use crate::provider::Providers;

/// The config model name `similar` expectations embed with.
pub const EMBEDDER_MODEL: &str = "embedder";

/// Outcome of one expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// The check itself could not be made (judge or embedder unreachable).
    Error,
}

/// One expectation's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The expectation kind, e.g. `contains`.
    pub kind: String,
    pub status: Status,
    pub reason: String,
    /// Judge score or cosine similarity, when the check produced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

impl Verdict {
    fn new(kind: &str, passed: bool, reason: String) -> Verdict {
        Verdict {
            kind: kind.to_string(),
            status: if passed { Status::Pass } else { Status::Fail },
            reason,
            score: None,
        }
    }

    fn error(kind: &str, reason: String) -> Verdict {
        Verdict {
            kind: kind.to_string(),
            status: Status::Error,
            reason,
            score: None,
        }
    }
}

/// What is known about an answer for local checks.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub text: &'a str,
    /// The provider's `usage.completion_tokens`, if it reported usage.
    pub completion_tokens: Option<u64>,
}

impl Answer<'_> {
    /// Provider-reported tokens, else an estimate, with which one it was.
    pub fn tokens(&self) -> (u64, &'static str) {
        match self.completion_tokens {
            Some(t) => (t, "reported"),
            None => (estimate_tokens(self.text), "estimated"),
        }
    }
}

/// A word-based token estimate for servers that report no usage: English
/// averages about 1.3 tokens per word.
pub fn estimate_tokens(text: &str) -> u64 {
    let words = text.split_whitespace().count() as u64;
    (words * 13).div_ceil(10)
}

/// The expectation's key as written in YAML.
pub fn kind(e: &Expectation) -> &'static str {
    match e {
        Expectation::Equals(_) => "equals",
        Expectation::Contains(_) => "contains",
        Expectation::NotContains(_) => "not_contains",
        Expectation::Icontains(_) => "icontains",
        Expectation::Regex(_) => "regex",
        Expectation::IsJson(_) => "is_json",
        Expectation::JsonSchema(_) => "json_schema",
        Expectation::Refusal(_) => "refusal",
        Expectation::MinTokens(_) => "min_tokens",
        Expectation::MaxTokens(_) => "max_tokens",
        Expectation::Judge(_) => "judge",
        Expectation::Similar(_) => "similar",
    }
}

/// A short quote of the answer for reasons.
pub fn quote(text: &str) -> String {
    const MAX: usize = 160;
    let t = text.trim();
    if t.chars().count() <= MAX {
        format!("{t:?}")
    } else {
        let head: String = t.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// Checks one expectation that needs no model call. `None` for `judge` and
/// `similar`, which [`Evaluator`] handles.
pub fn check_local(e: &Expectation, a: &Answer<'_>) -> Option<Verdict> {
    let k = kind(e);
    let text = a.text;
    let v = match e {
        Expectation::Equals(want) => {
            let ok = text.trim() == want.trim();
            Verdict::new(
                k,
                ok,
                format!("expected to equal {want:?}; answer was {}", quote(text)),
            )
        }
        Expectation::Contains(want) => {
            let ok = text.contains(want.as_str());
            Verdict::new(
                k,
                ok,
                format!("expected to contain {want:?}; answer was {}", quote(text)),
            )
        }
        Expectation::NotContains(bad) => {
            let ok = !text.contains(bad.as_str());
            Verdict::new(
                k,
                ok,
                format!(
                    "expected not to contain {bad:?}; answer was {}",
                    quote(text)
                ),
            )
        }
        Expectation::Icontains(want) => {
            let ok = text.to_lowercase().contains(&want.to_lowercase());
            Verdict::new(
                k,
                ok,
                format!(
                    "expected to contain {want:?} (any case); answer was {}",
                    quote(text)
                ),
            )
        }
        Expectation::Regex(re) => match regex::Regex::new(re) {
            Ok(r) => Verdict::new(
                k,
                r.is_match(text),
                format!("expected to match /{re}/; answer was {}", quote(text)),
            ),
            Err(err) => Verdict::new(k, false, format!("invalid regex /{re}/: {err}")),
        },
        Expectation::IsJson(want) => {
            let parsed = parse_json(text);
            let ok = parsed.is_ok() == *want;
            let reason = match (&parsed, want) {
                (Ok(_), true) => "answer is JSON".to_string(),
                (Err(err), true) => format!("expected JSON ({err}); answer was {}", quote(text)),
                (Ok(_), false) => format!("expected not JSON; answer was {}", quote(text)),
                (Err(_), false) => "answer is not JSON".to_string(),
            };
            Verdict::new(k, ok, reason)
        }
        Expectation::JsonSchema(schema) => match parse_json(text) {
            Err(err) => Verdict::new(
                k,
                false,
                format!("expected JSON ({err}); answer was {}", quote(text)),
            ),
            Ok(v) => match super::schema::validate(schema, &v) {
                Ok(()) => Verdict::new(k, true, "answer matches the schema".into()),
                Err(why) => {
                    Verdict::new(k, false, format!("answer does not match the schema: {why}"))
                }
            },
        },
        Expectation::Refusal(want) => {
            let found = super::refusal::classify(text);
            let refused = found.is_some();
            let reason = match (&found, want) {
                (Some(r), true) => format!("answer is a refusal ({r}), as expected"),
                (None, true) => format!("expected a refusal; answer was {}", quote(text)),
                (Some(r), false) => {
                    format!("expected an answer, got a refusal ({r}): {}", quote(text))
                }
                (None, false) => "answer is not a refusal".to_string(),
            };
            Verdict::new(k, refused == *want, reason)
        }
        Expectation::MinTokens(min) => {
            let (n, how) = a.tokens();
            Verdict::new(
                k,
                n >= u64::from(*min),
                format!("expected at least {min} tokens; answer has {n} ({how})"),
            )
        }
        Expectation::MaxTokens(max) => {
            let (n, how) = a.tokens();
            Verdict::new(
                k,
                n <= u64::from(*max),
                format!("expected at most {max} tokens; answer has {n} ({how})"),
            )
        }
        Expectation::Judge(_) | Expectation::Similar(_) => return None,
    };
    Some(v)
}

/// Parses an answer as JSON, tolerating one surrounding Markdown code fence
/// (models add them even when told not to).
fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    let t = text.trim();
    let unfenced = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .unwrap_or(t);
    serde_json::from_str(unfenced.trim()).map_err(|e| e.to_string())
}

/// Evaluates every expectation of a case, calling judges and the embedder
/// for the kinds that need a model.
#[derive(Clone)]
pub struct Evaluator {
    pub providers: Providers,
    pub judges: BTreeMap<String, Judge>,
}

impl Evaluator {
    /// The evaluator of one version of the live settings: its provider
    /// clients and judges.
    pub fn new(providers: Providers, judges: &[Judge]) -> Evaluator {
        Evaluator {
            providers,
            judges: judges.iter().map(|j| (j.name.clone(), j.clone())).collect(),
        }
    }

    /// All verdicts for one answer, in the order the expectations are written.
    /// `prompt` and `context` are what the judge sees as input and sources.
    pub async fn evaluate(
        &self,
        expect: &[Expectation],
        answer: &Answer<'_>,
        prompt: &str,
        context: &[String],
    ) -> Vec<Verdict> {
        let mut out = Vec::with_capacity(expect.len());
        for e in expect {
            let v = match e {
                Expectation::Judge(j) => self.judge(j, answer.text, prompt, context).await,
                Expectation::Similar(s) => self.similar(s, answer.text).await,
                other => check_local(other, answer).expect("local kind"),
            };
            out.push(v);
        }
        out
    }

    async fn judge(
        &self,
        j: &JudgeExpectation,
        text: &str,
        prompt: &str,
        context: &[String],
    ) -> Verdict {
        let Some(judge) = self.judges.get(&j.name) else {
            return Verdict::error("judge", format!("judge `{}` is not loaded", j.name));
        };
        let input = JudgeInput {
            input: Some(prompt.to_string()),
            context: context.to_vec(),
            output: text.to_string(),
        };
        match crate::judge::call::score(&self.providers, judge, &input).await {
            Ok(v) => {
                let mut verdict = Verdict::new(
                    "judge",
                    v.score >= j.min,
                    format!(
                        "{} scored {} (minimum {}): {}",
                        j.name,
                        v.score,
                        j.min,
                        v.reasoning.trim()
                    ),
                );
                verdict.score = Some(v.score);
                verdict
            }
            Err(e) => Verdict::error("judge", format!("{} could not score: {e}", j.name)),
        }
    }

    async fn similar(&self, s: &SimilarExpectation, text: &str) -> Verdict {
        match embed_cosine(&self.providers, &s.to, text).await {
            Ok(cos) => {
                let mut v = Verdict::new(
                    "similar",
                    cos >= s.min,
                    format!(
                        "cosine similarity to {} is {cos:.3} (minimum {}); answer was {}",
                        quote(&s.to),
                        s.min,
                        quote(text)
                    ),
                );
                v.score = Some(cos);
                v
            }
            Err(e) => Verdict::error("similar", format!("embedding failed: {e}")),
        }
    }
}

/// Cosine similarity of two texts' embeddings from the `embedder` model.
pub async fn embed_cosine(
    providers: &Providers,
    a: &str,
    b: &str,
) -> Result<f64, crate::provider::ProviderError> {
    let (provider, model) = providers.resolve(EMBEDDER_MODEL)?;
    let v = provider
        .embed(&model.model, &[a.to_string(), b.to_string()])
        .await?;
    Ok(cosine(&v[0], &v[1]))
}

/// Cosine similarity; 0 when either vector is all zeros.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(e: Expectation, text: &str) -> Verdict {
        check_local(
            &e,
            &Answer {
                text,
                completion_tokens: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn text_checks_pass_and_fail_with_reasons() {
        let ans = "You have 30 days to ask for a refund.";
        assert_eq!(
            check(Expectation::Contains("30 days".into()), ans).status,
            Status::Pass
        );
        let v = check(Expectation::Contains("14 days".into()), ans);
        assert_eq!(v.status, Status::Fail);
        assert_eq!(
            v.reason,
            "expected to contain \"14 days\"; answer was \"You have 30 days to ask for a refund.\""
        );
        assert_eq!(
            check(Expectation::NotContains("sorry".into()), ans).status,
            Status::Pass
        );
        assert_eq!(
            check(Expectation::Icontains("30 DAYS".into()), ans).status,
            Status::Pass
        );
        assert_eq!(
            check(Expectation::Equals(format!("  {ans}\n")), ans).status,
            Status::Pass
        );
        assert_eq!(
            check(Expectation::Equals("30 days".into()), ans).status,
            Status::Fail
        );
        assert_eq!(
            check(Expectation::Regex(r"\b\d+ days\b".into()), ans).status,
            Status::Pass
        );
        assert_eq!(
            check(Expectation::Regex(r"^\d+$".into()), ans).status,
            Status::Fail
        );
    }

    #[test]
    fn json_checks_accept_fenced_json() {
        let fenced = "```json\n{\"days\": 30}\n```";
        assert_eq!(
            check(Expectation::IsJson(true), fenced).status,
            Status::Pass
        );
        assert_eq!(
            check(Expectation::IsJson(true), "thirty").status,
            Status::Fail
        );
        assert_eq!(
            check(Expectation::IsJson(false), "thirty").status,
            Status::Pass
        );
        let schema = json!({"type": "object", "required": ["days"]});
        assert_eq!(
            check(Expectation::JsonSchema(schema.clone()), fenced).status,
            Status::Pass
        );
        let v = check(Expectation::JsonSchema(schema), "{\"weeks\": 4}");
        assert_eq!(v.status, Status::Fail);
        assert!(
            v.reason.contains("missing required property `days`"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn token_limits_prefer_reported_usage() {
        let text = "one two three four five six seven eight nine ten";
        let est = check(Expectation::MaxTokens(12), text);
        assert_eq!(est.status, Status::Fail, "10 words estimate to 13 tokens");
        assert!(est.reason.contains("(estimated)"), "{}", est.reason);
        let reported = check_local(
            &Expectation::MaxTokens(12),
            &Answer {
                text,
                completion_tokens: Some(11),
            },
        )
        .unwrap();
        assert_eq!(reported.status, Status::Pass);
        assert!(reported.reason.contains("11 (reported)"));
        assert_eq!(check(Expectation::MinTokens(5), text).status, Status::Pass);
    }

    #[test]
    fn refusal_expectations() {
        let no = "I'm sorry, but I can't help with that.";
        assert_eq!(check(Expectation::Refusal(true), no).status, Status::Pass);
        let v = check(Expectation::Refusal(false), no);
        assert_eq!(v.status, Status::Fail);
        assert!(v.reason.starts_with("expected an answer, got a refusal"));
        assert_eq!(
            check(Expectation::Refusal(true), "Here it is.").status,
            Status::Fail
        );
    }

    #[test]
    fn long_answers_are_quoted_truncated() {
        let long = "x".repeat(500);
        let q = quote(&long);
        assert!(q.ends_with('…') && q.len() < 200, "{q}");
    }

    #[test]
    fn cosine_of_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-9);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-9);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
