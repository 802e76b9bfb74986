//! The scenario file: behaviour profiles per model name, and phases that
//! change them. The keys here are a contract with users; `docs/sim.md`
//! documents every one of them.
//!
//! A profile is resolved in layers, each overriding only the keys it sets:
//! built-in defaults, then for each phase up to the current one (the top
//! level is phase 0) its `default` profile followed by its entry for the
//! model. Phases are therefore cumulative: phase 2 starts from what phase 1
//! made of the model. Everything is resolved once at load time, so a request
//! only looks up a precomputed `Arc<Profile>`.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::SimError;

/// The YAML of the built-in scenario, used when `--scenario` is not given.
pub const DEFAULT_SCENARIO_YAML: &str = include_str!("../../deploy/sim/default.yaml");

/// `openai` reports `stop`; `eos` reports what vLLM/TGI send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FinishStyle {
    #[default]
    Openai,
    Eos,
}

/// Word lists for filler answers; a phase that changes the voice moves the
/// embedding centroid of what the model says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Voice {
    #[default]
    Formal,
    Casual,
}

// ------------------------------------------------------------ resolved types

/// Output length in tokens: a normal draw clamped to `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Length {
    pub mean: f64,
    pub sd: f64,
    pub min: u32,
    pub max: u32,
}

/// Added delay before answering: `mean ± jitter` milliseconds, uniform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub mean: f64,
    pub jitter: f64,
}

/// Fault probabilities per request (their sum must not exceed 1).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    pub http_429: f64,
    pub http_500: f64,
    pub http_503: f64,
    pub timeout: f64,
    pub malformed_json: f64,
    pub reset: f64,
    /// `Retry-After` of a 429, in seconds (fractions allowed).
    pub retry_after_secs: f64,
    /// How long a `timeout` fault hangs before answering, in seconds.
    pub timeout_secs: f64,
}

/// A scripted answer for prompts that match.
#[derive(Debug, Clone)]
pub struct AnswerRule {
    pub matcher: Matcher,
    pub answer: String,
}

#[derive(Debug, Clone)]
pub enum Matcher {
    /// Lower-cased needle.
    Contains(String),
    Regex(regex::Regex),
}

impl AnswerRule {
    pub fn matches(&self, text: &str, lower: &str) -> bool {
        match &self.matcher {
            Matcher::Contains(n) => lower.contains(n.as_str()),
            Matcher::Regex(r) => r.is_match(text),
        }
    }
}

/// How one model behaves in one phase.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Reported `model`; `None` echoes the requested name.
    pub model: Option<String>,
    pub system_fingerprint: String,
    pub omit_fingerprint: bool,
    pub omit_usage: bool,
    pub finish_reason_style: FinishStyle,
    pub tokens: Length,
    pub refusal_rate: f64,
    pub refuse_harmful: bool,
    pub drop_facts_rate: f64,
    pub truncate_rate: f64,
    /// Mix the occurrence index into the wording, so repeats differ.
    pub vary_answers: bool,
    /// The quiet swap: fraction of rewording (`reword.rs`), 0 = none.
    pub reword: f64,
    pub voice: Voice,
    pub latency_ms: Latency,
    /// Pause between streamed chunks, in milliseconds.
    pub stream_chunk_ms: f64,
    pub faults: Faults,
    pub judge_malformed_rate: f64,
    /// Added to every judge score (then clamped to 1–5).
    pub judge_bias: f64,
    pub embedding_dims: usize,
    /// Hash salt of the embedding space: a new salt is a new embedder.
    pub embedding_salt: u64,
    /// Later layers first.
    pub answers: Arc<[AnswerRule]>,
    /// Probability that a request offering the tool `clarify_tool` gets,
    /// instead of an answer, a call of that tool asking for clarification
    /// (always the same arguments): an agent pair that falls into a
    /// clarification loop.
    pub clarify_rate: f64,
    pub clarify_tool: String,
    /// Return `logprobs` when asked (`false`: a provider without them).
    pub logprobs: bool,
    /// Moves the first-token logits by this sd (nats) along a fixed
    /// direction: a quiet swap that leaves the text alone.
    pub logprob_shift: f64,
    /// Per-request jitter of the logits (sd, nats).
    pub logprob_noise: f64,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            model: None,
            system_fingerprint: "fp_sim0000001".into(),
            omit_fingerprint: false,
            omit_usage: false,
            finish_reason_style: FinishStyle::Openai,
            tokens: Length {
                mean: 60.0,
                sd: 15.0,
                min: 8,
                max: 400,
            },
            refusal_rate: 0.0,
            refuse_harmful: true,
            drop_facts_rate: 0.0,
            truncate_rate: 0.0,
            vary_answers: false,
            reword: 0.0,
            voice: Voice::Formal,
            latency_ms: Latency {
                mean: 0.0,
                jitter: 0.0,
            },
            stream_chunk_ms: 0.0,
            faults: Faults {
                retry_after_secs: 1.0,
                timeout_secs: 30.0,
                ..Faults::default()
            },
            judge_malformed_rate: 0.0,
            judge_bias: 0.0,
            embedding_dims: 256,
            embedding_salt: 0,
            answers: Arc::from(Vec::new()),
            clarify_rate: 0.0,
            clarify_tool: "ask_agent".into(),
            logprobs: true,
            logprob_shift: 0.0,
            logprob_noise: 0.0,
        }
    }
}

/// When a phase starts by itself (it can always be entered by hand).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Trigger {
    /// Chat completion requests received since start (all models).
    pub after_requests: Option<u64>,
    pub after_seconds: Option<f64>,
}

/// One phase with every model key's resolved profile.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub trigger: Trigger,
    /// Indexed like `Scenario::keys`, then the default profile last.
    pub(super) profiles: Vec<Arc<Profile>>,
}

/// A loaded, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    /// Unknown model names get 404 `model_not_found` instead of the default profile.
    pub strict_models: bool,
    /// When set, requests must carry `Authorization: Bearer <this>`.
    pub require_api_key: Option<String>,
    /// Model keys of all layers: exact names and `*` globs.
    pub(super) keys: Vec<String>,
    pub phases: Vec<Phase>,
}

impl Default for Scenario {
    /// The built-in scenario: every model answers well, no faults, no phases.
    fn default() -> Self {
        Scenario::from_yaml(Path::new("<built-in scenario>"), DEFAULT_SCENARIO_YAML)
            .expect("the built-in scenario is valid (tested)")
    }
}

impl Scenario {
    /// Reads and validates a scenario file; errors carry `path:line:column`.
    pub fn from_file(path: &Path) -> Result<Scenario, SimError> {
        let file = crate::yaml::parse_file(path).map_err(SimError::Scenario)?;
        super::layers::resolve(path, file)
    }

    /// Parses scenario YAML given as text (`path` only labels errors).
    pub fn from_yaml(path: &Path, text: &str) -> Result<Scenario, SimError> {
        let file = crate::yaml::parse(path, text).map_err(SimError::Scenario)?;
        super::layers::resolve(path, file)
    }

    /// Overrides the seed (the `--seed` flag).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The profile of `model` in phase `phase`, or `None` when the scenario
    /// is strict and does not know the model.
    pub fn profile(&self, phase: usize, model: &str) -> Option<&Arc<Profile>> {
        let p = &self.phases[phase.min(self.phases.len() - 1)];
        match self.key_index(model) {
            Some(i) => Some(&p.profiles[i]),
            None if self.strict_models => None,
            None => p.profiles.last(),
        }
    }

    /// Explicit (non-glob) model names, for `GET /v1/models`.
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter(|k| !k.contains('*'))
            .map(String::as_str)
    }

    /// Exact match first, else the longest matching glob.
    fn key_index(&self, model: &str) -> Option<usize> {
        if let Some(i) = self.keys.iter().position(|k| k == model) {
            return Some(i);
        }
        self.keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.contains('*') && glob_match(k, model))
            .max_by_key(|(_, k)| k.len())
            .map(|(i, _)| i)
    }

    /// Index of a phase by name.
    pub fn phase_index(&self, name: &str) -> Option<usize> {
        self.phases.iter().position(|p| p.name == name)
    }

    /// The phase that the triggers select after `requests` chat requests
    /// and `elapsed_secs`: the last phase whose trigger has fired.
    pub fn auto_phase(&self, requests: u64, elapsed_secs: f64) -> usize {
        let mut current = 0;
        for (i, p) in self.phases.iter().enumerate().skip(1) {
            let by_count = p.trigger.after_requests.is_some_and(|n| requests >= n);
            let by_time = p.trigger.after_seconds.is_some_and(|s| elapsed_secs >= s);
            if by_count || by_time {
                current = i;
            }
        }
        current
    }

    /// True when some phase starts after a time, so a clock must be read.
    pub fn has_timed_phases(&self) -> bool {
        self.phases
            .iter()
            .any(|p| p.trigger.after_seconds.is_some())
    }
}

/// `*` matches any run of characters; everything else literally.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, SimError> {
        Scenario::from_yaml(Path::new("s.yaml"), text)
    }

    #[test]
    fn built_in_scenario_loads() {
        let s = Scenario::default();
        assert_eq!(s.phases[0].name, "baseline");
        assert!(s.profile(0, "anything").is_some());
    }

    #[test]
    fn phases_are_cumulative_and_model_beats_default() {
        let s = parse(
            "default: { system_fingerprint: fp_a, tokens: { mean: 50 } }\n\
             models:\n  live: { model: m-1 }\n  'gpt-*': { refusal_rate: 0.5 }\n\
             phases:\n  - name: update\n    after_requests: 10\n    models:\n      live: { model: m-2, tokens: { mean: 20 } }\n\
             \x20 - name: later\n    after_seconds: 60\n    default: { refusal_rate: 0.25 }\n",
        )
        .unwrap();
        let live0 = s.profile(0, "live").unwrap();
        assert_eq!(live0.model.as_deref(), Some("m-1"));
        assert_eq!(live0.system_fingerprint, "fp_a");
        assert_eq!(live0.tokens.mean, 50.0);
        let live1 = s.profile(1, "live").unwrap();
        assert_eq!(live1.model.as_deref(), Some("m-2"));
        assert_eq!(live1.tokens.mean, 20.0);
        assert_eq!(live1.tokens.sd, 15.0);
        let live2 = s.profile(2, "live").unwrap();
        assert_eq!(live2.model.as_deref(), Some("m-2"));
        assert_eq!(live2.refusal_rate, 0.25);
        assert_eq!(s.profile(0, "gpt-4o").unwrap().refusal_rate, 0.5);
        assert_eq!(s.profile(0, "other").unwrap().refusal_rate, 0.0);
        assert_eq!(s.auto_phase(9, 0.0), 0);
        assert_eq!(s.auto_phase(10, 0.0), 1);
        assert_eq!(s.auto_phase(10, 61.0), 2);
    }

    #[test]
    fn bad_values_point_at_their_line() {
        let err = parse("default:\n  refusal_rate: 1.5\n").unwrap_err();
        let SimError::Scenario(d) = err else {
            panic!("{err}")
        };
        assert_eq!(d.line, 2, "{d}");
        let err = parse("default:\n  refusl_rate: 0.5\n").unwrap_err();
        assert!(
            err.to_string().contains("did you mean `refusal_rate`"),
            "{err}"
        );
        let err = parse("default:\n  answers:\n    - { regex: '(', answer: x }\n").unwrap_err();
        assert!(err.to_string().contains("invalid `regex`"), "{err}");
        let err = parse("default:\n  faults: { http_500: 0.6, http_503: 0.6 }\n").unwrap_err();
        assert!(err.to_string().contains("add up"), "{err}");
    }

    #[test]
    fn strict_models_reject_unknown_names() {
        let s = parse("strict_models: true\nmodels:\n  a: {}\n").unwrap();
        assert!(s.profile(0, "a").is_some());
        assert!(s.profile(0, "b").is_none());
        assert_eq!(s.model_names().collect::<Vec<_>>(), vec!["a"]);
    }

    #[test]
    fn shipped_example_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/sim");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                Scenario::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 4, "{n} example scenarios");
    }

    #[test]
    fn globs() {
        assert!(glob_match("gpt-*", "gpt-4o"));
        assert!(glob_match("*-mini", "gpt-4o-mini"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXcYb"));
        assert!(!glob_match("ab*ba", "aba"));
    }
}
