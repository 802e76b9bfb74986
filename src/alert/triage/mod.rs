//! The triage section of an alert: the first questions of an incident
//! answered from the records (issue 18) — which model and prompt version ran,
//! whether the token budget was hit, whether retrieval gave less context,
//! whether agents looped — and where the shift lives (localisation: the
//! firing rule's statistic split by model, prompt version, finish reason and
//! the application's labels).
//!
//! Pure: [`lines`] and [`splits`] take a [`TriageData`] (read by
//! `Store::triage_data` over [`periods`]) and the firing alerts. A line is
//! only written when it says something: a model or prompt version that is
//! new in the window, a change event, a share that moved beyond noise. The
//! tests behind "beyond noise" are two-proportion (Fisher when counts are
//! small) and Welch-style z tests at strict levels, Bonferroni-corrected
//! across the slices tried, because a false lead at 3 a.m. costs more than
//! a missing one. The constants are rules of thumb stated once, next to the
//! test they belong to, not fitted to any test.
//!
//! Two halves with different questions: `questions.rs` answers "what
//! changed around the alert" for the stream as a whole (one line per
//! question, each only when its share moved), `localise.rs` asks "where does
//! the firing rule's shift live" (the rule's statistic per slice, and the one
//! slice that carries it). This file holds the periods, the shared share and
//! mean helpers, and [`lines`], which puts the two together.

mod localise;
mod questions;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::text::{one_line, truncate};
use crate::signals::Rule;
use crate::signals::stats::two_proportions;
use crate::store::{AlertRow, TriageData};

pub use localise::splits;

/// The window starts this long before the earliest firing alert's start
/// (detectors compare hours, so a change precedes the first firing
/// evaluation by up to about this much; the same lead as annotations).
pub const WINDOW_LEAD_MS: i64 = crate::annotations::NEAR_BEFORE_MS;
/// The baseline is the day before the window.
pub const BASELINE_MS: i64 = 24 * 3_600_000;
/// Most records read per period.
pub const ROW_LIMIT: i64 = 3000;

/// A slice is tested only with at least this many records in the window
/// (and its reference with as many): fewer say nothing.
const MIN_SLICE: usize = 20;

/// One line of the triage section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriageLine {
    /// `model`, `prompt_version`, `token_budget`, `retrieval`, `tool_calls`
    /// or `localised`.
    pub kind: String,
    /// The firing rule a `localised` line is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The line, plain text (renderers escape it).
    pub text: String,
    /// Pages the line names (the sessions of a `tool_calls` line), linked
    /// by the channels that can; left out of the JSON when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<TriageLink>,
}

/// A page a triage line names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriageLink {
    /// What it is, plain text: `session s-17`.
    pub text: String,
    /// Its path on the status site (`/sessions?stream=…&id=…`, built by
    /// `alert::hook::session_path`). Messages make it absolute under
    /// the base URL for links (`message::link_triage`), or drop it without one.
    pub href: String,
}

/// One slice of a split: the statistic in the window and the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slice {
    pub value: String,
    pub window_n: usize,
    pub window: f64,
    pub baseline_n: usize,
    pub baseline: f64,
    /// 95 % intervals (low, high) of each.
    pub window_ci: (f64, f64),
    pub baseline_ci: (f64, f64),
}

/// A firing rule's statistic split by one dimension (the stream page draws
/// these as small multiples).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    pub rule: String,
    /// What is measured: `refusal rate`.
    pub label: String,
    /// `prompt_version`, `response_model`, `finish_reason`, `label:route`.
    pub dimension: String,
    /// Rates are shown as percentages.
    pub rate: bool,
    pub slices: Vec<Slice>,
    /// The slice that carries the effect, when one does.
    pub localised: Option<String>,
}

/// The periods read for alerts whose earliest start is `start_ms`:
/// (baseline_from, window_from, to).
pub fn periods(start_ms: i64, now_ms: i64) -> (i64, i64, i64) {
    let window_from = start_ms - WINDOW_LEAD_MS;
    (window_from - BASELINE_MS, window_from, now_ms.max(start_ms))
}

/// The start of a notification's firing alerts (their earliest pending time).
pub fn start_of(alerts: &[AlertRow]) -> Option<i64> {
    alerts
        .iter()
        .filter(|a| matches!(a.state.as_str(), "pending" | "firing"))
        .filter_map(|a| a.pending_ms.or(a.firing_ms))
        .min()
}

/// Judges whose scores [`lines`] localises (of the firing score drops).
pub fn judges_of(alerts: &[AlertRow]) -> Vec<String> {
    let set: BTreeSet<String> = alerts
        .iter()
        .filter(|a| matches!(a.state.as_str(), "pending" | "firing"))
        .filter(|a| Rule::parse(&a.rule) == Some(Rule::JudgeScoreDrop) && !a.dimension.is_empty())
        .map(|a| a.dimension.clone())
        .collect();
    set.into_iter().collect()
}

fn pct(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let p = x * 100.0;
    if p != 0.0 && p.abs() < 10.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

fn share(k: usize, n: usize) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        k as f64 / n as f64
    }
}

/// `k1/n1` is above `k2/n2` beyond noise (one side of a two-sided test at `p`).
fn rose(k1: usize, n1: usize, k2: usize, n2: usize, p: f64) -> bool {
    n1 > 0
        && n2 > 0
        && share(k1, n1) > share(k2, n2)
        && two_proportions(k1 as u64, n1 as u64, k2 as u64, n2 as u64) < p
}

/// Shares of each value, largest first.
fn mix<'a>(values: impl Iterator<Item = &'a str>) -> (Vec<(String, usize)>, usize) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut n = 0;
    for v in values {
        *counts.entry(v).or_default() += 1;
        n += 1;
    }
    let mut out: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(k, c)| (k.to_string(), c))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    (out, n)
}

fn mix_text(m: &[(String, usize)], n: usize) -> String {
    let mut parts: Vec<String> = m
        .iter()
        .take(3)
        .map(|(v, c)| format!("{} {}", truncate(&one_line(v), 60), pct(share(*c, n))))
        .collect();
    if m.len() > 3 {
        parts.push(format!("{} more", m.len() - 3));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// Mean and standard error of `xs`.
fn moments(xs: impl Iterator<Item = f64>) -> (usize, f64, f64) {
    let (mut n, mut s, mut ss) = (0usize, 0.0, 0.0);
    for x in xs {
        n += 1;
        s += x;
        ss += x * x;
    }
    if n == 0 {
        return (0, f64::NAN, f64::NAN);
    }
    let m = s / n as f64;
    let var = if n > 1 {
        ((ss - s * m) / (n - 1) as f64).max(0.0)
    } else {
        0.0
    };
    (n, m, (var / n as f64).sqrt())
}

/// The triage section for a notification's `firing` alerts of one stream.
/// A notification without firing alerts (a resolve notice) gets none: it
/// explains nothing.
pub fn lines(d: &TriageData, firing: &[AlertRow]) -> Vec<TriageLine> {
    let Some(start) = start_of(firing) else {
        return Vec::new();
    };
    let mut localised = Vec::new();
    // prompt version → rules whose shift it carries
    let mut confined: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for a in firing {
        if !seen.insert((a.rule.clone(), a.dimension.clone())) {
            continue;
        }
        let all = splits(d, a);
        // One line per alert: the strongest dimension that localises it
        // (prompt version first, then model, finish reason, labels).
        let order = |dim: &str| match dim {
            "prompt_version" => 0,
            "response_model" => 1,
            "finish_reason" => 2,
            _ => 3,
        };
        let mut found: Vec<&Split> = all.iter().filter(|s| s.localised.is_some()).collect();
        found.sort_by_key(|s| order(&s.dimension));
        if let Some(s) = found.first() {
            let v = s.localised.clone().unwrap_or_default();
            if let Some(l) = localise::localised_line(d, a, s, &v) {
                localised.push(l);
            }
            if s.dimension == "prompt_version" {
                let label = super::message::rule_label(&a.rule).to_string();
                confined
                    .entry(v)
                    .and_modify(|r| {
                        if !r.split(", ").any(|x| x == label) {
                            r.push_str(&format!(", {label}"));
                        }
                    })
                    .or_insert(label);
            }
        }
    }
    let truncation = firing
        .iter()
        .any(|a| Rule::parse(&a.rule) == Some(Rule::TruncationRate));
    let mut out: Vec<TriageLine> = [
        questions::model_line(d, start),
        questions::prompt_line(d, start, &confined),
        questions::token_line(d, truncation),
        questions::retrieval_line(d),
        questions::tools_line(d),
    ]
    .into_iter()
    .flatten()
    .collect();
    out.extend(localised);
    for l in &mut out {
        l.text = truncate(&one_line(&l.text), 600);
    }
    out
}

#[cfg(test)]
mod tests;
