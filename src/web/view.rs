//! View models of the overview and stream pages: what the templates print,
//! built from stored data and a `now` taken once per request.
//!
//! Builders are pure functions (data, periods) → view, so the numbers on the
//! pages are unit-tested without a database or a clock. Every string here is
//! plain text that the `.html` templates escape; chart markup is the only
//! pre-rendered HTML and comes from `charts`, which escapes its own text.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::charts::{self, Band, HistBin, LineChart, Marker, Series, YFormat};
use super::fmt::{enc, fmt_ago, fmt_num, fmt_time, model_change_label, snippet};
use crate::signals::{Finding, Status};
use crate::store::{
    AlertRow, EmbeddingHour, HealthPoint, HourRow, JudgedResponse, ModelEvent, RunRow, ScoreHourRow,
};

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

    fn in_baseline(&self, t: i64) -> bool {
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
fn score_baselines(scores: &[ScoreHourRow], p: &Periods) -> BTreeMap<String, (f64, f64, f64)> {
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

fn latest(series: &[(i64, Option<f64>)]) -> Option<f64> {
    series.iter().rev().find_map(|p| p.1)
}

fn firing(alerts: Option<&[AlertRow]>, stream: &str) -> Option<usize> {
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

/// Everything the stream page reads about one stream.
#[derive(Debug, Clone, Default)]
pub struct StreamData {
    pub stream: String,
    /// Roll-ups from the start of the baseline to the end of the charts.
    pub hourly: Vec<HourRow>,
    pub scores: Vec<ScoreHourRow>,
    pub length_current: Vec<(i64, i64)>,
    pub length_baseline: Vec<(i64, i64)>,
    pub embeddings: Vec<EmbeddingHour>,
    pub events: Vec<ModelEvent>,
    pub worst: Vec<JudgedResponse>,
    pub health: Option<Vec<HealthPoint>>,
    pub alerts: Option<Vec<AlertRow>>,
    /// The detectors' latest verdicts for this stream.
    pub findings: Vec<Finding>,
}

/// One detector verdict as a table row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingView {
    pub rule: String,
    pub dimension: String,
    /// firing | ok | insufficient_data
    pub status: &'static str,
    pub severity: String,
    pub summary: String,
    pub when: String,
}

/// The detectors' verdicts, firing first, then by rule and dimension.
pub fn findings_view(findings: &[Finding], now_ms: i64) -> Vec<FindingView> {
    let rank = |s: Status| match s {
        Status::Firing => 0,
        Status::Ok => 1,
        Status::InsufficientData => 2,
    };
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| (rank(f.status), f.rule, f.dimension.clone()));
    sorted
        .into_iter()
        .map(|f| FindingView {
            rule: f.rule.as_str().into(),
            dimension: f.dimension.clone().unwrap_or_default(),
            status: match f.status {
                Status::Firing => "firing",
                Status::Ok => "ok",
                Status::InsufficientData => "insufficient_data",
            },
            severity: f.severity.as_str().into(),
            summary: f.summary.clone(),
            when: fmt_ago(now_ms, f.at_ms),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegendItem {
    pub label: String,
    pub colour: &'static str,
}

/// A chart with its heading, caption and legend (HTML, so it wraps on phones).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartView {
    pub title: String,
    pub caption: String,
    pub svg: String,
    pub legend: Vec<LegendItem>,
}

impl ChartView {
    /// A line chart; the legend names the series when there is more than one.
    pub fn line(title: impl Into<String>, caption: impl Into<String>, chart: &LineChart) -> Self {
        let legend = if chart.series.len() > 1 {
            chart
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| LegendItem {
                    label: s.label.clone(),
                    colour: charts::colour(i),
                })
                .collect()
        } else {
            vec![]
        };
        ChartView {
            title: title.into(),
            caption: caption.into(),
            svg: charts::line_chart(chart),
            legend,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub when: String,
    pub label: String,
    pub requested_model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorstRow {
    pub href: String,
    pub id: i64,
    pub judge: String,
    pub score: String,
    pub when: String,
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamView {
    pub name: String,
    pub health: HealthCell,
    pub health_chart: ChartView,
    pub judge_charts: Vec<ChartView>,
    pub refusal_chart: ChartView,
    pub length_chart: ChartView,
    pub embedding_chart: ChartView,
    pub events: Vec<EventView>,
    pub worst: Vec<WorstRow>,
    pub firing: Option<usize>,
    pub findings: Vec<FindingView>,
    pub responses_window: i64,
    pub period: String,
}

fn markers(events: &[ModelEvent]) -> Vec<Marker> {
    events
        .iter()
        .map(|e| Marker {
            at_ms: e.at_ms,
            label: format!("model change: {}", model_change_label(e)),
        })
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> Option<f64> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    (a.len() == b.len() && na > 0.0 && nb > 0.0).then(|| dot / (na * nb))
}

/// Cosine similarity of each hour's embedding centroid to the baseline centroid.
/// (Sums are proportional to centroids, and cosine ignores scale.)
pub fn embedding_similarity(hours: &[EmbeddingHour], p: &Periods) -> Vec<(i64, Option<f64>)> {
    let mut base: Option<Vec<f64>> = None;
    for h in hours.iter().filter(|h| p.in_baseline(h.hour_ms)) {
        match &mut base {
            Some(b) if b.len() == h.sum.len() => {
                b.iter_mut().zip(&h.sum).for_each(|(a, x)| *a += x)
            }
            Some(_) => {}
            None => base = Some(h.sum.clone()),
        }
    }
    p.chart_hours()
        .map(|t| {
            let v = base.as_ref().and_then(|b| {
                hours
                    .iter()
                    .find(|h| h.hour_ms == t && h.n > 0)
                    .and_then(|h| cosine(&h.sum, b))
            });
            (t, v)
        })
        .collect()
}

/// Length histogram bins as fractions of each period's total, up to the last non-empty bin.
pub fn length_bins(current: &[(i64, i64)], baseline: &[(i64, i64)]) -> Vec<HistBin> {
    let total = |v: &[(i64, i64)]| v.iter().map(|b| b.1).sum::<i64>().max(1) as f64;
    let (tc, tb) = (total(current), total(baseline));
    let last = current
        .iter()
        .chain(baseline)
        .filter(|b| b.1 > 0)
        .map(|b| b.0)
        .max();
    let Some(last) = last else { return vec![] };
    let get = |v: &[(i64, i64)], bin| v.iter().find(|b| b.0 == bin).map_or(0, |b| b.1) as f64;
    (0..=last.clamp(0, 63))
        .map(|bin| HistBin {
            label: if bin == 63 {
                "1575+".into()
            } else {
                (bin * 25).to_string()
            },
            current: get(current, bin) / tc,
            baseline: get(baseline, bin) / tb,
        })
        .collect()
}

pub fn build_stream(d: &StreamData, p: &Periods) -> StreamView {
    let x_range = (p.chart_from_ms, p.end_ms);
    let marks = markers(&d.events);
    let line = |title: String, y_range, y_format, series, band| LineChart {
        title,
        x_range,
        y_range,
        y_format,
        series,
        band,
        markers: marks.clone(),
    };
    let health = health_series(&d.stream, d.health.as_deref(), &d.hourly, &d.scores, p);
    let health_chart = ChartView::line(
        "Health",
        if d.health.is_some() {
            "Health score from the detectors (100 = no detector firing)."
        } else {
            "Provisional health from the roll-ups (100 = in line with the baseline)."
        },
        &line(
            "health score".into(),
            Some((0.0, 100.0)),
            YFormat::Number,
            vec![Series {
                label: "health".into(),
                points: health.clone(),
            }],
            None,
        ),
    );
    let judges: BTreeSet<&str> = d.scores.iter().map(|s| s.judge.as_str()).collect();
    let baselines = score_baselines(&d.scores, p);
    let judge_charts = judges
        .into_iter()
        .map(|j| {
            let points = p
                .chart_hours()
                .map(|h| {
                    let v = d
                        .scores
                        .iter()
                        .find(|s| s.judge == j && s.hour_ms == h && s.n > 0)
                        .map(|s| s.sum / s.n as f64);
                    (h, v)
                })
                .collect();
            let base = baselines
                .get(j)
                .and_then(|(n, s, ss)| moments(*n, *s, *ss).map(|m| (m, *n)));
            let band = base.map(|((mean, sd), _)| Band {
                lo: mean - sd,
                mid: mean,
                hi: mean + sd,
                label: format!("baseline {} ± {}", fmt_num(mean), fmt_num(sd)),
            });
            let caption = match base {
                Some(((mean, sd), n)) => format!(
                    "Hourly mean score; band: baseline mean {} ± {} (sd, n={n:.0}).",
                    fmt_num(mean),
                    fmt_num(sd)
                ),
                None => "Hourly mean score; no baseline yet.".into(),
            };
            ChartView::line(
                format!("Judge: {j}"),
                caption,
                &line(
                    format!("judge score {j}"),
                    None,
                    YFormat::Number,
                    vec![Series {
                        label: j.to_string(),
                        points,
                    }],
                    band,
                ),
            )
        })
        .collect();
    let rate = |f: fn(&HourRow) -> i64| -> Vec<(i64, Option<f64>)> {
        p.chart_hours()
            .map(|h| {
                let v = d
                    .hourly
                    .iter()
                    .find(|r| r.hour_ms == h && r.n > 0)
                    .map(|r| f(r) as f64 / r.n as f64);
                (h, v)
            })
            .collect()
    };
    let base_rates: Vec<f64> = d
        .hourly
        .iter()
        .filter(|r| p.in_baseline(r.hour_ms) && r.n > 0)
        .map(|r| r.refusals as f64 / r.n as f64)
        .collect();
    let refusal_band = (!base_rates.is_empty()).then(|| {
        let n = base_rates.len() as f64;
        let (mean, sd) = moments(
            n,
            base_rates.iter().sum(),
            base_rates.iter().map(|x| x * x).sum(),
        )
        .unwrap_or_default();
        Band {
            lo: (mean - sd).max(0.0),
            mid: mean,
            hi: mean + sd,
            label: format!("baseline {:.1}% ± {:.1}%", mean * 100.0, sd * 100.0),
        }
    });
    let refusal_chart = ChartView::line(
        "Refusal and truncation rate",
        "Share of responses per hour; band: baseline hourly refusal rate ± sd.",
        &line(
            "refusal rate".into(),
            None,
            YFormat::Percent,
            vec![
                Series {
                    label: "refusals".into(),
                    points: rate(|r| r.refusals),
                },
                Series {
                    label: "truncations (finish_reason=length)".into(),
                    points: rate(|r| r.truncations),
                },
            ],
            refusal_band,
        ),
    );
    let bins = length_bins(&d.length_current, &d.length_baseline);
    let length_chart = ChartView {
        title: "Output length".into(),
        caption: "Share of responses per 25-token bin (tokens): current window vs baseline.".into(),
        svg: charts::histogram("output length histogram", &bins),
        legend: vec![
            LegendItem {
                label: "current window".into(),
                colour: charts::HIST_CURRENT,
            },
            LegendItem {
                label: "baseline".into(),
                colour: charts::HIST_BASELINE,
            },
        ],
    };
    let sim = embedding_similarity(&d.embeddings, p);
    let embedding_chart = ChartView::line(
        "Embedding similarity",
        "Cosine of each hour's embedding centroid to the baseline centroid.",
        &line(
            "embedding similarity".into(),
            None,
            YFormat::Number,
            vec![Series {
                label: "cosine to baseline".into(),
                points: sim,
            }],
            None,
        ),
    );
    StreamView {
        name: d.stream.clone(),
        health: HealthCell::of(latest(&health)),
        health_chart,
        judge_charts,
        refusal_chart,
        length_chart,
        embedding_chart,
        events: d
            .events
            .iter()
            .rev()
            .map(|e| EventView {
                when: fmt_time(e.at_ms),
                label: model_change_label(e),
                requested_model: e.requested_model.clone(),
            })
            .collect(),
        worst: d
            .worst
            .iter()
            .map(|w| WorstRow {
                href: format!("/responses/{}", w.response_id),
                id: w.response_id,
                judge: w.judge.clone(),
                score: fmt_num(w.score),
                when: fmt_ago(p.now_ms, w.ts_ms),
                snippet: snippet(&w.output, 140),
            })
            .collect(),
        firing: firing(d.alerts.as_deref(), &d.stream),
        findings: findings_view(&d.findings, p.now_ms),
        responses_window: d
            .hourly
            .iter()
            .filter(|r| r.hour_ms >= p.window_from_ms)
            .map(|r| r.n)
            .sum(),
        period: format!("{} – {}", fmt_time(p.chart_from_ms), fmt_time(p.end_ms)),
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
