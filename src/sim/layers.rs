//! The scenario file as written, and its resolution into profiles.
//!
//! A profile is resolved in layers, each overriding only the keys it sets:
//! built-in defaults, then for each phase up to the current one (the top
//! level is phase 0) its `default` profile followed by its entry for the
//! model. Values are validated as they are applied, with the position of
//! the offending key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::SimError;
use super::scenario::{AnswerRule, FinishStyle, Matcher, Phase, Profile, Scenario, Trigger, Voice};
use crate::diag::Diagnostic;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScenarioFile {
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    strict_models: Option<bool>,
    #[serde(default)]
    require_api_key: Option<String>,
    #[serde(default)]
    default: Option<ProfilePatch>,
    #[serde(default)]
    models: BTreeMap<String, ProfilePatch>,
    #[serde(default)]
    phases: Vec<Spanned<PhaseFile>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseFile {
    name: String,
    #[serde(default)]
    after_requests: Option<u64>,
    #[serde(default)]
    after_seconds: Option<f64>,
    #[serde(default)]
    default: Option<ProfilePatch>,
    #[serde(default)]
    models: BTreeMap<String, ProfilePatch>,
}

/// A partial profile: only the keys a layer sets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfilePatch {
    model: Option<String>,
    system_fingerprint: Option<String>,
    omit_fingerprint: Option<bool>,
    omit_usage: Option<bool>,
    finish_reason_style: Option<FinishStyle>,
    tokens: Option<LengthPatch>,
    refusal_rate: Option<Spanned<f64>>,
    refuse_harmful: Option<bool>,
    drop_facts_rate: Option<Spanned<f64>>,
    truncate_rate: Option<Spanned<f64>>,
    vary_answers: Option<bool>,
    reword: Option<Spanned<f64>>,
    voice: Option<Voice>,
    latency_ms: Option<LatencyPatch>,
    stream_chunk_ms: Option<f64>,
    faults: Option<FaultsPatch>,
    judge_malformed_rate: Option<Spanned<f64>>,
    judge_bias: Option<f64>,
    embedding_dims: Option<Spanned<usize>>,
    embedding_salt: Option<String>,
    answers: Option<Vec<Spanned<AnswerFile>>>,
    clarify_rate: Option<Spanned<f64>>,
    clarify_tool: Option<String>,
    logprobs: Option<bool>,
    logprob_shift: Option<Spanned<f64>>,
    logprob_noise: Option<Spanned<f64>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LengthPatch {
    mean: Option<f64>,
    sd: Option<f64>,
    min: Option<u32>,
    max: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyPatch {
    mean: Option<f64>,
    jitter: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsPatch {
    http_429: Option<Spanned<f64>>,
    http_500: Option<Spanned<f64>>,
    http_503: Option<Spanned<f64>>,
    timeout: Option<Spanned<f64>>,
    malformed_json: Option<Spanned<f64>>,
    reset: Option<Spanned<f64>>,
    retry_after_secs: Option<f64>,
    timeout_secs: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerFile {
    /// Case-insensitive substring of the question.
    #[serde(default, rename = "match")]
    contains: Option<String>,
    /// Regular expression over the question (add `(?i)` for case-insensitive).
    #[serde(default)]
    regex: Option<String>,
    answer: String,
}

pub(super) fn resolve(path: &Path, file: ScenarioFile) -> Result<Scenario, SimError> {
    let mut errors = Vec::new();
    let mut keys: Vec<String> = file.models.keys().cloned().collect();
    for ph in &file.phases {
        for k in ph.value.models.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    // Current profile per key (default last), updated layer by layer.
    let mut current: Vec<Profile> = vec![Profile::default(); keys.len() + 1];
    let mut phases = Vec::new();
    let mut layers: Vec<(String, Trigger, Option<&ProfilePatch>, &BTreeMap<_, _>)> = vec![(
        "baseline".to_string(),
        Trigger::default(),
        file.default.as_ref(),
        &file.models,
    )];
    for ph in &file.phases {
        let p = &ph.value;
        if p.name.trim().is_empty() || layers.iter().any(|l| l.0 == p.name) {
            errors.push(Diagnostic::at(
                path,
                ph,
                format!(
                    "phase name `{}` is empty or used twice (`baseline` is the top level)",
                    p.name
                ),
            ));
        }
        if p.after_seconds.is_some_and(|s| s.is_nan() || s < 0.0) {
            errors.push(Diagnostic::at(
                path,
                ph,
                "`after_seconds` must be 0 or more",
            ));
        }
        layers.push((
            p.name.clone(),
            Trigger {
                after_requests: p.after_requests,
                after_seconds: p.after_seconds,
            },
            p.default.as_ref(),
            &p.models,
        ));
    }
    for (name, trigger, default, models) in layers {
        if let Some(d) = default {
            for prof in current.iter_mut() {
                apply(path, prof, d, &mut errors);
            }
        }
        for (k, patch) in models {
            let i = keys.iter().position(|x| x == k).expect("collected above");
            apply(path, &mut current[i], patch, &mut errors);
        }
        phases.push(Phase {
            name,
            trigger,
            profiles: current.iter().cloned().map(Arc::new).collect(),
        });
    }
    if let Some(e) = errors.into_iter().next() {
        return Err(SimError::Scenario(e));
    }
    Ok(Scenario {
        seed: file.seed.unwrap_or(0),
        strict_models: file.strict_models.unwrap_or(false),
        require_api_key: file.require_api_key,
        keys,
        phases,
    })
}

/// Applies one layer to a profile, validating what it sets.
fn apply(path: &Path, p: &mut Profile, patch: &ProfilePatch, errors: &mut Vec<Diagnostic>) {
    let mut rate = |slot: &mut f64, v: &Option<Spanned<f64>>, key: &str| {
        if let Some(s) = v {
            if !(0.0..=1.0).contains(&s.value) {
                errors.push(Diagnostic::at(
                    path,
                    s,
                    format!("`{key}` is a probability: between 0 and 1"),
                ));
            }
            *slot = s.value;
        }
    };
    rate(&mut p.refusal_rate, &patch.refusal_rate, "refusal_rate");
    rate(
        &mut p.drop_facts_rate,
        &patch.drop_facts_rate,
        "drop_facts_rate",
    );
    rate(&mut p.truncate_rate, &patch.truncate_rate, "truncate_rate");
    rate(&mut p.reword, &patch.reword, "reword");
    rate(&mut p.clarify_rate, &patch.clarify_rate, "clarify_rate");
    rate(
        &mut p.judge_malformed_rate,
        &patch.judge_malformed_rate,
        "judge_malformed_rate",
    );
    if let Some(f) = &patch.faults {
        rate(&mut p.faults.http_429, &f.http_429, "faults.http_429");
        rate(&mut p.faults.http_500, &f.http_500, "faults.http_500");
        rate(&mut p.faults.http_503, &f.http_503, "faults.http_503");
        rate(&mut p.faults.timeout, &f.timeout, "faults.timeout");
        rate(
            &mut p.faults.malformed_json,
            &f.malformed_json,
            "faults.malformed_json",
        );
        rate(&mut p.faults.reset, &f.reset, "faults.reset");
        if let Some(v) = f.retry_after_secs {
            p.faults.retry_after_secs = v.max(0.0);
        }
        if let Some(v) = f.timeout_secs {
            p.faults.timeout_secs = v.max(0.0);
        }
        let fs = &p.faults;
        let sum =
            fs.http_429 + fs.http_500 + fs.http_503 + fs.timeout + fs.malformed_json + fs.reset;
        if sum > 1.0 + 1e-9 {
            let at = [
                &f.http_429,
                &f.http_500,
                &f.http_503,
                &f.timeout,
                &f.malformed_json,
                &f.reset,
            ]
            .into_iter()
            .flatten()
            .next();
            let msg = format!("fault probabilities add up to {sum}, more than 1");
            errors.push(match at {
                Some(s) => Diagnostic::at(path, s, msg),
                None => Diagnostic::error(path, 0, 0, msg),
            });
        }
    }
    if let Some(v) = &patch.model {
        p.model = Some(v.clone());
    }
    if let Some(v) = &patch.system_fingerprint {
        p.system_fingerprint = v.clone();
    }
    if let Some(v) = patch.omit_fingerprint {
        p.omit_fingerprint = v;
    }
    if let Some(v) = patch.omit_usage {
        p.omit_usage = v;
    }
    if let Some(v) = patch.finish_reason_style {
        p.finish_reason_style = v;
    }
    if let Some(t) = &patch.tokens {
        p.tokens.mean = t.mean.unwrap_or(p.tokens.mean).max(0.0);
        p.tokens.sd = t.sd.unwrap_or(p.tokens.sd).max(0.0);
        p.tokens.min = t.min.unwrap_or(p.tokens.min).max(1);
        p.tokens.max = t.max.unwrap_or(p.tokens.max);
        if p.tokens.max < p.tokens.min {
            errors.push(Diagnostic::error(
                path,
                0,
                0,
                format!(
                    "`tokens.max` ({}) is below `tokens.min` ({})",
                    p.tokens.max, p.tokens.min
                ),
            ));
        }
    }
    if let Some(v) = patch.refuse_harmful {
        p.refuse_harmful = v;
    }
    if let Some(v) = patch.vary_answers {
        p.vary_answers = v;
    }
    if let Some(v) = patch.voice {
        p.voice = v;
    }
    if let Some(l) = &patch.latency_ms {
        p.latency_ms.mean = l.mean.unwrap_or(p.latency_ms.mean).max(0.0);
        p.latency_ms.jitter = l.jitter.unwrap_or(p.latency_ms.jitter).max(0.0);
    }
    if let Some(v) = patch.stream_chunk_ms {
        p.stream_chunk_ms = v.max(0.0);
    }
    if let Some(v) = &patch.clarify_tool {
        p.clarify_tool = v.clone();
    }
    if let Some(v) = patch.judge_bias {
        p.judge_bias = v;
    }
    if let Some(d) = &patch.embedding_dims {
        if !(8..=8192).contains(&d.value) {
            errors.push(Diagnostic::at(
                path,
                d,
                "`embedding_dims` must be between 8 and 8192",
            ));
        }
        p.embedding_dims = d.value.clamp(8, 8192);
    }
    if let Some(v) = patch.logprobs {
        p.logprobs = v;
    }
    for (slot, v, key) in [
        (&mut p.logprob_shift, &patch.logprob_shift, "logprob_shift"),
        (&mut p.logprob_noise, &patch.logprob_noise, "logprob_noise"),
    ] {
        if let Some(s) = v {
            if !(s.value.is_finite() && (0.0..=5.0).contains(&s.value)) {
                errors.push(Diagnostic::at(
                    path,
                    s,
                    format!("`{key}` is a standard deviation in nats: between 0 and 5"),
                ));
            }
            *slot = s.value.clamp(0.0, 5.0);
        }
    }
    if let Some(s) = &patch.embedding_salt {
        p.embedding_salt = super::rng::hash_str(0, s);
    }
    if let Some(list) = &patch.answers {
        let mut rules = Vec::with_capacity(list.len() + p.answers.len());
        for a in list {
            let matcher = match (&a.value.contains, &a.value.regex) {
                (Some(s), None) => Matcher::Contains(s.to_lowercase()),
                (None, Some(r)) => match regex::Regex::new(r) {
                    Ok(re) => Matcher::Regex(re),
                    Err(e) => {
                        errors.push(Diagnostic::at(path, a, format!("invalid `regex`: {e}")));
                        continue;
                    }
                },
                _ => {
                    errors.push(Diagnostic::at(
                        path,
                        a,
                        "an answer needs exactly one of `match` and `regex`",
                    ));
                    continue;
                }
            };
            rules.push(AnswerRule {
                matcher,
                answer: a.value.answer.clone(),
            });
        }
        rules.extend(p.answers.iter().cloned());
        p.answers = Arc::from(rules);
    }
}
