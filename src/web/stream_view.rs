//! View model of the stream page: charts of judge scores, refusals,
//! lengths and embedding drift against the baseline, the detectors'
//! verdicts, model changes and the worst-scored answers. Pure functions of
//! stored data and `Periods`, like `view`.

use std::collections::BTreeSet;

use serde::Serialize;

use super::charts::{self, Band, HistBin, LineChart, Marker, MarkerKind, Series, YFormat};
use super::fmt::{fmt_ago, fmt_num, fmt_time, model_change_label, snippet};
use super::view::{HealthCell, Periods, firing, health_series, latest, moments, score_baselines};
use crate::signals::{Finding, report};
use crate::store::{
    AlertRow, Annotation, EmbeddingHour, HealthPoint, HourRow, JudgedResponse, ModelEvent,
    ScoreHourRow,
};

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
    /// Change annotations of the stream and of all streams in the chart period.
    pub annotations: Vec<Annotation>,
    pub worst: Vec<JudgedResponse>,
    pub health: Option<Vec<HealthPoint>>,
    pub alerts: Option<Vec<AlertRow>>,
    /// The detectors' latest verdicts for this stream.
    pub findings: Vec<Finding>,
    /// The open alerts' statistics split by dimension (`alert::triage::splits`).
    pub splits: Vec<crate::alert::triage::Split>,
    /// The classifier against the judges' refusal labels in the window
    /// (`None`: not readable).
    pub refusal_agreement: Option<crate::store::RefusalAgreement>,
    /// Hourly spend (all users) over the chart period (`rollup_spend`).
    pub spend: Vec<crate::store::SpendHour>,
    /// The top users by spend over the chart period, with their hours.
    pub user_spend: Vec<crate::store::UserSpend>,
}

/// One detector verdict as a table row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingView {
    pub rule: String,
    pub dimension: String,
    /// firing | pending | ok | warming_up | insufficient_data: the verdict,
    /// or the state of its alert while that is open and the verdict no
    /// longer fires (`signals::report::shown`).
    pub status: &'static str,
    /// What the status column reads: "firing (recovering)" while hysteresis
    /// holds an alert whose verdict is already `ok`.
    pub label: String,
    pub severity: String,
    pub summary: String,
    pub when: String,
}

/// The detectors' verdicts beside the states of their open alerts
/// (`alerts`: every alert, or `None` when unknown), firing first, then by
/// rule and dimension.
pub fn findings_view(
    findings: &[Finding],
    alerts: Option<&[AlertRow]>,
    now_ms: i64,
) -> Vec<FindingView> {
    let open = crate::alert::open_states(alerts.unwrap_or_default());
    let rank = |s: &str| match s {
        "firing" => 0,
        "pending" => 1,
        "ok" => 2,
        "warming_up" => 3,
        _ => 4,
    };
    let mut sorted: Vec<(&Finding, report::Shown)> = findings
        .iter()
        .map(|f| {
            let key = (f.rule, f.stream.clone(), f.dimension.clone());
            (
                f,
                report::shown(f.status, open.get(&key).map(String::as_str)),
            )
        })
        .collect();
    sorted.sort_by_key(|(f, s)| (rank(s.state), f.rule, f.dimension.clone()));
    sorted
        .into_iter()
        .map(|(f, shown)| FindingView {
            rule: f.rule.as_str().into(),
            dimension: f.dimension.clone().unwrap_or_default(),
            status: shown.state,
            label: shown.label,
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

/// One change annotation as a table row (texts raw: the template escapes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnotationRow {
    pub when: String,
    pub kind: String,
    pub text: String,
    /// `all streams` for `*`, else empty.
    pub scope: String,
    pub source: String,
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
    pub spend_chart: ChartView,
    pub user_spend: super::stream_spend::UserSpendView,
    pub events: Vec<EventView>,
    /// Latest first.
    pub annotations: Vec<AnnotationRow>,
    pub worst: Vec<WorstRow>,
    pub firing: Option<usize>,
    pub findings: Vec<FindingView>,
    /// Where the open alerts' shifts live: one row of small multiples per
    /// (alert, dimension).
    pub localisation: Vec<SplitView>,
    pub refusal_agreement: Option<super::refusal_view::RefusalAgreementView>,
    pub responses_window: i64,
    pub period: String,
}

/// One split as small multiples: a panel per slice, on one scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitView {
    /// `refusal rate by prompt_version`.
    pub title: String,
    /// `confined to v13`, or that no single value carries it.
    pub caption: String,
    pub localised: bool,
    pub panels: Vec<String>,
}

/// The splits worth drawing: those that localise first, then the others
/// (at most `MAX_SPLITS` in all, so the page stays bounded).
pub fn split_views(splits: &[crate::alert::triage::Split]) -> Vec<SplitView> {
    const MAX_SPLITS: usize = 8;
    let mut sorted: Vec<&crate::alert::triage::Split> = splits.iter().collect();
    sorted.sort_by_key(|s| s.localised.is_none());
    sorted
        .into_iter()
        .take(MAX_SPLITS)
        .map(|s| {
            let fmt = if s.rate {
                YFormat::Percent
            } else {
                YFormat::Number
            };
            let y_max = s
                .slices
                .iter()
                .flat_map(|x| [x.window_ci.1, x.baseline_ci.1, x.window, x.baseline])
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max)
                * 1.1;
            let dim = s.dimension.strip_prefix("label:").unwrap_or(&s.dimension);
            let panels = s
                .slices
                .iter()
                .map(|x| {
                    charts::slice_panel(
                        &charts::SlicePanel {
                            label: x.value.clone(),
                            baseline: (x.baseline, x.baseline_ci.0, x.baseline_ci.1),
                            window: (x.window, x.window_ci.0, x.window_ci.1),
                            baseline_n: x.baseline_n,
                            window_n: x.window_n,
                            highlight: s.localised.as_deref() == Some(x.value.as_str()),
                        },
                        y_max,
                        fmt,
                    )
                })
                .collect();
            SplitView {
                title: format!("{} by {dim}", s.label),
                caption: match &s.localised {
                    Some(v) => format!(
                        "The shift is confined to {dim} = {v}: the other values are unchanged."
                    ),
                    None => {
                        "No single value carries the shift (or the slices are too small to tell)."
                            .into()
                    }
                },
                localised: s.localised.is_some(),
                panels,
            }
        })
        .collect()
}

/// Model changes and annotations as chart markers (labels are escaped by
/// `charts`; an annotation's text is cut to keep the tooltip readable).
fn markers(events: &[ModelEvent], annotations: &[Annotation]) -> Vec<Marker> {
    let changes = events.iter().map(|e| Marker {
        at_ms: e.at_ms,
        label: format!("model change: {}", model_change_label(e)),
        kind: MarkerKind::ModelChange,
    });
    // A model change seen in the answers is drawn once, as the model change.
    let notes = annotations
        .iter()
        .filter(|a| !crate::annotations::is_auto_model(a))
        .map(|a| Marker {
            at_ms: a.ts_ms,
            label: format!("{}: {}", a.kind, snippet(&a.text, 120)),
            kind: MarkerKind::Annotation,
        });
    changes.chain(notes).collect()
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
    let marks = markers(&d.events, &d.annotations);
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
    let spend_chart = super::stream_spend::stream_chart(&d.spend, p, &line);
    let user_spend = super::stream_spend::users(&d.user_spend, &d.spend, p, &line);
    StreamView {
        name: d.stream.clone(),
        health: HealthCell::of(latest(&health)),
        health_chart,
        judge_charts,
        refusal_chart,
        length_chart,
        embedding_chart,
        spend_chart,
        user_spend,
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
        annotations: d
            .annotations
            .iter()
            .rev()
            .map(|a| AnnotationRow {
                when: fmt_time(a.ts_ms),
                kind: a.kind.clone(),
                text: a.text.clone(),
                scope: if a.stream == crate::annotations::ALL_STREAMS {
                    "all streams".into()
                } else {
                    String::new()
                },
                source: a.source.clone(),
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
        findings: findings_view(&d.findings, d.alerts.as_deref(), p.now_ms),
        localisation: split_views(&d.splits),
        refusal_agreement: super::refusal_view::build(d.refusal_agreement.as_ref(), p.now_ms),
        responses_window: d
            .hourly
            .iter()
            .filter(|r| r.hour_ms >= p.window_from_ms)
            .map(|r| r.n)
            .sum(),
        period: format!("{} – {}", fmt_time(p.chart_from_ms), fmt_time(p.end_ms)),
    }
}

/// The stream page's chart builder: (title, y range, format, series, band).
pub(super) type LineFn<'a> =
    dyn Fn(String, Option<(f64, f64)>, YFormat, Vec<Series>, Option<Band>) -> LineChart + 'a;
