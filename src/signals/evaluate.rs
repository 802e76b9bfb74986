//! One evaluation: every detector over every stream and suite at `now`,
//! then Benjamini–Hochberg across the canary window tests, then the
//! model-change escalation. [`evaluate_snapshot`] is pure: the daemon and
//! the backtest load a [`Snapshot`] and call it at every step.

use std::collections::{BTreeMap, BTreeSet};

use super::DetectorConfig;
use super::canary::{CanaryObs, canary_regression};
use super::embedding::embedding_drift;
use super::finding::{Finding, Rule, Severity, Status};
use super::judge_drift::{JudgeCanaryObs, judge_drift, judge_suspect};
use super::judge_drop::judge_score_drop;
use super::length::length_drift;
use super::logprob_shift::{ProbeObs, logprob_shift};
use super::model_change::ModelEvent;
use super::model_change::model_change;
use super::rates::rate_shift;
use super::rollup::StreamRollups;
use super::stats::benjamini_hochberg;
use super::verdict::Verdict;
use super::window::{HOUR_MS, Look, Windows};

/// The alert a quiet span belongs to: (rule, stream, dimension).
pub type QuietKey = (Rule, String, Option<String>);

/// Everything the detectors read, for some span of time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub streams: BTreeMap<String, StreamRollups>,
    /// suite → case results.
    pub suites: BTreeMap<String, Vec<CanaryObs>>,
    pub model_events: Vec<ModelEvent>,
    /// judge → its canary (anchor) scores.
    pub judge_canaries: BTreeMap<String, Vec<JudgeCanaryObs>>,
    /// suite → equality tests (`model_drift`).
    pub equality: BTreeMap<String, Vec<super::model_drift::EqualityObs>>,
    /// suite → logprob probe results (the latest runs of each target).
    pub logprobs: BTreeMap<String, Vec<ProbeObs>>,
    /// Spans in which an alert on a signal was open: left out of that
    /// signal's baseline (see [`quiet_span`]).
    pub quiet: BTreeMap<QuietKey, Vec<(i64, i64)>>,
}

impl Snapshot {
    pub fn quiet_of(&self, rule: Rule, stream: &str, dimension: Option<&str>) -> &[(i64, i64)] {
        self.quiet
            .get(&(rule, stream.to_string(), dimension.map(str::to_string)))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// The span to leave out of a signal's baseline for an alert that opened at
/// `opened_ms` and resolved at `resolved_ms` (or is still open): from
/// [`quiet_lead`] before it opened — the change began before the alarm — to
/// an hour after it resolved.
pub fn quiet_span(opened_ms: i64, resolved_ms: Option<i64>, cfg: &DetectorConfig) -> (i64, i64) {
    (
        opened_ms - quiet_lead(cfg),
        resolved_ms.map_or(i64::MAX, |r| r + HOUR_MS),
    )
}

/// When the alert on a signal that is still open opened, from its quiet
/// spans (the inverse of [`quiet_span`] for the span that has no end).
pub fn opened_at(quiet: &[(i64, i64)], cfg: &DetectorConfig) -> Option<i64> {
    quiet
        .iter()
        .filter(|s| s.1 == i64::MAX)
        .map(|s| s.0 + quiet_lead(cfg))
        .max()
}

/// `resolve_after_hours` in ms: the span a resolution is measured over.
pub fn resolve_span(cfg: &DetectorConfig) -> i64 {
    i64::from(cfg.resolve_after_hours.max(1)) * HOUR_MS
}

/// How long before an alert opened its change may have begun: the CUSUM's
/// change point lies anywhere in its lookback (`sequential.lookback_hours`),
/// so the quiet span leads the opening by that much (and never by less
/// than the resolve span). It led by the resolve span alone, six hours:
/// a 6 % refusal rate at 20 records an hour alarmed 34 hours after it
/// began, the 28 hours before the lead entered the baseline (0.9 % → 1.7 %,
/// later 2.9 %), and the persisting change resolved and refired three times
/// (held-out-style histories, `cli/backtest/varied.rs`).
pub fn quiet_lead(cfg: &DetectorConfig) -> i64 {
    resolve_span(cfg).max(i64::from(cfg.sequential.lookback_hours) * HOUR_MS)
}

/// Runs every detector; findings sorted by (stream, rule, dimension).
pub fn evaluate_snapshot(snap: &Snapshot, now_ms: i64, cfg: &DetectorConfig) -> Vec<Finding> {
    let w = Windows::new(now_ms, cfg);
    let mut verdicts: Vec<Verdict> = Vec::new();
    for (stream, data) in &snap.streams {
        // The false-alarm budget is per stream: its charts share it.
        let mut c = cfg.sequential.clone();
        c.charts = charts(data).max(1);
        let h = c.threshold();
        let look = |rule, dim: Option<&str>| Look {
            w: &w,
            cfg,
            h,
            quiet: snap.quiet_of(rule, stream, dim),
        };
        for (judge, hours) in &data.scores {
            let l = look(Rule::JudgeScoreDrop, Some(judge));
            verdicts.push(judge_score_drop(stream, judge, hours, &l));
        }
        if !data.hours.is_empty() {
            for rule in [Rule::RefusalRateShift, Rule::TruncationRate] {
                verdicts.push(rate_shift(rule, stream, data, &look(rule, None)));
            }
            verdicts.push(length_drift(stream, data, &look(Rule::LengthDrift, None)));
        }
        if !data.embedding.is_empty() {
            verdicts.push(embedding_drift(
                stream,
                data,
                &look(Rule::EmbeddingDrift, None),
            ));
        }
    }
    for (suite, obs) in &snap.suites {
        verdicts.extend(canary_regression(suite, obs, &w, cfg));
    }
    for (suite, obs) in &snap.logprobs {
        verdicts.extend(logprob_shift(suite, obs, &w));
    }
    let subjects: Vec<String> = snap
        .streams
        .keys()
        .cloned()
        .chain(snap.suites.keys().map(|s| format!("suite:{s}")))
        .collect();
    verdicts.extend(model_change(&snap.model_events, &subjects, &w));
    for (judge, obs) in &snap.judge_canaries {
        // One chart per judge, on its own subject `judge:<name>`.
        let mut c = cfg.sequential.clone();
        c.charts = 1;
        let stream = format!("judge:{judge}");
        let look = Look {
            w: &w,
            cfg,
            h: c.threshold(),
            quiet: snap.quiet_of(Rule::JudgeDrift, &stream, Some(judge)),
        };
        verdicts.push(judge_drift(judge, obs, &look));
    }
    for (suite, obs) in &snap.equality {
        verdicts.extend(super::model_drift::model_drift(suite, obs, now_ms));
    }

    // False-discovery control across every window test of this evaluation.
    let tested: Vec<usize> = (0..verdicts.len())
        .filter(|&i| {
            verdicts[i].finding.status != Status::InsufficientData
                && verdicts[i].finding.p_value.is_some()
                // Its own per-look level over a year of looks, not a window test.
                && verdicts[i].finding.rule != Rule::LogprobShift
        })
        .collect();
    let p: Vec<f64> = tested
        .iter()
        .map(|&i| verdicts[i].finding.p_value.unwrap_or(1.0))
        .collect();
    let discoveries = benjamini_hochberg(&p, cfg.alpha);
    let mut significant = vec![false; verdicts.len()];
    for (&i, d) in tested.iter().zip(discoveries) {
        significant[i] = d;
    }
    for (v, s) in verdicts.iter_mut().zip(significant) {
        v.resolve(s);
    }

    let mut findings: Vec<Finding> = verdicts.into_iter().map(|v| v.finding).collect();
    let troubled: BTreeSet<String> = findings
        .iter()
        .filter(|f| {
            f.rule != Rule::ModelChange
                && f.status == Status::Firing
                && f.severity >= Severity::Warning
        })
        .map(|f| f.stream.clone())
        .collect();
    for f in &mut findings {
        if f.rule == Rule::ModelChange && f.status == Status::Firing && troubled.contains(&f.stream)
        {
            f.severity = Severity::Warning;
            f.summary
                .push_str(" — with other detectors firing on this stream");
        }
    }
    attribute_to_judges(&mut findings, snap, cfg);
    findings
        .sort_by(|a, b| (&a.stream, a.rule, &a.dimension).cmp(&(&b.stream, b.rule, &b.dimension)));
    findings
}

/// A score drop by a judge whose own anchors moved is the judge's doing,
/// not the product's: it is marked "judge changed" and demoted to `info`
/// (informational: routes that page match `warning`/`critical`), and the
/// judge's shift is its own `judge_drift` alert.
fn attribute_to_judges(findings: &mut [Finding], snap: &Snapshot, cfg: &DetectorConfig) {
    let suspect = judge_suspect(findings, &snap.judge_canaries, &cfg.judge_drift);
    for f in findings.iter_mut() {
        if f.rule == Rule::JudgeScoreDrop
            && f.status == Status::Firing
            && f.dimension.as_ref().is_some_and(|j| suspect.contains(j))
        {
            f.severity = Severity::Info;
            f.summary.push_str(JUDGE_CHANGED);
        }
    }
}

/// The mark on a score drop attributed to its judge (every channel shows
/// the summary; the page and the incident export look for it).
pub const JUDGE_CHANGED: &str = " — judge changed: this judge's own canaries shifted (see judge_drift), so the drop is informational";

/// Sequential charts a stream runs: two per judge, refusal three up and one
/// down, truncation three up, length up and down, embedding.
fn charts(data: &StreamRollups) -> usize {
    2 * data.scores.len()
        + if data.hours.is_empty() { 0 } else { 9 }
        + usize::from(!data.embedding.is_empty())
}
