//! What a detector says about one (rule, stream, dimension) at one time.
//! This is the contract between the detectors and the alerting.

use serde::{Deserialize, Serialize};

/// The detectors canaryd runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    JudgeScoreDrop,
    RefusalRateShift,
    LengthDrift,
    EmbeddingDrift,
    CanaryRegression,
    ModelChange,
    TruncationRate,
    ToolCallLoop,
    SessionBudget,
    SpendRate,
    JudgeDrift,
    ModelDrift,
    LogprobShift,
}

impl Rule {
    pub const ALL: [Rule; 13] = [
        Rule::JudgeScoreDrop,
        Rule::RefusalRateShift,
        Rule::LengthDrift,
        Rule::EmbeddingDrift,
        Rule::CanaryRegression,
        Rule::ModelChange,
        Rule::TruncationRate,
        Rule::ToolCallLoop,
        Rule::SessionBudget,
        Rule::SpendRate,
        Rule::JudgeDrift,
        Rule::ModelDrift,
        Rule::LogprobShift,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::JudgeScoreDrop => "judge_score_drop",
            Rule::RefusalRateShift => "refusal_rate_shift",
            Rule::LengthDrift => "length_drift",
            Rule::EmbeddingDrift => "embedding_drift",
            Rule::CanaryRegression => "canary_regression",
            Rule::ModelChange => "model_change",
            Rule::TruncationRate => "truncation_rate",
            Rule::ToolCallLoop => "tool_call_loop",
            Rule::SessionBudget => "session_budget",
            Rule::SpendRate => "spend_rate",
            Rule::JudgeDrift => "judge_drift",
            Rule::ModelDrift => "model_drift",
            Rule::LogprobShift => "logprob_shift",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The outcome of one detector evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The change is real: large enough and statistically significant.
    Firing,
    /// Enough data, no change.
    Ok,
    /// Too few samples on one side to say anything.
    InsufficientData,
    /// The baseline cannot yet estimate the signal's level to the precision
    /// its threshold needs (a young stream, or one whose baseline was mostly
    /// an incident): neither ok nor firing. The summary says how much more
    /// data it needs.
    WarmingUp,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Ok => "ok",
            Status::InsufficientData => "insufficient_data",
            Status::WarmingUp => "warming_up",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One detector's verdict for one subject at `at_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: Rule,
    /// A production stream, or `suite:<name>` for canary suites.
    pub stream: String,
    /// Judge dimension, canary case/target, or requested model, where it applies.
    pub dimension: Option<String>,
    pub status: Status,
    pub severity: Severity,
    pub at_ms: i64,
    /// The current value (mean score, rate, KL, cosine, pass rate...); NaN
    /// (JSON null) when unknown.
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// The baseline's value on the same scale; NaN (JSON null) when unknown.
    #[serde(with = "nan_as_null")]
    pub baseline: f64,
    /// The configured threshold the change was compared with.
    pub threshold: f64,
    pub p_value: Option<f64>,
    /// Samples in the current window (and baseline, in `baseline_samples`).
    pub samples: u64,
    pub baseline_samples: u64,
    /// One line a person can read: "groundedness 4.22 → 3.71 (p=0.0004, n=412)".
    pub summary: String,
    /// The effect over the last `resolve_after_hours` is below the resolve
    /// level (a fraction of the threshold): an open alert may resolve. An
    /// `Ok` finding without it holds a firing alert (hysteresis).
    #[serde(default = "yes")]
    pub resolve: bool,
}

fn yes() -> bool {
    true
}

impl Finding {
    /// The identity of the alert this finding feeds: (rule, stream, dimension).
    pub fn key(&self) -> (Rule, &str, Option<&str>) {
        (self.rule, &self.stream, self.dimension.as_deref())
    }
}

/// JSON has no NaN: an unknown number travels as `null` and comes back NaN,
/// so nothing unknown is ever read back as 0.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}
