//! `judge_drift`: has a judge itself changed? Each judge scores its own
//! fixed anchor pairs (the judge canaries: a response with a human-labelled
//! expected score and a tolerance) every `canary_interval_secs`. A pair is
//! *off* when its score is further from the expected one than its
//! tolerance. The detector is a CUSUM of hourly Bernoulli log-likelihood
//! ratios of the share of pairs off: "healthy" (share `p0`) against "the
//! judge moved" (share `min_off_share`).
//!
//! Continuous-monitoring care (`/work/shared/notes/statistics.md`):
//! - Runs of the same pair in one hour are not independent evidence (a
//!   judge at temperature 0 repeats itself), so each pair contributes once
//!   per hour, with the fraction of that hour's runs it was off. The
//!   increment stays a valid likelihood-ratio bound (its expectation under
//!   the null is at most one, by convexity), so the in-control run length
//!   is at least e^h hours whatever `canary_interval_secs` is.
//! - `p0` is never a plug-in estimate from a few hours: it is the labelled
//!   anchors' floor `healthy_off_share` until the baseline holds enough
//!   pair-hours, then the upper confidence bound of the baseline's own off
//!   share (a judge that always misses one pair does not alarm for it).
//! - Effect and evidence are two conditions: the chart must alarm *and*
//!   the share off since its change point must reach `min_off_share`; it
//!   resolves when the last `resolve_after_hours` are below the resolve
//!   level (hysteresis), and firing periods are left out of the baseline.
//!
//! [`judge_suspect`] is the attribution the score-drop alerts use: the
//! judge's drift is firing, or its latest canary run already has
//! `min_off_share` of its pairs off (so the very first hour of a judge
//! update cannot page as a product regression before the chart alarms).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::finding::{Rule, Severity, Status};
use super::sequential::{cusum, in_spans};
use super::verdict::{Decision, Subject, Verdict, verdict};
use super::window::{HOUR_MS, Look, floor_hour};

/// One stored judge-canary score.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeCanaryObs {
    pub at_ms: i64,
    /// Index of the pair in the judge file, with the file's version: a pair
    /// is the same anchor only within one version.
    pub pair: (i64, i64),
    pub score: f64,
    pub expected: f64,
    pub tolerance: f64,
    /// The model the judge call reported.
    pub model: Option<String>,
}

impl JudgeCanaryObs {
    pub fn off(&self) -> bool {
        (self.score - self.expected).abs() > self.tolerance
    }
}

/// `detectors.judge_drift`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeDriftConfig {
    /// Share of a judge's anchor pairs outside their tolerance that means
    /// the judge changed (the effect that must be reached to fire).
    pub min_off_share: f64,
    /// The share of pairs assumed off for a healthy judge before its
    /// baseline can say better, and the least ever assumed.
    pub healthy_off_share: f64,
    /// Pair-hours the baseline needs before its own off share is used.
    pub min_baseline_pair_hours: u64,
}

impl Default for JudgeDriftConfig {
    fn default() -> Self {
        JudgeDriftConfig {
            min_off_share: 0.5,
            healthy_off_share: 0.05,
            min_baseline_pair_hours: 48,
        }
    }
}

/// Off fraction per pair in each hour: hour → pair → (runs off, runs).
type Hours = BTreeMap<i64, BTreeMap<(i64, i64), (f64, f64)>>;

fn by_hour(obs: &[JudgeCanaryObs]) -> Hours {
    let mut h: Hours = BTreeMap::new();
    for o in obs {
        let e = h
            .entry(floor_hour(o.at_ms))
            .or_default()
            .entry(o.pair)
            .or_default();
        e.0 += f64::from(u8::from(o.off()));
        e.1 += 1.0;
    }
    h
}

/// (Σ off fractions, pair-hours) over hours in `span`, skipping `quiet`.
fn share(h: &Hours, span: (i64, i64), quiet: &[(i64, i64)]) -> (f64, f64) {
    h.range(span.0..span.1)
        .filter(|(t, _)| !in_spans(quiet, **t))
        .flat_map(|(_, pairs)| pairs.values())
        .fold((0.0, 0.0), |(k, n), (off, runs)| (k + off / runs, n + 1.0))
}

/// The null off share: the anchors' floor, or the upper confidence bound
/// (one-sided 95 %) of the baseline's own share once it has enough data.
fn null_share(base: (f64, f64), c: &JudgeDriftConfig) -> f64 {
    let (k, n) = base;
    if n < c.min_baseline_pair_hours as f64 {
        return c.healthy_off_share;
    }
    let p = (k + 0.5) / (n + 1.0);
    let ucb = p + 1.645 * (p * (1.0 - p) / (n + 1.0)).sqrt();
    ucb.max(c.healthy_off_share)
}

/// Judges one judge's canary scores (`obs`, any order).
pub fn judge_drift(judge: &str, obs: &[JudgeCanaryObs], look: &Look<'_>) -> Verdict {
    let (w, cfg) = (look.w, look.cfg);
    let c = &cfg.judge_drift;
    let stream = format!("judge:{judge}");
    let hours = by_hour(obs);
    let base = share(&hours, look.baseline(), look.quiet);
    let p0 = null_share(base, c);
    let p1 = c.min_off_share.clamp(0.01, 0.99);
    let recent_from = w.current.1 - i64::from(cfg.resolve_after_hours.max(1)) * HOUR_MS;
    let recent = share(&hours, (recent_from, w.current.1), &[]);
    let subject = Subject {
        rule: Rule::JudgeDrift,
        stream: &stream,
        dimension: Some(judge),
        at_ms: w.now_ms,
        samples: recent.1 as u64,
        baseline_samples: base.1 as u64,
    };
    if p0 >= p1 {
        return Verdict::warming_up(
            subject,
            p1,
            format!(
                "judge {judge}: its anchors are off too often in the baseline ({:.0} % of {} pair-hours) to tell a change of {:.0} %",
                100.0 * base.0 / base.1.max(1.0),
                base.1,
                100.0 * p1
            ),
        );
    }
    if recent.1 == 0.0 {
        return Verdict::insufficient(
            subject,
            p1,
            format!(
                "judge {judge}: no canary scores in the last {} hours",
                cfg.resolve_after_hours.max(1)
            ),
        );
    }
    let (up, down) = ((p1 / p0).ln(), ((1.0 - p1) / (1.0 - p0)).ln());
    let seq: Vec<(i64, f64)> = hours
        .range(w.sequential.0..w.sequential.1)
        .map(|(&t, pairs)| {
            let llr: f64 = pairs
                .values()
                .map(|(off, runs)| {
                    let f = off / runs;
                    f * up + (1.0 - f) * down
                })
                .sum();
            (t, llr)
        })
        .collect();
    let chart = cusum(seq.iter().copied());
    // The largest value of the current excursion: an alarm that the chart
    // reached since its change point, even if a healthy hour lowered it.
    let peak = chart.since_ms.map_or(0.0, |since| {
        let mut s: f64 = 0.0;
        let mut max: f64 = 0.0;
        for &(t, llr) in &seq {
            if t >= since {
                s = (s + llr).max(0.0);
                max = max.max(s);
            }
        }
        max
    });
    let segment = chart
        .since_ms
        .map(|since| share(&hours, (since, w.current.1), &[]))
        .unwrap_or((0.0, 0.0));
    let seg_share = segment.0 / segment.1.max(1.0);
    let recent_share = recent.0 / recent.1;
    let firing = cfg.sequential.enabled
        && peak > look.h
        && seg_share >= p1
        && recent_share >= cfg.resolve_level * p1;
    let (value, n) = if firing {
        (seg_share, segment.1)
    } else {
        (recent_share, recent.1)
    };
    // The judge model reported now, and the one before it if it changed.
    let latest_model = obs
        .iter()
        .max_by_key(|o| o.at_ms)
        .and_then(|o| o.model.clone());
    let previous_model = latest_model.as_deref().and_then(|now| {
        obs.iter()
            .filter(|o| o.model.as_deref().is_some_and(|m| m != now))
            .max_by_key(|o| o.at_ms)
            .and_then(|o| o.model.clone())
    });
    let mean_dev = {
        let seg: Vec<f64> = obs
            .iter()
            .filter(|o| o.at_ms >= chart.since_ms.unwrap_or(recent_from))
            .map(|o| o.score - o.expected)
            .collect();
        seg.iter().sum::<f64>() / seg.len().max(1) as f64
    };
    let model_note = match (latest_model.as_deref(), previous_model.as_deref()) {
        (Some(now), Some(before)) => format!("; judge model {before} → {now}"),
        (Some(now), None) => format!("; judge model {now}"),
        _ => String::new(),
    };
    let summary = if firing {
        format!(
            "judge {judge} changed: {:.0} % of its canary pairs outside tolerance since {} (baseline {:.0} %, mean deviation {mean_dev:+.2} points, n={n} pair-hours, CUSUM {:.1} > {:.1}){model_note}",
            100.0 * value,
            super::fmt_time(chart.since_ms.unwrap_or(w.now_ms)),
            100.0 * p0,
            peak,
            look.h
        )
    } else {
        format!(
            "judge {judge}: {:.0} % of its canary pairs outside tolerance over the recent hours (n={n} pair-hours){model_note}",
            100.0 * value
        )
    };
    verdict(
        Subject {
            samples: n as u64,
            ..subject
        },
        Decision {
            value,
            baseline: p0,
            threshold: p1,
            p_value: None,
            // Every judged stream's scores are now in doubt: the people
            // who own the judges need to know, but it is not an outage.
            severity: Severity::Warning,
            window_effect: false,
            direct: firing,
            resolve: recent_share < cfg.resolve_level * p1,
            alpha: cfg.alpha,
            summary,
        },
    )
}

/// The judges whose scores cannot be trusted right now: `judge_drift` is
/// firing, or the judge's latest canary run has at least `min_off_share`
/// of its pairs off.
pub fn judge_suspect(
    drift: &[super::Finding],
    canaries: &BTreeMap<String, Vec<JudgeCanaryObs>>,
    c: &JudgeDriftConfig,
) -> std::collections::BTreeSet<String> {
    let mut out: std::collections::BTreeSet<String> = drift
        .iter()
        .filter(|f| f.rule == Rule::JudgeDrift && f.status == Status::Firing)
        .filter_map(|f| f.dimension.clone())
        .collect();
    for (judge, obs) in canaries {
        let Some(last) = obs.iter().map(|o| o.at_ms).max() else {
            continue;
        };
        let run: Vec<&JudgeCanaryObs> = obs.iter().filter(|o| o.at_ms == last).collect();
        let off = run.iter().filter(|o| o.off()).count();
        if off as f64 >= c.min_off_share * run.len() as f64 && off > 0 {
            out.insert(judge.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::DetectorConfig;
    use crate::signals::window::Windows;

    const NOW: i64 = 1_000 * HOUR_MS + 30 * 60_000;

    /// Hourly runs of `pairs` anchors from `from_h` hours ago; `score(h, i)`.
    fn obs(from_h: i64, pairs: i64, score: impl Fn(i64, i64) -> f64) -> Vec<JudgeCanaryObs> {
        let mut v = Vec::new();
        for h in (0..from_h).rev() {
            for i in 0..pairs {
                v.push(JudgeCanaryObs {
                    at_ms: NOW - h * HOUR_MS,
                    pair: (2, i),
                    score: score(h, i),
                    expected: 5.0,
                    tolerance: 1.0,
                    model: Some(if h < 3 { "judge-2" } else { "judge-1" }.into()),
                });
            }
        }
        v
    }

    fn run(o: &[JudgeCanaryObs]) -> Verdict {
        let cfg = DetectorConfig::default();
        let w = Windows::new(NOW, &cfg);
        let look = Look {
            w: &w,
            cfg: &cfg,
            h: cfg.sequential.threshold(),
            quiet: &[],
        };
        judge_drift("groundedness", o, &look)
    }

    #[test]
    fn a_healthy_judge_never_fires_even_with_a_pair_it_always_misses() {
        // Pair 1 is always off by 2 (mislabelled): the baseline learns it.
        let v = run(&obs(
            300,
            3,
            |h, i| if i == 1 || h % 37 == 0 { 3.0 } else { 5.0 },
        ));
        assert_eq!(v.finding.status, Status::Ok, "{:?}", v.finding);
    }

    #[test]
    fn canary_runs_every_few_seconds_are_not_more_evidence_than_one_an_hour() {
        // Each anchor is off for the whole last hour, scored 600 times.
        let mut o = obs(200, 1, |_, _| 5.0);
        for k in 0..600 {
            o.push(JudgeCanaryObs {
                at_ms: NOW - k * 3_000,
                pair: (2, 0),
                score: 3.0,
                expected: 5.0,
                tolerance: 1.0,
                model: None,
            });
        }
        let v = run(&o);
        assert_ne!(v.finding.status, Status::Firing, "{:?}", v.finding);
    }

    #[test]
    fn a_judge_update_fires_within_hours_and_names_the_model_change() {
        let v = run(&obs(300, 3, |h, _| if h < 3 { 3.0 } else { 5.0 }));
        assert_eq!(v.finding.status, Status::Firing, "{:?}", v.finding);
        assert!(
            v.finding.summary.contains("judge-1 → judge-2"),
            "{}",
            v.finding.summary
        );
        assert!(v.finding.summary.contains("-2.00"), "{}", v.finding.summary);
        // Without a baseline the labelled anchors speak for themselves.
        let young = run(&obs(4, 3, |h, _| if h < 3 { 3.0 } else { 5.0 }));
        assert_eq!(young.finding.status, Status::Firing, "{:?}", young.finding);
    }

    #[test]
    fn one_pair_slipping_out_of_many_is_not_a_judge_change() {
        let v = run(&obs(
            300,
            6,
            |h, i| if h < 12 && i == 0 { 3.0 } else { 5.0 },
        ));
        assert_ne!(v.finding.status, Status::Firing, "{:?}", v.finding);
    }

    #[test]
    fn the_latest_run_makes_a_judge_suspect_before_the_chart_alarms() {
        let c = JudgeDriftConfig::default();
        let mut canaries = BTreeMap::new();
        canaries.insert(
            "g".to_string(),
            obs(5, 2, |h, _| if h == 0 { 2.0 } else { 5.0 }),
        );
        canaries.insert(
            "half".to_string(),
            obs(5, 2, |h, i| if h == 0 && i == 0 { 2.0 } else { 5.0 }),
        );
        canaries.insert("fine".to_string(), obs(5, 2, |_, _| 5.0));
        let s = judge_suspect(&[], &canaries, &c);
        assert_eq!(s.into_iter().collect::<Vec<_>>(), ["g", "half"]);
    }
}
