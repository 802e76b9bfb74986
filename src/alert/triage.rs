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
//! a missing one. The constants are rules of thumb stated once here, not
//! fitted to any test.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::text::{fmt_num, one_line, truncate};
use crate::signals::Rule;
use crate::signals::stats::{normal_cdf, two_proportions};
use crate::store::{AlertRow, TriageData, TriageRow};

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
/// Family-wise false-lead rate of the localisation across the slices tried.
const LOCALISE_ALPHA: f64 = 0.01;
/// A share test (token budget, retrieval, prompt mix) speaks below this p.
const SHARE_P: f64 = 0.001;
/// A model or prompt version is "new" with at least this share of the
/// window and at most [`NEW_BASELINE_SHARE`] of the baseline.
const NEW_WINDOW_SHARE: f64 = 0.05;
const NEW_BASELINE_SHARE: f64 = 0.01;
/// An output within this fraction of `max_tokens` is "near the budget".
const NEAR_BUDGET: f64 = 0.95;
/// A (tool, arguments) pair repeated this often in a session is a loop.
const LOOP_REPEATS: usize = 3;
/// Most slices drawn per dimension.
const MAX_SLICES: usize = 6;

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

/// Values that are new in the window: a real share there, next to none in
/// a baseline big enough to tell.
fn new_values(w: &[(String, usize)], wn: usize, b: &[(String, usize)], bn: usize) -> Vec<String> {
    if bn < MIN_SLICE {
        return Vec::new();
    }
    w.iter()
        .filter(|(v, c)| {
            let bc = b.iter().find(|(bv, _)| bv == v).map_or(0, |x| x.1);
            share(*c, wn) >= NEW_WINDOW_SHARE && share(bc, bn) <= NEW_BASELINE_SHARE
        })
        .map(|(v, _)| v.clone())
        .collect()
}

fn model_key(r: &TriageRow) -> Option<String> {
    match (&r.response_model, &r.system_fingerprint) {
        (None, None) => None,
        (Some(m), None) => Some(m.clone()),
        (None, Some(f)) => Some(format!("? ({f})")),
        (Some(m), Some(f)) => Some(format!("{m} ({f})")),
    }
}

fn model_line(d: &TriageData, start: i64) -> Option<TriageLine> {
    let (w, wn) = mix(d
        .window
        .iter()
        .filter_map(model_key)
        .collect::<Vec<_>>()
        .iter()
        .map(String::as_str));
    let (b, bn) = mix(d
        .baseline
        .iter()
        .filter_map(model_key)
        .collect::<Vec<_>>()
        .iter()
        .map(String::as_str));
    let new = new_values(&w, wn, &b, bn);
    if new.is_empty() && d.model_events.is_empty() {
        return None;
    }
    let mut text = format!(
        "model: window {} vs baseline {}",
        mix_text(&w, wn),
        mix_text(&b, bn)
    );
    if !new.is_empty() {
        text.push_str(&format!(
            "; new in the window: {}",
            truncate(&one_line(&new.join(", ")), 120)
        ));
    }
    if let Some(e) = d.model_events.last() {
        let (old, new) = (e.before(), e.after());
        text.push_str(&format!(
            "; change event {} → {} ({})",
            truncate(&one_line(&old), 60),
            truncate(&one_line(&new), 60),
            crate::annotations::relative(e.at_ms, start)
        ));
    }
    Some(TriageLine {
        kind: "model".into(),
        rule: None,
        text,
    })
}

fn prompt_line(
    d: &TriageData,
    start: i64,
    confined: &BTreeMap<String, String>,
) -> Option<TriageLine> {
    let (w, wn) = mix(d.window.iter().filter_map(|r| r.prompt_version.as_deref()));
    let (b, bn) = mix(d
        .baseline
        .iter()
        .filter_map(|r| r.prompt_version.as_deref()));
    if wn == 0 {
        return None;
    }
    let new = new_values(&w, wn, &b, bn);
    // Total variation distance of the mixes, beyond noise: a version whose
    // share moved by a quarter of the traffic.
    let moved = w.iter().any(|(v, c)| {
        let bc = b.iter().find(|(bv, _)| bv == v).map_or(0, |x| x.1);
        (share(*c, wn) - share(bc, bn)).abs() >= 0.25
            && two_proportions(*c as u64, wn as u64, bc as u64, bn as u64) < SHARE_P
    });
    if new.is_empty() && !moved {
        return None;
    }
    let mut text = String::from("prompt version: ");
    for v in &new {
        let c = w.iter().find(|(x, _)| x == v).map_or(0, |x| x.1);
        let first = d.first_seen.iter().find(|(x, _)| x == v).map(|x| x.1);
        text.push_str(&format!(
            "{} first seen {}; {} of window traffic; ",
            truncate(&one_line(v), 60),
            first
                .map(|t| crate::annotations::relative(t, start))
                .unwrap_or_else(|| "in the window".into()),
            pct(share(c, wn)),
        ));
        if let Some(rules) = confined.get(v) {
            text.push_str(&format!(
                "the shift is confined to {} ({rules}); ",
                truncate(&one_line(v), 60)
            ));
        }
    }
    text.push_str(&format!(
        "mix during {} vs before {}",
        mix_text(&w, wn),
        mix_text(&b, bn)
    ));
    Some(TriageLine {
        kind: "prompt_version".into(),
        rule: None,
        text,
    })
}

fn token_line(d: &TriageData, firing_truncation: bool) -> Option<TriageLine> {
    let trunc = |rows: &[TriageRow]| {
        rows.iter()
            .filter(|r| crate::store::rollups::is_truncation(r.finish_reason.as_deref()))
            .count()
    };
    let near = |rows: &[TriageRow]| {
        let with: Vec<&TriageRow> = rows
            .iter()
            .filter(|r| r.max_tokens.is_some_and(|m| m > 0))
            .collect();
        let k = with
            .iter()
            .filter(|r| r.output_tokens as f64 >= NEAR_BUDGET * r.max_tokens.unwrap_or(0) as f64)
            .count();
        (k, with.len())
    };
    let (wn, bn) = (d.window.len(), d.baseline.len());
    let (wt, bt) = (trunc(&d.window), trunc(&d.baseline));
    let ((wk, wm), (bk, bm)) = (near(&d.window), near(&d.baseline));
    let trunc_rose = rose(wt, wn, bt, bn, SHARE_P);
    let near_rose = rose(wk, wm, bk, bm, SHARE_P);
    if !(trunc_rose || near_rose || (firing_truncation && wt > 0)) {
        return None;
    }
    let mut text = format!(
        "token budget: finish_reason length in {} of the window vs {} of the baseline",
        pct(share(wt, wn)),
        pct(share(bt, bn))
    );
    if wm > 0 {
        text.push_str(&format!(
            "; outputs within {} of max_tokens: {} vs {}",
            pct(1.0 - NEAR_BUDGET),
            pct(share(wk, wm)),
            if bm > 0 {
                pct(share(bk, bm))
            } else {
                "n/a".into()
            }
        ));
        let mode = |rows: &[TriageRow]| {
            let (m, _) = mix(rows
                .iter()
                .filter_map(|r| r.max_tokens)
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str));
            m.first().map(|x| x.0.clone())
        };
        if let (Some(wmode), Some(bmode)) = (mode(&d.window), mode(&d.baseline))
            && wmode != bmode
        {
            text.push_str(&format!("; max_tokens mostly {wmode} (baseline {bmode})"));
        }
    }
    Some(TriageLine {
        kind: "token_budget".into(),
        rule: None,
        text,
    })
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

/// Two means differ beyond noise by at least `rel` of the baseline's.
fn means_moved(w: (usize, f64, f64), b: (usize, f64, f64), rel: f64) -> bool {
    if w.0 < MIN_SLICE || b.0 < MIN_SLICE {
        return false;
    }
    let se = (w.2 * w.2 + b.2 * b.2).sqrt();
    let diff = w.1 - b.1;
    diff.abs() >= rel * b.1.abs().max(1e-9) && (se == 0.0 || diff.abs() / se >= 3.3)
}

fn retrieval_line(d: &TriageData) -> Option<TriageLine> {
    let with = |rows: &[TriageRow]| rows.iter().filter(|r| r.context_chars.is_some()).count();
    let (wn, bn) = (d.window.len(), d.baseline.len());
    let (wc, bc) = (with(&d.window), with(&d.baseline));
    if bc == 0 {
        return None;
    }
    let passages =
        |rows: &[TriageRow]| moments(rows.iter().filter_map(|r| r.passages).map(|p| p as f64));
    let chars = |rows: &[TriageRow]| {
        moments(
            rows.iter()
                .filter_map(|r| r.context_chars)
                .map(|p| p as f64),
        )
    };
    let (wp, bp) = (passages(&d.window), passages(&d.baseline));
    let (wch, bch) = (chars(&d.window), chars(&d.baseline));
    let fewer = rose(bc, bn, wc, wn, SHARE_P) && share(bc, bn) - share(wc, wn) >= 0.05;
    let thinner = means_moved(wp, bp, 0.25) || means_moved(wch, bch, 0.25);
    if !(fewer || thinner) {
        return None;
    }
    let avg = |m: (usize, f64, f64), c: (usize, f64, f64)| {
        if m.0 == 0 {
            "no context".to_string()
        } else {
            format!("{} passages, ~{} chars", fmt_num(m.1), fmt_num(c.1))
        }
    };
    let text = format!(
        "retrieval: {} of window records had context vs {} of the baseline; on average {} vs {} (missing or thinner context points at retrieval, not the model)",
        pct(share(wc, wn)),
        pct(share(bc, bn)),
        avg(wp, wch),
        avg(bp, bch)
    );
    Some(TriageLine {
        kind: "retrieval".into(),
        rule: None,
        text,
    })
}

/// Per session: its most repeated (tool, arguments) pair and how often.
fn loops(rows: &[TriageRow]) -> (usize, Vec<(String, String, usize)>) {
    let mut per: HashMap<&str, HashMap<(String, String), usize>> = HashMap::new();
    for r in rows {
        let (Some(s), Some(t)) = (r.session_id.as_deref(), r.tool_calls.as_deref()) else {
            continue;
        };
        let entry = per.entry(s).or_default();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(t) else {
            continue;
        };
        for c in crate::sessions::parse_tool_calls(&v).unwrap_or_default() {
            *entry.entry((c.name, c.hash)).or_default() += 1;
        }
    }
    let sessions = per.len();
    let mut looped: Vec<(String, String, usize)> = per
        .into_iter()
        .filter_map(|(s, calls)| {
            let ((name, _), n) = calls
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))?;
            (n >= LOOP_REPEATS).then(|| (s.to_string(), name, n))
        })
        .collect();
    looped.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    (sessions, looped)
}

fn tools_line(d: &TriageData) -> Option<TriageLine> {
    let (ws, wl) = loops(&d.window);
    let (bs, bl) = loops(&d.baseline);
    let more = !wl.is_empty() && (bl.is_empty() || rose(wl.len(), ws, bl.len(), bs, 0.01));
    if !more && d.fired_sessions.is_empty() {
        return None;
    }
    let mut text = format!(
        "tool calls: {} of {} sessions in the window repeated a call with the same arguments {}+ times (baseline {} of {})",
        wl.len(),
        ws,
        LOOP_REPEATS,
        bl.len(),
        bs
    );
    if let Some((s, name, n)) = wl.first() {
        text.push_str(&format!(
            "; worst: {} ×{n} in session {}",
            truncate(&one_line(name), 60),
            truncate(&one_line(s), 60)
        ));
    }
    if !d.fired_sessions.is_empty() {
        let list: Vec<String> = d
            .fired_sessions
            .iter()
            .take(3)
            .map(|s| {
                format!(
                    "{} ({})",
                    truncate(&one_line(&s.session_id), 60),
                    one_line(&s.fired)
                )
            })
            .collect();
        text.push_str(&format!(
            "; session alerts fired: {}{}",
            list.join(", "),
            if d.fired_sessions.len() > 3 {
                format!(" and {} more", d.fired_sessions.len() - 3)
            } else {
                String::new()
            }
        ));
    }
    Some(TriageLine {
        kind: "tool_calls".into(),
        rule: None,
        text,
    })
}

/// A rule's value of one record (`None`: the record does not count).
type Stat = fn(&TriageRow) -> Option<f64>;

/// The per-record statistic of a rule, and whether it is a rate.
fn statistic(rule: Rule) -> Option<(Stat, bool)> {
    fn refusal(r: &TriageRow) -> Option<f64> {
        Some(f64::from(u8::from(r.refusal)))
    }
    fn truncation(r: &TriageRow) -> Option<f64> {
        Some(f64::from(u8::from(crate::store::rollups::is_truncation(
            r.finish_reason.as_deref(),
        ))))
    }
    fn length(r: &TriageRow) -> Option<f64> {
        Some(r.output_tokens as f64)
    }
    fn score(r: &TriageRow) -> Option<f64> {
        r.score
    }
    match rule {
        Rule::RefusalRateShift => Some((refusal, true)),
        Rule::TruncationRate => Some((truncation, true)),
        Rule::LengthDrift => Some((length, false)),
        Rule::JudgeScoreDrop => Some((score, false)),
        _ => None,
    }
}

/// The dimensions a record is split by, with its value in each.
fn dims(r: &TriageRow) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(m) = &r.response_model {
        out.push(("response_model".into(), m.clone()));
    }
    if let Some(p) = &r.prompt_version {
        out.push(("prompt_version".into(), p.clone()));
    }
    if let Some(f) = &r.finish_reason {
        out.push(("finish_reason".into(), f.clone()));
    }
    if let Some(l) = &r.labels
        && let Ok(m) = serde_json::from_str::<BTreeMap<String, String>>(l)
    {
        for (k, v) in m {
            out.push((format!("label:{k}"), v));
        }
    }
    out
}

/// A group's estimate and standard error: for rates the Agresti–Caffo
/// adjusted proportion (one success and one failure added), which keeps the
/// interval honest at small counts and rates near 0.
#[derive(Debug, Clone, Copy)]
struct Est {
    n: usize,
    raw: f64,
    adj: f64,
    se: f64,
}

fn est(xs: &[f64], rate: bool) -> Est {
    let (n, m, se) = moments(xs.iter().copied());
    if rate {
        let k: f64 = xs.iter().sum();
        let p = (k + 1.0) / (n as f64 + 2.0);
        Est {
            n,
            raw: m,
            adj: p,
            se: (p * (1.0 - p) / (n as f64 + 2.0)).sqrt(),
        }
    } else {
        Est {
            n,
            raw: m,
            adj: m,
            se,
        }
    }
}

fn ci(e: Est) -> (f64, f64) {
    (e.adj - 1.96 * e.se, e.adj + 1.96 * e.se)
}

/// The normal quantile at `1 - p` (bisection on the CDF; p in (0, 0.5)).
fn z_of(p: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 10.0);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if 1.0 - normal_cdf(mid) > p {
            lo = mid
        } else {
            hi = mid
        }
    }
    (lo + hi) / 2.0
}

fn fmt_stat(x: f64, rate: bool) -> String {
    if rate { pct(x) } else { fmt_num(x) }
}

/// The statistic of the alert's rule split by every dimension the records
/// carry, each split with the slice that carries the effect when one does.
///
/// A slice carries the effect when (1) its change from its own baseline
/// (or the stream's, when the slice is new) is in the alert's direction and
/// significant at [`LOCALISE_ALPHA`] Bonferroni-corrected over every slice
/// tried, and (2) the rest of the traffic is clearly unchanged: its change,
/// 95 % interval included, stays below half the slice's change taken at the
/// near end of its 95 % interval. A shift seen everywhere, or a slice too
/// small to tell, localises nothing.
pub fn splits(d: &TriageData, alert: &AlertRow) -> Vec<Split> {
    let Some(rule) = Rule::parse(&alert.rule) else {
        return Vec::new();
    };
    let Some((stat, rate)) = statistic(rule) else {
        return Vec::new();
    };
    let (window, baseline): (&[TriageRow], &[TriageRow]) = if rule == Rule::JudgeScoreDrop {
        match d.judged.iter().find(|(j, _, _)| *j == alert.dimension) {
            Some((_, w, b)) => (w.as_slice(), b.as_slice()),
            None => return Vec::new(),
        }
    } else {
        (d.window.as_slice(), d.baseline.as_slice())
    };
    let sign =
        if alert.value.is_finite() && alert.baseline.is_finite() && alert.value < alert.baseline {
            -1.0
        } else {
            1.0
        };
    // dimension → value → (window xs, baseline xs)
    type Groups = BTreeMap<String, BTreeMap<String, (Vec<f64>, Vec<f64>)>>;
    let mut groups: Groups = BTreeMap::new();
    let mut all_b = Vec::new();
    for (side, rows) in [(0, window), (1, baseline)] {
        for r in rows {
            let Some(x) = stat(r) else { continue };
            if side == 1 {
                all_b.push(x);
            }
            for (dim, v) in dims(r) {
                if rule == Rule::TruncationRate && dim == "finish_reason" {
                    continue; // truncation is a finish reason: trivially "localised"
                }
                let g = groups.entry(dim).or_default().entry(v).or_default();
                if side == 0 { g.0.push(x) } else { g.1.push(x) }
            }
        }
    }
    let all_base = est(&all_b, rate);
    // Candidates: slices big enough in a dimension with two or more values
    // in the window.
    let tried: usize = groups
        .values()
        .filter(|vals| vals.values().filter(|g| !g.0.is_empty()).count() >= 2)
        .map(|vals| vals.values().filter(|g| g.0.len() >= MIN_SLICE).count())
        .sum();
    let z_crit = z_of(LOCALISE_ALPHA / tried.max(1) as f64);
    let mut out = Vec::new();
    for (dim, vals) in &groups {
        if vals.values().filter(|g| !g.0.is_empty()).count() < 2 {
            continue;
        }
        let mut best: Option<(f64, String)> = None;
        let mut slices = Vec::new();
        for (v, (w, b)) in vals {
            if w.is_empty() {
                continue;
            }
            let we = est(w, rate);
            let be = if b.len() >= MIN_SLICE {
                est(b, rate)
            } else {
                all_base
            };
            slices.push(Slice {
                value: v.clone(),
                window_n: we.n,
                window: we.raw,
                baseline_n: b.len(),
                baseline: if b.is_empty() {
                    f64::NAN
                } else {
                    est(b, rate).raw
                },
                window_ci: ci(we),
                baseline_ci: if b.is_empty() {
                    (f64::NAN, f64::NAN)
                } else {
                    ci(est(b, rate))
                },
            });
            if we.n < MIN_SLICE || be.n < MIN_SLICE {
                continue;
            }
            // The rest of the traffic, window and baseline.
            let rest_w: Vec<f64> = vals
                .iter()
                .filter(|(k, _)| *k != v)
                .flat_map(|(_, g)| g.0.iter().copied())
                .collect();
            let rest_b: Vec<f64> = vals
                .iter()
                .filter(|(k, _)| *k != v)
                .flat_map(|(_, g)| g.1.iter().copied())
                .collect();
            if rest_w.len() < MIN_SLICE || rest_b.len() < MIN_SLICE {
                continue;
            }
            let (rw, rb) = (est(&rest_w, rate), est(&rest_b, rate));
            let delta = sign * (we.adj - be.adj);
            let se = (we.se * we.se + be.se * be.se).sqrt();
            let rest_delta = sign * (rw.adj - rb.adj);
            let rest_se = (rw.se * rw.se + rb.se * rb.se).sqrt();
            let z = if se > 0.0 {
                delta / se
            } else if delta > 0.0 {
                f64::INFINITY
            } else {
                0.0
            };
            let low = delta - 1.96 * se;
            let rest_clear = rest_delta.abs() + 1.96 * rest_se < low / 2.0;
            if z >= z_crit && low > 0.0 && rest_clear && best.as_ref().is_none_or(|(bz, _)| z > *bz)
            {
                best = Some((z, v.clone()));
            }
        }
        slices.sort_by(|a, b| {
            b.window_n
                .cmp(&a.window_n)
                .then_with(|| a.value.cmp(&b.value))
        });
        slices.truncate(MAX_SLICES);
        out.push(Split {
            rule: alert.rule.clone(),
            label: super::message::rule_label(&alert.rule).to_string(),
            dimension: dim.clone(),
            rate,
            slices,
            localised: best.map(|(_, v)| v),
        });
    }
    out
}

/// The line of a split that localised the effect:
/// `refusal rate rose only where prompt_version = v13: 0.9 % → 7.8 % (n=412); elsewhere 0.9 % → 1.0 % (n=388)`.
fn localised_line(d: &TriageData, alert: &AlertRow, s: &Split, value: &str) -> Option<TriageLine> {
    let rule = Rule::parse(&alert.rule)?;
    let (stat, rate) = statistic(rule)?;
    let (window, baseline): (&[TriageRow], &[TriageRow]) = if rule == Rule::JudgeScoreDrop {
        let (_, w, b) = d.judged.iter().find(|(j, _, _)| *j == alert.dimension)?;
        (w.as_slice(), b.as_slice())
    } else {
        (d.window.as_slice(), d.baseline.as_slice())
    };
    let of = |rows: &[TriageRow], inside: bool| -> Vec<f64> {
        rows.iter()
            .filter(|r| {
                let has = dims(r).iter().any(|(k, v)| *k == s.dimension && v == value);
                has == inside
            })
            .filter_map(stat)
            .collect()
    };
    let (iw, ib, ow, ob) = (
        of(window, true),
        of(baseline, true),
        of(window, false),
        of(baseline, false),
    );
    let all_b: Vec<f64> = baseline.iter().filter_map(stat).collect();
    let inside_base = if ib.len() >= MIN_SLICE { &ib } else { &all_b };
    let m = |xs: &[f64]| moments(xs.iter().copied()).1;
    let verb = if alert.value < alert.baseline {
        "fell"
    } else {
        "rose"
    };
    let dim = s.dimension.strip_prefix("label:").unwrap_or(&s.dimension);
    let text = format!(
        "{} {verb} only where {} = {}: {} → {} (n={}){}; elsewhere {} → {} (n={}), unchanged",
        s.label,
        truncate(&one_line(dim), 60),
        truncate(&one_line(value), 60),
        fmt_stat(m(inside_base), rate),
        fmt_stat(m(&iw), rate),
        iw.len(),
        if ib.len() < MIN_SLICE {
            " (new: against the stream's baseline)"
        } else {
            ""
        },
        fmt_stat(m(&ob), rate),
        fmt_stat(m(&ow), rate),
        ow.len()
    );
    Some(TriageLine {
        kind: "localised".into(),
        rule: Some(alert.rule.clone()),
        text,
    })
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
            if let Some(l) = localised_line(d, a, s, &v) {
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
        model_line(d, start),
        prompt_line(d, start, &confined),
        token_line(d, truncation),
        retrieval_line(d),
        tools_line(d),
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
#[path = "triage_tests.rs"]
mod tests;
