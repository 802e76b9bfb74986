//! View models of the overview page and what every page shares (periods,
//! health, pass rates): what the templates print, built from stored data
//! and a `now` taken once per request. The stream page is in `stream_view`.
//!
//! Builders are pure functions (data, periods) → view, so the numbers on the
//! pages are unit-tested without a database or a clock. Every string here is
//! plain text that the `.html` templates escape; chart markup is the only
//! pre-rendered HTML and comes from `charts`, which escapes its own text.

use std::collections::BTreeMap;

use serde::Serialize;

use super::charts;
use super::fmt::{enc, fmt_ago, model_change_label};
use crate::store::{AlertRow, HealthPoint, HourRow, ModelEvent, RunRow, ScoreHourRow};

pub use super::stream_view::*;

pub const HOUR_MS: i64 = 3_600_000;

/// The time ranges of one page view, all derived from one `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Periods {
    pub now_ms: i64,
    /// End of the charts: the end of the current hour.
    pub end_ms: i64,
    /// Start of the charts.
    pub chart_from_ms: i64,
    /// The detectors' current window `[window_from_ms, end_ms)`.
    pub window_from_ms: i64,
    /// The baseline `[baseline_from_ms, window_from_ms)`.
    pub baseline_from_ms: i64,
}

impl Periods {
    /// `chart_hours` shown, against the detectors' window and baseline lengths.
    pub fn new(now_ms: i64, chart_hours: i64, window_hours: i64, baseline_days: i64) -> Periods {
        let end_ms = now_ms.div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS;
        let window_from_ms = end_ms - window_hours.max(1) * HOUR_MS;
        Periods {
            now_ms,
            end_ms,
            chart_from_ms: end_ms - chart_hours.max(1) * HOUR_MS,
            window_from_ms,
            baseline_from_ms: window_from_ms - baseline_days.max(1) * 24 * HOUR_MS,
        }
    }

    /// Earliest time any view needs data from.
    pub fn data_from_ms(&self) -> i64 {
        self.chart_from_ms.min(self.baseline_from_ms)
    }

    pub(super) fn in_baseline(&self, t: i64) -> bool {
        t >= self.baseline_from_ms && t < self.window_from_ms
    }

    /// The start of every hour shown in the charts.
    pub fn chart_hours(&self) -> impl Iterator<Item = i64> + '_ {
        (self.chart_from_ms..self.end_ms).step_by(HOUR_MS as usize)
    }
}

/// Mean and standard deviation from count, sum and sum of squares.
pub fn moments(n: f64, sum: f64, sumsq: f64) -> Option<(f64, f64)> {
    if n < 1.0 {
        return None;
    }
    let mean = sum / n;
    let var = (sumsq / n - mean * mean).max(0.0);
    Some((mean, var.sqrt()))
}

/// Per judge: (n, sum, sumsq) over the baseline.
pub(super) fn score_baselines(
    scores: &[ScoreHourRow],
    p: &Periods,
) -> BTreeMap<String, (f64, f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for r in scores.iter().filter(|r| p.in_baseline(r.hour_ms)) {
        let e = out.entry(r.judge.clone()).or_default();
        e.0 += r.n as f64;
        e.1 += r.sum;
        e.2 += r.sumsq;
    }
    out
}

/// A provisional per-hour health indicator (0–100) computed from the
/// roll-ups, used until the detectors' `health_scores` table exists. It
/// mirrors the detectors' weights: a judge-score drop costs up to 30 points
/// (in full at one baseline standard deviation), refusals up to 20 and
/// truncations up to 15 (in full at three times the baseline rate). Hourly
/// rates are shrunk towards the baseline so a quiet hour with one refusal
/// does not look like an incident. Hours without data are `None`.
pub fn provisional_health(
    hourly: &[HourRow],
    scores: &[ScoreHourRow],
    p: &Periods,
) -> Vec<(i64, Option<f64>)> {
    let base = |f: fn(&HourRow) -> i64| {
        let (k, n) = hourly
            .iter()
            .filter(|r| p.in_baseline(r.hour_ms))
            .fold((0i64, 0i64), |(k, n), r| (k + f(r), n + r.n));
        (n > 0).then(|| k as f64 / n as f64)
    };
    let base_refusal = base(|r| r.refusals);
    let base_trunc = base(|r| r.truncations);
    let judges: BTreeMap<String, (f64, f64)> = score_baselines(scores, p)
        .into_iter()
        .filter_map(|(j, (n, s, ss))| moments(n, s, ss).map(|m| (j, m)))
        .collect();
    let rate_penalty = |k: i64, n: i64, base: Option<f64>, weight: f64| match base {
        Some(b) if n > 0 => {
            const PSEUDO: f64 = 20.0;
            let rate = (k as f64 + b * PSEUDO) / (n as f64 + PSEUDO);
            let rel = (rate - b) / b.max(0.02);
            weight * (rel / 2.0).clamp(0.0, 1.0)
        }
        _ => 0.0,
    };
    p.chart_hours()
        .map(|h| {
            let row = hourly.iter().find(|r| r.hour_ms == h);
            let hour_scores: Vec<&ScoreHourRow> =
                scores.iter().filter(|r| r.hour_ms == h).collect();
            if row.is_none_or(|r| r.n == 0) && hour_scores.is_empty() {
                return (h, None);
            }
            let mut penalty = 0.0;
            if let Some(r) = row {
                penalty += rate_penalty(r.refusals, r.n, base_refusal, 20.0);
                penalty += rate_penalty(r.truncations, r.n, base_trunc, 15.0);
            }
            let judge_penalty = hour_scores
                .iter()
                .filter_map(|s| {
                    let (mean, sd) = *judges.get(&s.judge)?;
                    if sd <= 0.0 || s.n == 0 {
                        return None;
                    }
                    let shrunk = (s.sum + mean * 2.0) / (s.n as f64 + 2.0);
                    let d = (mean - shrunk) / sd;
                    Some(30.0 * ((d - 0.25) / 0.75).clamp(0.0, 1.0))
                })
                .fold(0.0, f64::max);
            (h, Some((100.0 - penalty - judge_penalty).clamp(0.0, 100.0)))
        })
        .collect()
}

/// A health figure with the class the stylesheet colours it by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCell {
    pub text: String,
    /// good | warn | bad | none
    pub class: &'static str,
}

impl HealthCell {
    pub fn of(score: Option<f64>) -> HealthCell {
        match score {
            None => HealthCell {
                text: "—".into(),
                class: "none",
            },
            Some(s) => HealthCell {
                text: format!("{s:.0}"),
                class: if s >= 90.0 {
                    "good"
                } else if s >= 70.0 {
                    "warn"
                } else {
                    "bad"
                },
            },
        }
    }
}

/// One row of the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverviewRow {
    pub name: String,
    pub href: String,
    pub health: HealthCell,
    pub spark: String,
    /// Firing alerts; `None` when alerting is not installed.
    pub firing: Option<usize>,
    pub last_change: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverviewView {
    pub streams: Vec<OverviewRow>,
    pub suites: Vec<OverviewRow>,
    pub alerts_installed: bool,
    pub firing_total: usize,
    pub health_source: &'static str,
}

/// Everything the overview reads, for every stream and suite at once.
#[derive(Debug, Clone, Default)]
pub struct OverviewData {
    pub streams: Vec<String>,
    pub hourly: Vec<HourRow>,
    pub scores: Vec<ScoreHourRow>,
    /// The detectors' health series, when their table exists.
    pub health: Option<Vec<HealthPoint>>,
    pub latest_events: Vec<ModelEvent>,
    pub alerts: Option<Vec<AlertRow>>,
    /// Suites with their recent runs (newest first).
    pub suites: Vec<(String, Vec<RunRow>)>,
}

/// The health series of one stream: the detectors' when present, else provisional.
pub fn health_series(
    stream: &str,
    health: Option<&[HealthPoint]>,
    hourly: &[HourRow],
    scores: &[ScoreHourRow],
    p: &Periods,
) -> Vec<(i64, Option<f64>)> {
    match health {
        Some(points) => points
            .iter()
            .filter(|h| h.stream == stream && h.at_ms >= p.chart_from_ms && h.at_ms <= p.now_ms)
            .map(|h| (h.at_ms, Some(h.score)))
            .collect(),
        None => {
            let h: Vec<HourRow> = hourly
                .iter()
                .filter(|r| r.stream == stream)
                .cloned()
                .collect();
            let s: Vec<ScoreHourRow> = scores
                .iter()
                .filter(|r| r.stream == stream)
                .cloned()
                .collect();
            provisional_health(&h, &s, p)
        }
    }
}

pub(super) fn latest(series: &[(i64, Option<f64>)]) -> Option<f64> {
    series.iter().rev().find_map(|p| p.1)
}

pub(super) fn firing(alerts: Option<&[AlertRow]>, stream: &str) -> Option<usize> {
    alerts.map(|a| {
        a.iter()
            .filter(|a| a.state == "firing" && a.stream == stream)
            .count()
    })
}

fn change_text(ev: Option<&ModelEvent>, now_ms: i64) -> String {
    match ev {
        Some(e) => format!("{} ({})", model_change_label(e), fmt_ago(now_ms, e.at_ms)),
        None => "none recorded".into(),
    }
}

/// Pass rate of a finished run, provider errors excluded (they are not quality failures).
pub fn pass_rate(run: &RunRow) -> Option<f64> {
    let judged = run.passed + run.failed;
    (run.finished_ms.is_some() && judged > 0).then(|| 100.0 * run.passed as f64 / judged as f64)
}

pub fn build_overview(d: &OverviewData, p: &Periods) -> OverviewView {
    let x_range = (p.chart_from_ms, p.end_ms);
    let alerts = d.alerts.as_deref();
    let streams = d
        .streams
        .iter()
        .map(|s| {
            let series = health_series(s, d.health.as_deref(), &d.hourly, &d.scores, p);
            let scope = format!("stream:{s}");
            OverviewRow {
                name: s.clone(),
                href: format!("/streams/{}", enc(s)),
                health: HealthCell::of(latest(&series)),
                spark: charts::sparkline(&series, x_range, (0.0, 100.0)),
                firing: firing(alerts, s),
                last_change: change_text(
                    d.latest_events.iter().find(|e| e.scope == scope),
                    p.now_ms,
                ),
            }
        })
        .collect();
    let suites = d
        .suites
        .iter()
        .map(|(name, runs)| {
            let series: Vec<(i64, Option<f64>)> = runs
                .iter()
                .rev()
                .filter(|r| r.started_ms >= p.chart_from_ms)
                .map(|r| (r.started_ms, pass_rate(r)))
                .collect();
            let prefix = format!("suite:{name}:");
            let last_event = d
                .latest_events
                .iter()
                .filter(|e| e.scope.starts_with(&prefix))
                .max_by_key(|e| (e.at_ms, e.id));
            OverviewRow {
                name: name.clone(),
                href: format!("/suites/{}", enc(name)),
                health: HealthCell::of(runs.iter().find_map(pass_rate)),
                spark: charts::sparkline(&series, x_range, (0.0, 100.0)),
                firing: firing(alerts, &format!("suite:{name}")),
                last_change: change_text(last_event, p.now_ms),
            }
        })
        .collect();
    OverviewView {
        streams,
        suites,
        alerts_installed: alerts.is_some(),
        firing_total: alerts.map_or(0, |a| a.iter().filter(|a| a.state == "firing").count()),
        health_source: if d.health.is_some() {
            "detectors"
        } else {
            "provisional (from roll-ups)"
        },
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
