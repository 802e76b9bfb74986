//! Equality sampling after a run (`crate::equality`): `samples` extra
//! answers per case and target at the block's temperature, each target
//! tested against its references, samples and tests stored together.
//!
//! It runs after the run's results are committed, under what is left of
//! the run's timeout: sampling that is cut short, or a provider that keeps
//! failing, stores no test for that run (a missing test is "no evidence",
//! never evidence of drift), and the run's own results stand. A run that
//! would take the suite past its daily budget samples nothing.

use std::collections::BTreeMap;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::equality::{self as spec, Reference};
use super::load::Suite;
use super::request;
use super::runner::{DEFAULT_CONCURRENCY, Runner};
use crate::equality;
use crate::equality::mmd::{self, CaseSamples};
use crate::store::{NewEqualityTest, NewSample, StoreError};

/// Reference answers used per case and test, at most this many times the
/// live samples (a history reference holds many runs).
const REFERENCE_FACTOR: usize = 4;
/// Samples older than the longest history reference plus this are pruned.
const KEEP_EXTRA_MS: i64 = 2 * 86_400_000;

/// What sampling did, for the log and `canaryd run`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Sampled {
    pub calls: usize,
    pub errors: usize,
    /// (target, reference, p-value) of each test stored.
    pub tests: Vec<(String, String, f64)>,
    /// Why nothing was sampled or tested, if so.
    pub skipped: Option<String>,
}

impl Runner {
    /// Samples and tests `suite`'s equality block for run `run_id`.
    pub(super) async fn equality(
        &self,
        suite: &Suite,
        targets: &[String],
        run_id: i64,
        deadline: tokio::time::Instant,
        cancel: &CancellationToken,
    ) -> Result<Sampled, StoreError> {
        let mut out = Sampled::default();
        let Some(plan) = &suite.equality else {
            return Ok(out);
        };
        let cases: Vec<Option<&spec::CasePlan>> =
            suite.cases.iter().map(|c| c.equality.as_ref()).collect();
        let calls = spec::calls_per_run(plan, &cases, targets.len());
        let now = self.clock.now_ms();
        if let Some(max) = plan.max_calls_per_day {
            let used = self
                .store
                .equality_samples_since(&suite.name, now - 86_400_000)
                .await?;
            if used + calls > max {
                let why = format!(
                    "equality sampling skipped: {used} calls in the last 24 h + {calls} for this run exceed budget.max_calls_per_day {max}"
                );
                tracing::warn!(suite = %suite.name, run_id, "{why}");
                out.skipped = Some(why);
                return Ok(out);
            }
        }
        // One job per sample: (case index, target, request).
        let mut jobs = Vec::new();
        for (i, case) in suite.cases.iter().enumerate() {
            let k = plan.samples_of(case.equality.as_ref());
            for target in targets {
                let Ok((_, model)) = self.eval.providers.resolve(target) else {
                    continue;
                };
                let Ok((mut req, _)) = request::build(suite, case, &model.model) else {
                    continue;
                };
                req.temperature = Some(plan.temperature_of(case.equality.as_ref()));
                // A fixed seed would make the samples one answer repeated.
                req.seed = None;
                if plan.max_tokens.is_some() {
                    req.max_tokens = plan.max_tokens;
                }
                for _ in 0..k {
                    jobs.push((i, target.clone(), req.clone()));
                }
            }
        }
        out.calls = jobs.len();
        let concurrency = suite.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1);
        let mut stream = futures::stream::iter(jobs.into_iter().map(|(i, target, req)| {
            let this = self.clone();
            async move {
                let r = match this.eval.providers.resolve(&target) {
                    Ok((p, _)) => p.chat(&req).await.map(|r| r.content),
                    Err(e) => Err(e),
                };
                (i, target, r)
            }
        }))
        .buffer_unordered(concurrency);
        // (target, case index) → answers.
        let mut got: BTreeMap<(String, usize), Vec<String>> = BTreeMap::new();
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some((i, target, Ok(text))) => got.entry((target, i)).or_default().push(text),
                    Some((_, _, Err(_))) => out.errors += 1,
                    None => break,
                },
                _ = &mut sleep => {
                    out.skipped = Some("equality sampling cut short by the run's timeout; no test stored".into());
                    break;
                }
                _ = cancel.cancelled() => {
                    out.skipped = Some("equality sampling cancelled by shutdown; no test stored".into());
                    break;
                }
            }
        }
        drop(stream);
        if let Some(why) = &out.skipped {
            tracing::warn!(suite = %suite.name, run_id, "{why}");
            return Ok(out);
        }
        let started = now;
        let runs_day = spec::runs_per_day(suite.schedule.as_deref(), suite.timezone.as_deref());
        let mut tests = Vec::new();
        for target in targets {
            let refs = plan.references_for(target);
            if refs.is_empty() {
                continue;
            }
            let h = equality::threshold(runs_day, refs.len());
            for r in &refs {
                let reference: BTreeMap<usize, Vec<String>> = match r {
                    Reference::Target(t) => got
                        .iter()
                        .filter(|((tt, _), _)| tt == t)
                        .map(|((_, i), v)| (*i, v.clone()))
                        .collect(),
                    Reference::History(ms) => {
                        let rows = self
                            .store
                            .equality_history(&suite.name, target, started - ms, started)
                            .await?;
                        let mut by: BTreeMap<usize, Vec<String>> = BTreeMap::new();
                        for (case_id, answer) in rows {
                            if let Some(i) = suite.cases.iter().position(|c| c.id == case_id) {
                                by.entry(i).or_default().push(answer);
                            }
                        }
                        by
                    }
                };
                let mut samples = Vec::new();
                for (i, case) in suite.cases.iter().enumerate() {
                    let (Some(live), Some(refs)) =
                        (got.get(&(target.clone(), i)), reference.get(&i))
                    else {
                        continue;
                    };
                    samples.push(CaseSamples {
                        case_id: &case.id,
                        live: live.iter().map(String::as_str).collect(),
                        reference: spread(refs, REFERENCE_FACTOR * live.len()),
                    });
                }
                let seed = mmd::mix(
                    mmd::hash_str(&format!("{}\u{0}{target}\u{0}{}", suite.name, r.label())),
                    run_id as u64,
                );
                if let Some(t) = mmd::run_test(&samples, seed, mmd::PERMUTATIONS) {
                    out.tests.push((target.clone(), r.label(), t.p_value));
                    tests.push(NewEqualityTest {
                        target: target.clone(),
                        reference: r.label(),
                        p_value: t.p_value,
                        log_e: t.log_e,
                        threshold: h,
                        cases: t.cases as u64,
                        top: t.top,
                    });
                }
            }
        }
        let rows: Vec<NewSample> = got
            .into_iter()
            .flat_map(|((target, i), answers)| {
                let case_id = suite.cases[i].id.clone();
                answers.into_iter().map(move |answer| NewSample {
                    case_id: case_id.clone(),
                    target: target.clone(),
                    answer,
                })
            })
            .collect();
        let at = self.clock.now_ms();
        self.store
            .record_equality(&suite.name, run_id, at, &rows, &tests)
            .await?;
        let keep = plan.history_ms.unwrap_or(0) + KEEP_EXTRA_MS;
        self.store
            .prune_equality_samples(&suite.name, at - keep, crate::store::RETENTION_BATCH)
            .await?;
        for (target, reference, p) in &out.tests {
            tracing::info!(suite = %suite.name, run_id, target = %target, reference = %reference, p_value = p, "equality test");
        }
        Ok(out)
    }
}

/// At most `n` of `v`, evenly spread over it (`v` is newest first, so a
/// long history is sampled across its whole span, not only its last runs).
fn spread(v: &[String], n: usize) -> Vec<&str> {
    if v.len() <= n || n == 0 {
        return v.iter().map(String::as_str).collect();
    }
    (0..n).map(|j| v[j * v.len() / n].as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_both_ends_of_a_long_history() {
        let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let s = spread(&v, 4);
        assert_eq!(s, ["0", "25", "50", "75"]);
        assert_eq!(spread(&v[..3], 4).len(), 3);
    }
}
