//! Inline SVG charts, generated on the server so the pages need no
//! JavaScript and no chart library.
//!
//! Every function here is pure: data in, markup out. Text that reaches the
//! markup (labels, titles, event descriptions — stream and judge names are
//! user content) goes through [`esc`]; numbers are formatted by us. The
//! output is inserted into templates with `| safe`, so this module is where
//! the escaping of chart text is guaranteed.

use std::fmt::Write;

use chrono::{DateTime, Timelike, Utc};

/// Colours of successive series (colour-blind friendly, readable on white).
pub const PALETTE: [&str; 6] = [
    "#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2",
];

/// Bar colours of the histogram: current period, baseline.
pub const HIST_CURRENT: &str = "#2563eb";
pub const HIST_BASELINE: &str = "#9ca3af";

/// Drawing area of the line charts (SVG user units; the SVG scales to its box).
const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

const HOUR_MS: i64 = 3_600_000;

/// The colour of the `i`-th series of a line chart, for legends.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Escapes text for HTML/SVG element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// One line of a chart: points at times (ms); `None` is a gap (no data that hour).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(i64, Option<f64>)>,
}

/// A horizontal band, e.g. the baseline's mean ± one standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub lo: f64,
    pub mid: f64,
    pub hi: f64,
    pub label: String,
}

/// An event on the time axis, e.g. a model change.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub at_ms: i64,
    pub label: String,
    pub kind: MarkerKind,
}

/// What a marker stands for; each kind has its own colour so a recorded
/// deploy is not read as a model change the daemon saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// A model change seen in the answers (red).
    ModelChange,
    /// A change annotation recorded by a person or pipeline (purple).
    Annotation,
}

impl MarkerKind {
    fn style(self) -> (&'static str, &'static str) {
        match self {
            MarkerKind::ModelChange => ("marker", "#dc2626"),
            MarkerKind::Annotation => ("marker annotation", "#7c3aed"),
        }
    }
}

/// How the y axis labels its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YFormat {
    /// Plain numbers with up to two decimals.
    Number,
    /// Fractions shown as percentages.
    Percent,
}

impl YFormat {
    fn fmt(self, v: f64) -> String {
        match self {
            YFormat::Number => trim_num(v),
            YFormat::Percent => format!("{}%", trim_num(v * 100.0)),
        }
    }
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A time-series line chart with an optional baseline band and event markers.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Accessible name of the chart (read by screen readers, shown nowhere else).
    pub title: String,
    /// Time range of the x axis, `[from, to)` in ms.
    pub x_range: (i64, i64),
    /// Fixed y range; `None` fits the data, the band and a little margin.
    pub y_range: Option<(f64, f64)>,
    pub y_format: YFormat,
    pub series: Vec<Series>,
    pub band: Option<Band>,
    pub markers: Vec<Marker>,
}

/// Linear map from data space to SVG space.
#[derive(Debug, Clone, Copy)]
struct Scale {
    x0: i64,
    x1: i64,
    y0: f64,
    y1: f64,
}

impl Scale {
    fn x(&self, t: i64) -> f64 {
        let span = (self.x1 - self.x0).max(1) as f64;
        LEFT + (t - self.x0) as f64 / span * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        let span = if self.y1 > self.y0 {
            self.y1 - self.y0
        } else {
            1.0
        };
        H - BOTTOM - (v - self.y0) / span * (H - TOP - BOTTOM)
    }
}

fn finite_values(c: &LineChart) -> impl Iterator<Item = f64> + '_ {
    c.series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .chain(c.band.iter().flat_map(|b| [b.lo, b.hi]))
        .filter(|v| v.is_finite())
}

/// The y range: fixed, or the data's range widened by 10% (a flat line gets ±1).
fn y_range(c: &LineChart) -> (f64, f64) {
    if let Some(r) = c.y_range {
        return r;
    }
    let (lo, hi) = finite_values(c).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        return (lo - 1.0, hi + 1.0);
    }
    let pad = (hi - lo) * 0.1;
    (lo - pad, hi + pad)
}

/// About five "nice" tick values (1, 2, 2.5, 5 × 10^k steps) covering `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return vec![];
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let mut out = vec![];
    for k in first.. {
        // k × step, rounded so 3 × 0.2 is 0.6 and not 0.6000000000000001.
        let t = (k as f64 * step * 1e9).round() / 1e9;
        if t > hi + step * 1e-9 || out.len() >= 8 {
            break;
        }
        out.push(t);
    }
    out
}

/// Hour-aligned x ticks at a step that leaves at most ~6 labels.
pub fn time_ticks(from_ms: i64, to_ms: i64) -> Vec<i64> {
    let hours = ((to_ms - from_ms) / HOUR_MS).max(1);
    let step_h = [1, 2, 3, 6, 12, 24, 48, 72, 168]
        .into_iter()
        .find(|s| hours / s <= 6)
        .unwrap_or(336);
    let step = step_h * HOUR_MS;
    let mut t = (from_ms + step - 1).div_euclid(step) * step;
    let mut out = vec![];
    while t <= to_ms {
        out.push(t);
        t += step;
    }
    out
}

fn time_label(t: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(t) {
        Some(d) if d.hour() == 0 => d.format("%b %d").to_string(),
        Some(d) => d.format("%H:%M").to_string(),
        None => String::new(),
    }
}

fn svg_open(out: &mut String, w: f64, h: f64, class: &str, title: &str) {
    let _ = write!(
        out,
        r#"<svg class="{class}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
}

/// Path data for a series: one `M…L…` run per stretch without gaps, and the
/// indices of isolated points (drawn as dots since a lone point has no line).
fn path_runs(points: &[(f64, f64, bool)]) -> (String, Vec<usize>) {
    let mut d = String::new();
    let mut lonely = vec![];
    let mut i = 0;
    while i < points.len() {
        if !points[i].2 {
            i += 1;
            continue;
        }
        let start = i;
        while i < points.len() && points[i].2 {
            i += 1;
        }
        if i - start == 1 {
            lonely.push(start);
        } else {
            for (k, p) in points[start..i].iter().enumerate() {
                let _ = write!(d, "{}{:.1},{:.1}", if k == 0 { "M" } else { "L" }, p.0, p.1);
            }
        }
    }
    (d, lonely)
}

/// Renders a line chart. With no data at all it says so instead of drawing axes.
pub fn line_chart(c: &LineChart) -> String {
    let mut out = String::new();
    svg_open(&mut out, W, H, "chart", &c.title);
    let has_data = c
        .series
        .iter()
        .any(|s| s.points.iter().any(|p| p.1.is_some_and(f64::is_finite)));
    if !has_data {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" text-anchor="middle" class="nodata" fill="#6b7280" font-size="14">no data in this period</text></svg>"##,
            W / 2.0,
            H / 2.0
        );
        return out;
    }
    let (y0, y1) = y_range(c);
    let sc = Scale {
        x0: c.x_range.0,
        x1: c.x_range.1,
        y0,
        y1,
    };
    // Band first, so lines draw over it.
    if let Some(b) = &c.band {
        let (top, bot) = (sc.y(b.hi.min(y1)), sc.y(b.lo.max(y0)));
        let _ = write!(
            out,
            r##"<rect class="band" x="{LEFT}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#9ca3af" fill-opacity="0.22"><title>{}</title></rect><line x1="{LEFT}" x2="{:.1}" y1="{m:.1}" y2="{m:.1}" stroke="#6b7280" stroke-dasharray="4 3" stroke-width="1"/>"##,
            W - LEFT - RIGHT,
            (bot - top).max(0.5),
            esc(&b.label),
            W - RIGHT,
            m = sc.y(b.mid.clamp(y0, y1)),
        );
    }
    // Grid and y labels.
    for v in nice_ticks(y0, y1) {
        let y = sc.y(v);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e7eb" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12" fill="#4b5563">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&c.y_format.fmt(v))
        );
    }
    // x axis with time labels.
    let base = H - BOTTOM;
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{base}" y2="{base}" stroke="#9ca3af" stroke-width="1"/>"##,
        W - RIGHT
    );
    for t in time_ticks(c.x_range.0, c.x_range.1) {
        let x = sc.x(t);
        // Labels at the edges hang inwards so they are not clipped.
        let anchor = if x > W - RIGHT - 30.0 {
            "end"
        } else if x < LEFT + 30.0 {
            "start"
        } else {
            "middle"
        };
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{base}" y2="{:.1}" stroke="#9ca3af"/><text x="{x:.1}" y="{:.1}" text-anchor="{anchor}" font-size="12" fill="#4b5563">{}</text>"##,
            base + 4.0,
            H - 8.0,
            esc(&time_label(t))
        );
    }
    // Event markers.
    for m in &c.markers {
        if m.at_ms < c.x_range.0 || m.at_ms > c.x_range.1 {
            continue;
        }
        let x = sc.x(m.at_ms);
        let (class, stroke) = m.kind.style();
        let _ = write!(
            out,
            r##"<g class="{class}"><title>{}</title><line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{base}" stroke="{stroke}" stroke-width="1.5" stroke-dasharray="5 3"/><path d="M{:.1},{TOP}h10l-5,7z" fill="{stroke}"/></g>"##,
            esc(&m.label),
            x - 5.0,
        );
    }
    // Series.
    for (i, s) in c.series.iter().enumerate() {
        let colour = colour(i);
        let pts: Vec<(f64, f64, bool)> = s
            .points
            .iter()
            .map(|(t, v)| match v {
                Some(v) if v.is_finite() => (sc.x(*t), sc.y(v.clamp(y0, y1)), true),
                _ => (0.0, 0.0, false),
            })
            .collect();
        let (d, lonely) = path_runs(&pts);
        let _ = write!(out, r#"<g class="series"><title>{}</title>"#, esc(&s.label));
        if !d.is_empty() {
            let _ = write!(
                out,
                r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>"#
            );
        }
        for k in lonely {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
                pts[k].0, pts[k].1
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

/// A tiny line without axes for tables: `points` over `x_range`, values in `y_range`.
pub fn sparkline(
    points: &[(i64, Option<f64>)],
    x_range: (i64, i64),
    y_range: (f64, f64),
) -> String {
    const SW: f64 = 120.0;
    const SH: f64 = 28.0;
    let mut out = String::new();
    svg_open(&mut out, SW, SH, "spark", "trend");
    let span_x = (x_range.1 - x_range.0).max(1) as f64;
    let span_y = if y_range.1 > y_range.0 {
        y_range.1 - y_range.0
    } else {
        1.0
    };
    let pts: Vec<(f64, f64, bool)> = points
        .iter()
        .map(|(t, v)| match v {
            Some(v) if v.is_finite() => (
                1.0 + (t - x_range.0) as f64 / span_x * (SW - 2.0),
                SH - 2.0 - (v.clamp(y_range.0, y_range.1) - y_range.0) / span_y * (SH - 4.0),
                true,
            ),
            _ => (0.0, 0.0, false),
        })
        .collect();
    let (d, lonely) = path_runs(&pts);
    if d.is_empty() && lonely.is_empty() {
        let _ = write!(
            out,
            r##"<line x1="2" x2="{}" y1="{}" y2="{}" stroke="#d1d5db" stroke-dasharray="3 3"/>"##,
            SW - 2.0,
            SH / 2.0,
            SH / 2.0
        );
    }
    if !d.is_empty() {
        let _ = write!(
            out,
            r##"<path d="{d}" fill="none" stroke="#2563eb" stroke-width="1.5"/>"##
        );
    }
    for k in lonely {
        let _ = write!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="#2563eb"/>"##,
            pts[k].0, pts[k].1
        );
    }
    out.push_str("</svg>");
    out
}

/// One bin of a current-versus-baseline histogram; values are fractions of
/// each period's total so periods of different lengths compare.
#[derive(Debug, Clone, PartialEq)]
pub struct HistBin {
    pub label: String,
    pub current: f64,
    pub baseline: f64,
}

/// Paired bars per bin: current (filled) beside baseline (grey).
pub fn histogram(title: &str, bins: &[HistBin]) -> String {
    let mut out = String::new();
    svg_open(&mut out, W, H, "chart", title);
    let max = bins
        .iter()
        .flat_map(|b| [b.current, b.baseline])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if bins.is_empty() || max <= 0.0 {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" text-anchor="middle" class="nodata" fill="#6b7280" font-size="14">no data in this period</text></svg>"##,
            W / 2.0,
            H / 2.0
        );
        return out;
    }
    let sc = Scale {
        x0: 0,
        x1: 1,
        y0: 0.0,
        y1: max * 1.1,
    };
    for v in nice_ticks(0.0, max * 1.1) {
        let y = sc.y(v);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12" fill="#4b5563">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&YFormat::Percent.fmt(v))
        );
    }
    let slot = (W - LEFT - RIGHT) / bins.len() as f64;
    let bar = (slot * 0.4).max(0.5);
    let label_every = (bins.len() as f64 / 8.0).ceil().max(1.0) as usize;
    let base = H - BOTTOM;
    for (i, b) in bins.iter().enumerate() {
        let x = LEFT + i as f64 * slot + slot * 0.1;
        for (k, (v, fill, kind)) in [
            (b.current, HIST_CURRENT, "current"),
            (b.baseline, HIST_BASELINE, "baseline"),
        ]
        .into_iter()
        .enumerate()
        {
            let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
            let y = sc.y(v);
            let _ = write!(
                out,
                r#"<rect class="{kind}" x="{:.1}" y="{y:.1}" width="{bar:.1}" height="{:.1}" fill="{fill}"><title>{} {kind}: {}</title></rect>"#,
                x + k as f64 * bar,
                base - y,
                esc(&b.label),
                esc(&YFormat::Percent.fmt(v))
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" fill="#4b5563">{}</text>"##,
                x + bar,
                H - 8.0,
                esc(&b.label)
            );
        }
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{base}" y2="{base}" stroke="#9ca3af"/></svg>"##,
        W - RIGHT
    );
    out
}

/// One panel of a split's small multiples: a slice's statistic in the
/// baseline and the window, each with its 95 % interval (NaN: no data).
#[derive(Debug, Clone, PartialEq)]
pub struct SlicePanel {
    pub label: String,
    pub baseline: (f64, f64, f64),
    pub window: (f64, f64, f64),
    pub baseline_n: usize,
    pub window_n: usize,
    /// The slice carries the effect: drawn in the alert colour.
    pub highlight: bool,
}

/// A small panel (one per slice, all on the same `y_max` so they compare):
/// a grey baseline bar and a window bar with interval whiskers.
pub fn slice_panel(p: &SlicePanel, y_max: f64, fmt: YFormat) -> String {
    const PW: f64 = 160.0;
    const PH: f64 = 110.0;
    const BASE: f64 = 86.0;
    let mut out = String::new();
    let class = if p.highlight {
        "panel localised"
    } else {
        "panel"
    };
    svg_open(&mut out, PW, PH, class, &p.label);
    let y_max = if y_max.is_finite() && y_max > 0.0 {
        y_max
    } else {
        1.0
    };
    let y = |v: f64| BASE - (v.clamp(0.0, y_max) / y_max) * (BASE - 8.0);
    let window_fill = if p.highlight { "#cf222e" } else { HIST_CURRENT };
    for (i, ((v, lo, hi), n, fill, kind)) in [
        (p.baseline, p.baseline_n, HIST_BASELINE, "baseline"),
        (p.window, p.window_n, window_fill, "window"),
    ]
    .into_iter()
    .enumerate()
    {
        let x = 30.0 + i as f64 * 60.0;
        if !v.is_finite() {
            let _ = write!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#6b7280">none</text>"##,
                x + 20.0,
                BASE - 4.0
            );
            continue;
        }
        let top = y(v);
        let _ = write!(
            out,
            r#"<rect class="{kind}" x="{x:.1}" y="{top:.1}" width="40" height="{:.1}" fill="{fill}"><title>{} {kind}: {} (n={n})</title></rect>"#,
            BASE - top,
            esc(&p.label),
            esc(&fmt.fmt(v))
        );
        if lo.is_finite() && hi.is_finite() {
            let _ = write!(
                out,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#111827"/>"##,
                x + 20.0,
                x + 20.0,
                y(lo),
                y(hi)
            );
        }
    }
    let _ = write!(
        out,
        r##"<line x1="20" x2="{:.1}" y1="{BASE}" y2="{BASE}" stroke="#9ca3af"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#4b5563">{}</text></svg>"##,
        PW - 20.0,
        PW / 2.0,
        PH - 8.0,
        esc(&truncate_label(&p.label, 24))
    );
    out
}

fn truncate_label(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
#[path = "charts_tests.rs"]
mod tests;
