//! The judge file format (`judges/*.yaml`).

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// One judge: how a smaller model scores one dimension of a response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeFile {
    pub name: Spanned<String>,
    pub version: Spanned<i64>,
    #[serde(default)]
    pub description: Option<String>,
    /// Model name from the config; default `judge`.
    #[serde(default = "default_model")]
    pub model: Spanned<String>,
    #[serde(default)]
    pub scale: Scale,
    /// Which records this judge applies to.
    #[serde(default)]
    pub applies_when: AppliesWhen,
    /// Tera template. Production content arrives only as context values
    /// (`input`, `output`, `context`), fenced, never compiled.
    pub prompt: Spanned<String>,
    /// Fixed (response, context, expected score) pairs run on a schedule to
    /// catch a silent update of the judge model itself.
    #[serde(default)]
    pub canaries: Vec<Spanned<JudgeCanary>>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub min: f64,
    pub max: f64,
}

impl Default for Scale {
    fn default() -> Self {
        Scale { min: 1.0, max: 5.0 }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppliesWhen {
    /// Only records that carry retrieved context.
    #[serde(default)]
    pub has_context: bool,
    /// Only records whose input is known.
    #[serde(default)]
    pub has_input: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JudgeCanary {
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub context: Vec<String>,
    pub output: String,
    pub expected: f64,
    /// Allowed distance from `expected`.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

fn default_model() -> Spanned<String> {
    Spanned {
        value: "judge".to_string(),
        referenced: serde_saphyr::Location::UNKNOWN,
        defined: serde_saphyr::Location::UNKNOWN,
    }
}

fn default_tolerance() -> f64 {
    1.0
}
