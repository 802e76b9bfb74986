//! The logprob probe (`logprob_probe:` in a suite): fixed prompts sent with
//! `max_tokens: 1` (by default), temperature 0 and `logprobs: true`, whose
//! top-k next-token log-probabilities are stored per run and tested against
//! the target's own history by `signals::logprob_shift`.
//!
//! Why a separate probe and not the cases: a verdict check sees only the
//! text, and a swapped model (a new quantization, a fine-tune, another
//! serving stack) behind an unchanged name and fingerprint usually gives the
//! same text. Its next-token distribution moves even when the argmax does
//! not, at the price of one token per prompt.
//!
//! A provider that sends no logprobs is recorded as `unsupported`: neither a
//! failure nor a provider error, and never tested.

use std::collections::BTreeSet;
use std::path::Path;

use futures::StreamExt;
use serde::Serialize;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::load::{Suite, SuiteCase};
use super::request;
use super::suite::{LogprobProbe, SuiteFile};
use crate::clock::Clock;
use crate::diag::{Diagnostic, Diagnostics};
use crate::provider::{ChatRequest, ChatResponse, ProviderError, Providers, TopLogprob};
use crate::store::ProbeRow;

/// OpenAI's range for `top_logprobs`.
pub const MAX_TOP_LOGPROBS: u32 = 20;
/// Only the first position is tested; a few more tokens are allowed for
/// servers that need them, no more (the probe is meant to cost nothing).
pub const MAX_PROBE_TOKENS: u32 = 16;

/// How one probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    Ok,
    /// The provider answered without logprobs.
    Unsupported,
    ProviderError,
}

impl ProbeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStatus::Ok => "ok",
            ProbeStatus::Unsupported => "unsupported",
            ProbeStatus::ProviderError => "provider_error",
        }
    }
}

/// One probe of one target.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub target: String,
    pub probe_id: String,
    pub prompt_hash: String,
    pub status: ProbeStatus,
    /// The first generated token.
    pub token: Option<String>,
    /// The alternatives at the first position, best first.
    pub top_logprobs: Vec<TopLogprob>,
    pub response_model: Option<String>,
    pub system_fingerprint: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub error: Option<String>,
    pub at_ms: i64,
}

/// One probe to send.
pub struct ProbeJob {
    pub target: String,
    pub probe_id: String,
    pub request: ChatRequest,
}

/// Checks the block; positions are the block's own.
pub fn validate(path: &Path, p: &Spanned<LogprobProbe>, f: &SuiteFile, d: &mut Diagnostics) {
    let at = |msg: String| Diagnostic::at(path, p, format!("logprob_probe: {msg}"));
    let b = &p.value;
    if !(1..=MAX_TOP_LOGPROBS).contains(&b.top_logprobs) {
        d.push(at(format!(
            "top_logprobs must be between 1 and {MAX_TOP_LOGPROBS} (found {})",
            b.top_logprobs
        )));
    }
    if !(1..=MAX_PROBE_TOKENS).contains(&b.max_tokens) {
        d.push(at(format!(
            "max_tokens must be between 1 and {MAX_PROBE_TOKENS} (found {}); only the first token is tested",
            b.max_tokens
        )));
    }
    for t in &b.targets {
        if !f.targets.value.contains(t) {
            d.push(at(format!(
                "target `{t}` is not one of the suite's targets ({})",
                f.targets.value.join(", ")
            )));
        }
    }
    let mut ids = BTreeSet::new();
    for q in &b.prompts {
        if q.id.trim().is_empty() {
            d.push(at("every prompt needs a non-empty `id`".into()));
        } else if !ids.insert(q.id.as_str()) {
            d.push(at(format!("duplicate prompt id `{}`", q.id)));
        }
        if q.prompt.trim().is_empty() {
            d.push(at(format!("prompt `{}` is empty", q.id)));
        } else if let Err(e) = super::prompt::render(&q.prompt, &f.vars) {
            d.push(at(format!("prompt `{}` template: {e}", q.id)));
        }
    }
}

/// The targets a suite's probe runs against, among those of this run.
pub fn probe_targets<'a>(p: &'a LogprobProbe, run_targets: &'a [String]) -> Vec<&'a String> {
    run_targets
        .iter()
        .filter(|t| p.targets.is_empty() || p.targets.contains(t))
        .collect()
}

/// The probe's prompts as cases: its own `prompts`, or the suite's cases
/// sent with the probe's parameters.
pub fn probe_cases(suite: &Suite, p: &LogprobProbe) -> Vec<SuiteCase> {
    let base = |c: SuiteCase| SuiteCase {
        temperature: Some(0.0),
        max_tokens: Some(p.max_tokens),
        stream: Some(false),
        response_format: None,
        expect: vec![],
        ..c
    };
    if p.prompts.is_empty() {
        suite.cases.iter().cloned().map(base).collect()
    } else {
        p.prompts
            .iter()
            .map(|q| {
                base(SuiteCase {
                    id: q.id.clone(),
                    prompt: Some(q.prompt.clone()),
                    messages: None,
                    context: vec![],
                    system: None,
                    temperature: None,
                    max_tokens: None,
                    stream: None,
                    response_format: None,
                    expect: vec![],
                    equality: None,
                })
            })
            .collect()
    }
}

/// The request of one probe for `model` (the provider's model string).
pub fn probe_request(
    suite: &Suite,
    p: &LogprobProbe,
    case: &SuiteCase,
    model: &str,
) -> Result<ChatRequest, String> {
    let (mut req, _) = request::build(suite, case, model)?;
    req.temperature = Some(0.0);
    req.logprobs = Some(true);
    req.top_logprobs = Some(p.top_logprobs);
    Ok(req)
}

/// A short, stable hash of the request: a probe's history is compared only
/// with runs that sent exactly the same request.
pub fn request_hash(req: &ChatRequest) -> String {
    let json = serde_json::to_vec(req).expect("request serialises");
    hex::encode(&Sha256::digest(&json)[..12])
}

/// Sends every probe with at most `concurrency` in flight; results in job order.
pub async fn run(
    providers: &Providers,
    jobs: Vec<ProbeJob>,
    concurrency: usize,
    clock: &Clock,
) -> Vec<ProbeResult> {
    let mut out: Vec<(usize, ProbeResult)> =
        futures::stream::iter(jobs.into_iter().enumerate().map(|(i, job)| async move {
            let answer = match providers.resolve(&job.target) {
                Ok((provider, _)) => provider.chat(&job.request).await,
                Err(e) => Err(e),
            };
            (i, result_of(job, answer, clock.now_ms()))
        }))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// What one answer says about the first token. Pure.
pub fn result_of(
    job: ProbeJob,
    answer: Result<ChatResponse, ProviderError>,
    at_ms: i64,
) -> ProbeResult {
    let mut r = ProbeResult {
        target: job.target,
        probe_id: job.probe_id,
        prompt_hash: request_hash(&job.request),
        status: ProbeStatus::ProviderError,
        token: None,
        top_logprobs: vec![],
        response_model: None,
        system_fingerprint: None,
        input_tokens: None,
        output_tokens: None,
        error: None,
        at_ms,
    };
    match answer {
        Err(e) => r.error = Some(e.to_string()),
        Ok(resp) => {
            r.response_model = resp.model;
            r.system_fingerprint = resp.system_fingerprint;
            r.input_tokens = resp.usage.map(|u| u.prompt_tokens);
            r.output_tokens = resp.usage.map(|u| u.completion_tokens);
            match resp.logprobs.and_then(|l| l.into_iter().next()) {
                None => {
                    r.status = ProbeStatus::Unsupported;
                    r.error = Some("the provider returned no logprobs".into());
                }
                Some(first) => {
                    let mut top = first.top_logprobs;
                    if top.is_empty() {
                        top.push(TopLogprob {
                            token: first.token.clone(),
                            logprob: first.logprob,
                        });
                    }
                    top.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
                    r.status = ProbeStatus::Ok;
                    r.token = Some(first.token);
                    r.top_logprobs = top;
                }
            }
        }
    }
    r
}

/// The stored row of a probe result.
pub fn to_row(suite: &str, run_id: i64, r: &ProbeResult) -> ProbeRow {
    ProbeRow {
        id: 0,
        run_id,
        suite: suite.to_string(),
        target: r.target.clone(),
        probe_id: r.probe_id.clone(),
        prompt_hash: r.prompt_hash.clone(),
        status: r.status.as_str().to_string(),
        token: r.token.clone(),
        top_logprobs: (r.status == ProbeStatus::Ok)
            .then(|| serde_json::to_string(&r.top_logprobs).expect("serialises")),
        response_model: r.response_model.clone(),
        system_fingerprint: r.system_fingerprint.clone(),
        input_tokens: r.input_tokens.map(|t| t as i64),
        output_tokens: r.output_tokens.map(|t| t as i64),
        error: r.error.clone(),
        at_ms: r.at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::TokenLogprob;

    fn job() -> ProbeJob {
        ProbeJob {
            target: "live".into(),
            probe_id: "p".into(),
            request: ChatRequest::default(),
        }
    }

    fn answer(logprobs: Option<Vec<TokenLogprob>>) -> ChatResponse {
        ChatResponse {
            id: None,
            model: Some("m".into()),
            system_fingerprint: None,
            content: "Paris".into(),
            finish_reason: Some("length".into()),
            usage: None,
            latency_ms: 1,
            attempts: 1,
            logprobs,
        }
    }

    #[test]
    fn an_answer_without_logprobs_is_unsupported_not_an_error() {
        let r = result_of(job(), Ok(answer(None)), 5);
        assert_eq!(r.status, ProbeStatus::Unsupported);
        let r = result_of(job(), Err(ProviderError::Timeout(Default::default())), 5);
        assert_eq!(r.status, ProbeStatus::ProviderError);
    }

    #[test]
    fn the_first_position_is_kept_best_first() {
        let lp = vec![TokenLogprob {
            token: "Paris".into(),
            logprob: -0.1,
            top_logprobs: vec![
                TopLogprob {
                    token: "Lyon".into(),
                    logprob: -3.0,
                },
                TopLogprob {
                    token: "Paris".into(),
                    logprob: -0.1,
                },
            ],
        }];
        let r = result_of(job(), Ok(answer(Some(lp))), 5);
        assert_eq!(r.status, ProbeStatus::Ok);
        assert_eq!(r.top_logprobs[0].token, "Paris");
        let row = to_row("s", 1, &r);
        assert!(row.top_logprobs.unwrap().contains("Lyon"));
    }
}
