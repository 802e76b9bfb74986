//! The suite file format (`canaries/*.yaml`). Keys here are a contract with users.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// One suite file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// Unique name.
    pub suite: Spanned<String>,
    /// Bumped by the author when the cases change meaning.
    pub version: Spanned<i64>,
    #[serde(default)]
    pub description: Option<String>,
    /// 5-field cron (6 with seconds). No schedule: only `canaryd run`.
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// IANA time zone or fixed offset for the schedule; default UTC.
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// Model names from the config.
    pub targets: Spanned<Vec<String>>,
    /// The target others are compared with (the pinned snapshot); default:
    /// the first target.
    #[serde(default)]
    pub baseline: Option<Spanned<String>>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub system: Option<String>,
    /// Values for the Tera templates in prompts.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Model calls (case × target) in flight at once within this suite; default 4.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// A run taking longer is cancelled, in seconds; default 300.
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// Equality sampling (`crate::equality`): extra answers per case for
    /// the `model_drift` test.
    #[serde(default)]
    pub equality: Option<Spanned<super::equality::EqualityFile>>,
    pub cases: Vec<Spanned<Case>>,
    /// Next-token log-probabilities of fixed prompts, tracked for a quiet
    /// model swap (`signals::logprob_shift`); see `canary::probe`.
    #[serde(default)]
    pub logprob_probe: Option<Spanned<LogprobProbe>>,
}

/// The `logprob_probe:` block: cheap fixed prompts (one token each at
/// temperature 0) whose top-k next-token log-probabilities are stored and
/// tested against the target's own history.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogprobProbe {
    /// Probe prompts; empty means the suite's cases (their prompts, context
    /// and system message), sent with the probe's own parameters.
    #[serde(default)]
    pub prompts: Vec<ProbePrompt>,
    /// Alternatives per token (1–20, OpenAI's range); default 5.
    #[serde(default = "default_top_logprobs")]
    pub top_logprobs: u32,
    /// Tokens generated per probe; only the first position is tested.
    /// Default 1.
    #[serde(default = "default_probe_max_tokens")]
    pub max_tokens: u32,
    /// Targets probed; empty means all of the suite's.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// One probe prompt: a Tera template over the suite's `vars`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbePrompt {
    pub id: String,
    pub prompt: String,
}

fn default_top_logprobs() -> u32 {
    5
}

fn default_probe_max_tokens() -> u32 {
    1
}

/// Request parameters applied to every case unless the case overrides them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    /// Ask for the answer as server-sent events, the way streaming
    /// applications do: a provider's streaming path can break on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}

/// One fixed prompt with known-good expectations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    /// A Tera template over the suite's `vars`.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Multi-turn alternative to `prompt`.
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    /// Passages the answer must be grounded in; sent with the prompt.
    #[serde(default)]
    pub context: Vec<String>,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// Sent as the OpenAI `response_format` (e.g. `{type: json_schema,
    /// json_schema: {...}}`), for applications that ask for structured output.
    #[serde(default)]
    pub response_format: Option<serde_json::Value>,
    #[serde(default)]
    pub expect: Vec<Spanned<Expectation>>,
    /// Overrides the suite's `equality:` samples or temperature.
    #[serde(default)]
    pub equality: Option<Spanned<super::equality::EqualityFile>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// What an answer must satisfy. Written as a one-key map: `- contains: "30 days"`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    Equals(String),
    Contains(String),
    NotContains(String),
    Icontains(String),
    Regex(String),
    IsJson(bool),
    JsonSchema(serde_json::Value),
    Refusal(bool),
    MinTokens(u32),
    MaxTokens(u32),
    Judge(JudgeExpectation),
    Similar(SimilarExpectation),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JudgeExpectation {
    pub name: String,
    pub min: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimilarExpectation {
    /// The reference answer.
    pub to: String,
    /// Minimum cosine similarity of the embeddings.
    #[serde(default = "default_similarity")]
    pub min: f64,
}

fn default_similarity() -> f64 {
    0.8
}
