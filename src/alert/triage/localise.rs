//! Localising a firing rule's shift: the rule's per-record statistic split
//! by every dimension the records carry (response model, prompt version,
//! finish reason, the application's labels), and the one slice, if any,
//! that carries the effect while the rest of the traffic stays put.

use std::collections::BTreeMap;

use super::super::text::{fmt_num, one_line, truncate};
use super::{MIN_SLICE, Slice, Split, TriageLine, moments, pct};
use crate::signals::Rule;
use crate::signals::stats::normal_cdf;
use crate::store::{AlertRow, TriageData, TriageRow};

/// Family-wise false-lead rate of the localisation across the slices tried.
const LOCALISE_ALPHA: f64 = 0.01;
/// Most slices drawn per dimension.
const MAX_SLICES: usize = 6;

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
            label: super::super::message::rule_label(&alert.rule).to_string(),
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
pub(super) fn localised_line(
    d: &TriageData,
    alert: &AlertRow,
    s: &Split,
    value: &str,
) -> Option<TriageLine> {
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
        links: Vec::new(),
    })
}
