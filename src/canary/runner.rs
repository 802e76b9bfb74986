//! Running one suite now: every case against every target, under the
//! suite's concurrency and timeout, recorded in the store as one run.
//!
//! A run is atomic in the store (`finish_run` writes every result in one
//! transaction): a run cut short by its timeout or by shutdown is recorded
//! as `cancelled` with no results, so half a run never skews a baseline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::agree;
use super::expect::{self, Answer, Evaluator, Status, Verdict};
use super::load::Suite;
use super::probe::{self, ProbeJob, ProbeResult};
use super::request;
use crate::clock::Clock;
use crate::provider::{ChatRequest, ProviderError, Usage};
use crate::store::{
    CaseResultRow, ModelEvent, ModelIdentity, NewRun, RunTrigger, Store, StoreError,
};

/// Model calls in flight per suite when the suite does not say.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Run timeout when the suite does not say.
pub const DEFAULT_TIMEOUT_SECS: f64 = 300.0;

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid suite {suite}: {message}")]
    Invalid { suite: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of one case against one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The provider (or the judge/embedder) could not answer: not a failure.
    ProviderError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::ProviderError => "provider_error",
        }
    }
}

/// Everything recorded for one case against one target.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case_id: String,
    pub target: String,
    pub requested_model: String,
    pub outcome: Outcome,
    pub request: ChatRequest,
    pub answer: Option<String>,
    pub response_model: Option<String>,
    pub system_fingerprint: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub latency_ms: Option<u64>,
    pub attempts: Option<u32>,
    pub verdicts: Vec<Verdict>,
    pub error: Option<String>,
    pub error_kind: Option<String>,
    /// Against the baseline target; `None` for the baseline itself or when
    /// either side has no comparable answer.
    pub agrees_with_pinned: Option<bool>,
    pub similarity_to_pinned: Option<f64>,
    pub created_ms: i64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Completed,
    Cancelled,
}

/// A finished run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub suite: String,
    pub version: i64,
    pub content_hash: String,
    pub trigger: RunTrigger,
    pub scheduled_for_ms: Option<i64>,
    pub status: RunStatus,
    pub note: Option<String>,
    pub baseline: Option<String>,
    pub targets: Vec<String>,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub passed: usize,
    pub failed: usize,
    pub provider_errors: usize,
    pub results: Vec<CaseResult>,
    /// Model-change events this run recorded.
    pub model_events: Vec<ModelEvent>,
    /// Equality sampling and tests, for suites with an `equality:` block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equality: Option<super::sampling::Sampled>,
    /// The suite's logprob probe, if it has one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logprob_probes: Vec<ProbeResult>,
}

/// What asking for a run led to.
#[derive(Debug)]
pub enum Started {
    Ran(Box<RunReport>),
    /// Another replica (or an earlier attempt) already ran this tick.
    TickTaken,
}

/// One run to make.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub suite: Arc<Suite>,
    /// Targets to run; empty means all of the suite's.
    pub only_targets: Vec<String>,
    pub trigger: RunTrigger,
    pub scheduled_for_ms: Option<i64>,
    /// Cancelled on shutdown: the run is recorded as cancelled.
    pub cancel: CancellationToken,
}

/// Runs suites. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    pub store: Store,
    pub eval: Evaluator,
    pub owner: Arc<str>,
    pub clock: Clock,
}

struct Job {
    case: usize,
    target: String,
    request: ChatRequest,
    input: String,
}

impl Runner {
    /// Runs `spec` now and records it. Invalid input is reported before
    /// anything is written.
    pub async fn run(&self, spec: &RunSpec) -> Result<Started, RunError> {
        let suite = &spec.suite;
        let invalid = |message: String| RunError::Invalid {
            suite: suite.name.clone(),
            message,
        };
        let targets: Vec<String> = if spec.only_targets.is_empty() {
            suite.targets.clone()
        } else {
            for t in &spec.only_targets {
                if !suite.targets.contains(t) {
                    return Err(invalid(format!(
                        "`{t}` is not a target of this suite (targets: {})",
                        suite.targets.join(", ")
                    )));
                }
            }
            spec.only_targets.clone()
        };
        let mut jobs = Vec::new();
        for (i, case) in suite.cases.iter().enumerate() {
            for target in &targets {
                let (_, model) = self
                    .eval
                    .providers
                    .resolve(target)
                    .map_err(|e| invalid(e.to_string()))?;
                let (request, input) = request::build(suite, case, &model.model)
                    .map_err(|e| invalid(format!("case `{}`: {e}", case.id)))?;
                jobs.push(Job {
                    case: i,
                    target: target.clone(),
                    request,
                    input,
                });
            }
        }
        let mut probe_jobs = Vec::new();
        if let Some(p) = &suite.logprob_probe {
            let cases = probe::probe_cases(suite, p);
            for target in probe::probe_targets(p, &targets) {
                let (_, model) = self
                    .eval
                    .providers
                    .resolve(target)
                    .map_err(|e| invalid(e.to_string()))?;
                for case in &cases {
                    let request = probe::probe_request(suite, p, case, &model.model)
                        .map_err(|e| invalid(format!("logprob probe `{}`: {e}", case.id)))?;
                    probe_jobs.push(ProbeJob {
                        target: target.clone(),
                        probe_id: case.id.clone(),
                        request,
                    });
                }
            }
        }
        let started_ms = self.clock.now_ms();
        let body = serde_json::to_string(&**suite).expect("suite serialises");
        self.store
            .upsert_suite_version(
                &suite.name,
                suite.version,
                &suite.content_hash,
                &body,
                started_ms,
            )
            .await?;
        let Some(run_id) = self
            .store
            .start_run(&NewRun {
                suite: &suite.name,
                suite_version: suite.version,
                content_hash: &suite.content_hash,
                trigger: spec.trigger,
                scheduled_for_ms: spec.scheduled_for_ms,
                owner: &self.owner,
                now_ms: started_ms,
            })
            .await?
        else {
            return Ok(Started::TickTaken);
        };
        tracing::info!(suite = %suite.name, run_id, trigger = spec.trigger.as_str(), calls = jobs.len(), probes = probe_jobs.len(), "canary run started");

        let n = jobs.len();
        let concurrency = suite.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1);
        let timeout = Duration::from_secs_f64(suite.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS));
        let deadline_at = tokio::time::Instant::now() + timeout;
        let mut stream = futures::stream::iter(jobs.into_iter().enumerate().map(|(i, job)| {
            let this = self.clone();
            let suite = suite.clone();
            async move { (i, this.run_one(&suite, job).await) }
        }))
        .buffer_unordered(concurrency);
        let mut slots: Vec<Option<CaseResult>> = vec![None; n];
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let timed_out = || format!("timed out after {}s", timeout.as_secs_f64());
        let mut cancelled_because = loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some((i, r)) => slots[i] = Some(r),
                    None => break None,
                },
                _ = &mut deadline => break Some(timed_out()),
                _ = spec.cancel.cancelled() => break Some("cancelled by shutdown".to_string()),
            }
        };
        drop(stream);
        // The probe runs after the cases, under the same deadline: a run is
        // whole or cancelled.
        let mut probes = Vec::new();
        if cancelled_because.is_none() && !probe_jobs.is_empty() {
            tokio::select! {
                r = probe::run(&self.eval.providers, probe_jobs, concurrency, &self.clock) => probes = r,
                _ = &mut deadline => cancelled_because = Some(timed_out()),
                _ = spec.cancel.cancelled() => cancelled_because = Some("cancelled by shutdown".to_string()),
            }
        }

        let mut report = RunReport {
            run_id,
            suite: suite.name.clone(),
            version: suite.version,
            content_hash: suite.content_hash.clone(),
            trigger: spec.trigger,
            scheduled_for_ms: spec.scheduled_for_ms,
            status: RunStatus::Completed,
            note: None,
            baseline: baseline(suite, &targets),
            targets,
            started_ms,
            finished_ms: 0,
            passed: 0,
            failed: 0,
            provider_errors: 0,
            results: vec![],
            model_events: vec![],
            equality: None,
            logprob_probes: vec![],
        };
        if let Some(why) = cancelled_because {
            let now = self.clock.now_ms();
            tracing::warn!(suite = %suite.name, run_id, "canary run {why}; recorded as cancelled");
            self.store
                .finish_run_with_note(run_id, "cancelled", Some(&why), &[], now)
                .await?;
            count_metrics(&suite.name, "cancelled", &[]);
            report.status = RunStatus::Cancelled;
            report.note = Some(why);
            report.finished_ms = now;
            return Ok(Started::Ran(Box::new(report)));
        }
        let mut results: Vec<CaseResult> = slots
            .into_iter()
            .map(|r| r.expect("every job finished"))
            .collect();
        if let Some(b) = &report.baseline {
            self.compare_with_baseline(suite, b, &mut results).await;
        }
        let now = self.clock.now_ms();
        report.model_events = self
            .observe_models(suite, &report.targets, &results, now)
            .await?;
        let rows: Vec<CaseResultRow> = results
            .iter()
            .map(|r| to_row(&suite.name, run_id, r))
            .collect();
        self.store
            .finish_run(run_id, "completed", &rows, now)
            .await?;
        let probe_rows: Vec<_> = probes
            .iter()
            .map(|p| probe::to_row(&suite.name, run_id, p))
            .collect();
        self.store.insert_logprob_probes(&probe_rows).await?;
        report.logprob_probes = probes;
        report.passed = results
            .iter()
            .filter(|r| r.outcome == Outcome::Pass)
            .count();
        report.failed = results
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .count();
        report.provider_errors = results
            .iter()
            .filter(|r| r.outcome == Outcome::ProviderError)
            .count();
        if suite.equality.is_some() {
            // After the commit: sampling never holds up or undoes the run's results.
            match self
                .equality(suite, &report.targets, run_id, deadline_at, &spec.cancel)
                .await
            {
                Ok(s) => report.equality = Some(s),
                Err(e) => {
                    tracing::warn!(suite = %suite.name, run_id, "equality test not stored: {e}")
                }
            }
        }
        report.finished_ms = now;
        count_metrics(&report.suite, "completed", &results);
        report.results = results;
        tracing::info!(
            suite = %suite.name, run_id, passed = report.passed, failed = report.failed,
            provider_errors = report.provider_errors, "canary run completed"
        );
        Ok(Started::Ran(Box::new(report)))
    }

    /// One case against one target: ask, then check every expectation.
    async fn run_one(&self, suite: &Suite, job: Job) -> CaseResult {
        let case = &suite.cases[job.case];
        let mut r = CaseResult {
            case_id: case.id.clone(),
            target: job.target.clone(),
            requested_model: job.request.model.clone(),
            outcome: Outcome::ProviderError,
            request: job.request,
            answer: None,
            response_model: None,
            system_fingerprint: None,
            finish_reason: None,
            usage: None,
            latency_ms: None,
            attempts: None,
            verdicts: vec![],
            error: None,
            error_kind: None,
            agrees_with_pinned: None,
            similarity_to_pinned: None,
            created_ms: 0,
        };
        let answer = match self.eval.providers.resolve(&job.target) {
            Ok((provider, _)) => provider.chat(&r.request).await,
            Err(e) => Err(e),
        };
        match answer {
            Err(e) => set_provider_error(&mut r, &e),
            Ok(resp) => {
                // Some servers send `usage` with zero completion tokens for a
                // non-empty answer: that is "unknown", not zero.
                let reported = resp
                    .usage
                    .map(|u| u.completion_tokens)
                    .filter(|t| *t > 0 || resp.content.trim().is_empty());
                let verdicts = self
                    .eval
                    .evaluate(
                        &case.expect,
                        &Answer {
                            text: &resp.content,
                            completion_tokens: reported,
                        },
                        &job.input,
                        &case.context,
                    )
                    .await;
                r.outcome = outcome_of(&verdicts);
                if r.outcome == Outcome::ProviderError
                    && let Some(v) = verdicts.iter().find(|v| v.status == Status::Error)
                {
                    r.error = Some(v.reason.clone());
                    r.error_kind = Some(
                        if v.kind == "similar" {
                            "embedder"
                        } else {
                            "judge"
                        }
                        .to_string(),
                    );
                }
                r.verdicts = verdicts;
                r.answer = Some(resp.content);
                r.response_model = resp.model;
                r.system_fingerprint = resp.system_fingerprint;
                r.finish_reason = resp.finish_reason;
                r.usage = resp.usage;
                r.latency_ms = Some(resp.latency_ms);
                r.attempts = Some(resp.attempts);
            }
        }
        r.created_ms = self.clock.now_ms();
        r
    }

    /// Fills `agrees_with_pinned` and `similarity_to_pinned` of every
    /// non-baseline result from the baseline's result for the same case.
    async fn compare_with_baseline(
        &self,
        suite: &Suite,
        baseline: &str,
        results: &mut [CaseResult],
    ) {
        let base: BTreeMap<String, (Option<String>, Vec<Verdict>)> = results
            .iter()
            .filter(|r| r.target == baseline && r.answer.is_some())
            .map(|r| (r.case_id.clone(), (r.answer.clone(), r.verdicts.clone())))
            .collect();
        let has_embedder = self.eval.providers.resolve(expect::EMBEDDER_MODEL).is_ok();
        for r in results.iter_mut().filter(|r| r.target != baseline) {
            let (Some(answer), Some((Some(base_answer), base_verdicts))) =
                (&r.answer, base.get(&r.case_id))
            else {
                continue;
            };
            let jaccard = agree::token_jaccard(base_answer, answer);
            r.similarity_to_pinned = Some(jaccard);
            let free_text = suite
                .cases
                .iter()
                .find(|c| c.id == r.case_id)
                .is_none_or(|c| c.expect.is_empty());
            r.agrees_with_pinned = if !free_text {
                agree::same_verdicts(base_verdicts, &r.verdicts)
            } else if has_embedder {
                match expect::embed_cosine(&self.eval.providers, base_answer, answer).await {
                    Ok(cos) => Some(cos >= agree::DEFAULT_COSINE),
                    Err(e) => {
                        tracing::warn!(suite = %suite.name, case = %r.case_id, "embedding for agreement failed, using token overlap: {e}");
                        Some(jaccard >= agree::DEFAULT_JACCARD)
                    }
                }
            } else {
                Some(jaccard >= agree::DEFAULT_JACCARD)
            };
        }
    }

    /// Records each target's reported identity; returns the change events.
    /// The identity of a target in a run is the one most of its answers
    /// reported, so a change landing mid-run is recorded once, not flapping.
    async fn observe_models(
        &self,
        suite: &Suite,
        targets: &[String],
        results: &[CaseResult],
        now: i64,
    ) -> Result<Vec<ModelEvent>, StoreError> {
        let mut events = Vec::new();
        for target in targets {
            let mut counts: BTreeMap<(Option<String>, Option<String>), usize> = BTreeMap::new();
            let mut requested = None;
            for r in results
                .iter()
                .filter(|r| &r.target == target && r.answer.is_some())
            {
                requested = Some(r.requested_model.clone());
                *counts
                    .entry((r.response_model.clone(), r.system_fingerprint.clone()))
                    .or_default() += 1;
            }
            let (Some(requested), Some(((model, fp), _))) =
                (requested, counts.into_iter().max_by_key(|(_, n)| *n))
            else {
                continue;
            };
            if model.is_none() && fp.is_none() {
                continue;
            }
            let scope = format!("suite:{}:{target}", suite.name);
            let identity = ModelIdentity {
                response_model: model,
                system_fingerprint: fp,
            };
            if let Some(ev) = self
                .store
                .observe_model(&scope, &requested, &identity, now)
                .await?
            {
                tracing::warn!(
                    scope = %ev.scope, old_model = ?ev.old_model, new_model = ?ev.new_model,
                    old_fingerprint = ?ev.old_fingerprint, new_fingerprint = ?ev.new_fingerprint,
                    "model change observed"
                );
                events.push(ev);
            }
        }
        Ok(events)
    }
}

/// Prometheus counters of runs and case outcomes (no-ops without a recorder).
fn count_metrics(suite: &str, status: &'static str, results: &[CaseResult]) {
    metrics::counter!("canaryd_canary_runs_total", "suite" => suite.to_string(), "status" => status)
        .increment(1);
    for r in results {
        metrics::counter!(
            "canaryd_canary_case_results_total",
            "suite" => suite.to_string(),
            "target" => r.target.clone(),
            "outcome" => r.outcome.as_str()
        )
        .increment(1);
    }
}

/// The baseline target of a run, if it is among the targets run.
fn baseline(suite: &Suite, targets: &[String]) -> Option<String> {
    let b = suite
        .baseline
        .clone()
        .or_else(|| suite.targets.first().cloned())?;
    (targets.contains(&b) && targets.len() > 1).then_some(b)
}

/// Any definite failure fails the case; otherwise an unanswerable check
/// makes it a provider error; otherwise it passed.
pub fn outcome_of(verdicts: &[Verdict]) -> Outcome {
    if verdicts.iter().any(|v| v.status == Status::Fail) {
        Outcome::Fail
    } else if verdicts.iter().any(|v| v.status == Status::Error) {
        Outcome::ProviderError
    } else {
        Outcome::Pass
    }
}

fn set_provider_error(r: &mut CaseResult, e: &ProviderError) {
    r.outcome = Outcome::ProviderError;
    r.error = Some(e.to_string());
    r.error_kind = Some(e.kind().to_string());
}

fn to_row(suite: &str, run_id: i64, r: &CaseResult) -> CaseResultRow {
    CaseResultRow {
        id: 0,
        run_id,
        suite: suite.to_string(),
        case_id: r.case_id.clone(),
        target: r.target.clone(),
        requested_model: r.requested_model.clone(),
        response_model: r.response_model.clone(),
        system_fingerprint: r.system_fingerprint.clone(),
        finish_reason: r.finish_reason.clone(),
        input_tokens: r.usage.map(|u| u.prompt_tokens as i64),
        output_tokens: r.usage.map(|u| u.completion_tokens as i64),
        latency_ms: r.latency_ms.map(|l| l as i64),
        request: serde_json::to_string(&r.request).expect("request serialises"),
        answer: r.answer.clone(),
        outcome: r.outcome.as_str().to_string(),
        verdicts: serde_json::to_string(&r.verdicts).expect("verdicts serialise"),
        error: r.error.clone(),
        agrees_with_pinned: r.agrees_with_pinned,
        created_ms: r.created_ms,
        similarity_to_pinned: r.similarity_to_pinned,
        attempts: r.attempts.map(i64::from),
        error_kind: r.error_kind.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(status: Status) -> Verdict {
        Verdict {
            kind: "contains".into(),
            status,
            reason: String::new(),
            score: None,
        }
    }

    #[test]
    fn a_failure_outweighs_an_error_and_an_error_outweighs_a_pass() {
        assert_eq!(outcome_of(&[]), Outcome::Pass);
        assert_eq!(
            outcome_of(&[v(Status::Pass), v(Status::Pass)]),
            Outcome::Pass
        );
        assert_eq!(
            outcome_of(&[v(Status::Pass), v(Status::Error)]),
            Outcome::ProviderError
        );
        assert_eq!(
            outcome_of(&[v(Status::Error), v(Status::Fail)]),
            Outcome::Fail
        );
    }
}
