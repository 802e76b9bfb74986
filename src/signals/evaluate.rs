//! One evaluation: every detector over every stream and suite at `now`,
//! then Benjamini–Hochberg across all window tests together, then the
//! model-change escalation. [`evaluate_snapshot`] is pure (the backtest
//! calls it at every simulated step); [`evaluate`] loads the snapshot the
//! daemon needs from the store and calls it.

use std::collections::{BTreeMap, BTreeSet};

use super::DetectorConfig;
use super::canary::{CanaryObs, canary_regression};
use super::embedding::embedding_drift;
use super::finding::{Finding, Rule, Severity, Status};
use super::judge_drop::judge_score_drop;
use super::length::length_drift;
use super::model_change::model_change;
use super::rates::rate_shift;
use super::rollup::StreamRollups;
use super::stats::benjamini_hochberg;
use super::verdict::Verdict;
use super::window::Windows;
use crate::store::{ModelEvent, Store, StoreError};

/// Everything the detectors read, for some span of time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub streams: BTreeMap<String, StreamRollups>,
    /// suite → case results.
    pub suites: BTreeMap<String, Vec<CanaryObs>>,
    pub model_events: Vec<ModelEvent>,
}

/// Runs every detector; findings sorted by (stream, rule, dimension).
pub fn evaluate_snapshot(snap: &Snapshot, now_ms: i64, cfg: &DetectorConfig) -> Vec<Finding> {
    let w = Windows::new(now_ms, cfg);
    // The CUSUM threshold accounts for every chart run together.
    let mut cfg = cfg.clone();
    cfg.sequential.charts = snap.streams.values().map(charts).sum::<usize>().max(1);
    let cfg = &cfg;
    let mut verdicts: Vec<Verdict> = Vec::new();
    for (stream, data) in &snap.streams {
        for (judge, hours) in &data.scores {
            verdicts.push(judge_score_drop(stream, judge, hours, &w, cfg));
        }
        if !data.hours.is_empty() {
            verdicts.push(rate_shift(Rule::RefusalRateShift, stream, data, &w, cfg));
            verdicts.push(rate_shift(Rule::TruncationRate, stream, data, &w, cfg));
            verdicts.push(length_drift(stream, data, &w, cfg));
        }
        if !data.embedding.is_empty() {
            verdicts.push(embedding_drift(stream, data, &w, cfg));
        }
    }
    for (suite, obs) in &snap.suites {
        verdicts.extend(canary_regression(suite, obs, &w, cfg));
    }
    let subjects: Vec<String> = snap
        .streams
        .keys()
        .cloned()
        .chain(snap.suites.keys().map(|s| format!("suite:{s}")))
        .collect();
    verdicts.extend(model_change(&snap.model_events, &subjects, &w));

    // False-discovery control across every window test of this evaluation.
    let tested: Vec<usize> = (0..verdicts.len())
        .filter(|&i| {
            verdicts[i].finding.status != Status::InsufficientData
                && verdicts[i].finding.p_value.is_some()
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
    findings
        .sort_by(|a, b| (&a.stream, a.rule, &a.dimension).cmp(&(&b.stream, b.rule, &b.dimension)));
    findings
}

/// Sequential charts a stream runs: one per judge, refusal two up and one
/// down, truncation two up, length up and down, embedding.
fn charts(data: &StreamRollups) -> usize {
    data.scores.len()
        + if data.hours.is_empty() { 0 } else { 7 }
        + usize::from(!data.embedding.is_empty())
}

/// Loads what the windows at `now_ms` need and evaluates it.
pub async fn evaluate(
    store: &Store,
    now_ms: i64,
    cfg: &DetectorConfig,
) -> Result<Vec<Finding>, StoreError> {
    let (from, to) = Windows::new(now_ms, cfg).span();
    let snap = store.load_snapshot(from, to.max(now_ms + 1)).await?;
    Ok(evaluate_snapshot(&snap, now_ms, cfg))
}
