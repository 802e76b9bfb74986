//! The first questions of an incident, each answered for the stream as a
//! whole: which model and prompt version ran, whether the token budget was
//! hit, whether retrieval gave less context, whether agents looped. Each
//! line only when its share or mean moved beyond noise (or, for the model,
//! a change event exists).

use std::collections::{BTreeMap, HashMap};

use super::super::text::{fmt_num, one_line, truncate};
use super::{MIN_SLICE, TriageLine, TriageLink, mix, mix_text, moments, pct, rose, share};
use crate::signals::stats::two_proportions;
use crate::store::{TriageData, TriageRow};

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

pub(super) fn model_line(d: &TriageData, start: i64) -> Option<TriageLine> {
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
        links: Vec::new(),
    })
}

pub(super) fn prompt_line(
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
        links: Vec::new(),
    })
}

pub(super) fn token_line(d: &TriageData, firing_truncation: bool) -> Option<TriageLine> {
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
        links: Vec::new(),
    })
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

pub(super) fn retrieval_line(d: &TriageData) -> Option<TriageLine> {
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
        links: Vec::new(),
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
        for c in crate::tool_calls::parse_tool_calls(&v).unwrap_or_default() {
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

pub(super) fn tools_line(d: &TriageData) -> Option<TriageLine> {
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
    // Each session the line names, once, in the order named: its page is
    // the timeline with the repeated call marked. The link takes the whole
    // id; only its text is shortened like the line's.
    let mut links: Vec<TriageLink> = Vec::new();
    let named = wl.first().map(|(s, _, _)| s.as_str()).into_iter().chain(
        d.fired_sessions
            .iter()
            .take(3)
            .map(|s| s.session_id.as_str()),
    );
    for id in named {
        let href = crate::alert::hook::session_path(&d.stream, id);
        if links.iter().all(|l| l.href != href) {
            links.push(TriageLink {
                text: format!("session {}", truncate(&one_line(id), 60)),
                href,
            });
        }
    }
    Some(TriageLine {
        kind: "tool_calls".into(),
        rule: None,
        text,
        links,
    })
}
