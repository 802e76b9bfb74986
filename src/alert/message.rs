//! The facts of one notification, independent of the channel: what every
//! renderer (email templates, Slack blocks, webhook JSON) reads.
//!
//! Everything here is plain data. Text from production (answers, judge
//! reasoning, stream names) stays raw in this struct; each renderer escapes
//! it for its own format, and the subject line is sanitised here because it
//! becomes a mail header.

use std::collections::BTreeMap;

use serde::Serialize;

use super::evidence::Example;
pub use super::text::{fmt_num, one_line, truncate};
use crate::signals::Rule;
use crate::store::{AlertRow, Annotation, ModelEvent};
use crate::text::fmt_time;

/// One notification: a stream's firing and/or resolved alerts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// `firing` when anything in it fires, else `resolved`.
    pub status: String,
    pub stream: String,
    /// The subject line: `[FIRING] support-bot: groundedness 4.22 → 3.71`.
    pub title: String,
    /// Status page of the stream or suite, when a base URL is configured.
    pub link: Option<String>,
    pub firing: Vec<AlertView>,
    pub resolved: Vec<AlertView>,
    /// The stream is also firing `model_change`.
    pub model_change: bool,
    pub model_events: Vec<ModelEventView>,
    /// Recorded changes (deploys, prompt or index updates) near the start of
    /// the firing alerts, latest first; left out of the JSON when there are
    /// none so receivers and snapshots of alerts without any are unchanged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<AnnotationView>,
    /// The triage section (`alert::triage::lines`), set by the lifecycle
    /// after [`build`]; left out of the JSON when empty, like `annotations`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub triage: Vec<super::triage::TriageLine>,
    /// When this notification was built (UTC), and the same in milliseconds.
    pub at: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub rule: String,
    pub dimension: Option<String>,
    /// What changed, for people: `groundedness`, `refusal rate`.
    pub label: String,
    pub severity: String,
    pub value: f64,
    pub baseline: f64,
    pub threshold: f64,
    pub p_value: Option<f64>,
    pub samples: i64,
    pub baseline_samples: i64,
    /// `4.22 → 3.71` (baseline → current).
    pub change: String,
    pub value_text: String,
    pub baseline_text: String,
    pub summary: String,
    /// First notification of this episode.
    pub new: bool,
    /// When it started firing (or resolved), UTC, and the same in milliseconds.
    pub since: String,
    pub since_ms: Option<i64>,
    /// The session's page, for a session alert (`tool_call_loop`,
    /// `session_budget`: the dimension is the session id) when a base URL
    /// is configured; left out of the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_link: Option<String>,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEventView {
    pub at: String,
    pub scope: String,
    pub requested_model: String,
    pub old_model: Option<String>,
    pub new_model: Option<String>,
    pub old_fingerprint: Option<String>,
    pub new_fingerprint: Option<String>,
    /// `gpt-4o-2024-08-06 → gpt-4o-2024-11-20`
    pub change: String,
}

/// A change annotation cited by an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnotationView {
    pub at: String,
    pub at_ms: i64,
    /// The stream it was recorded for, or `*`.
    pub stream: String,
    pub kind: String,
    pub text: String,
    pub source: String,
    /// `12 min before the start` (of the earliest firing alert's episode).
    pub relative: String,
    /// The whole citation on one line, for plain-text channels:
    /// `deploy "v2.3" at 2026-12-01 21:40 UTC (12 min before the start)`.
    pub line: String,
}

/// What [`build`] needs.
pub struct Input<'a> {
    pub stream: &'a str,
    pub firing: &'a [AlertRow],
    pub resolved: &'a [AlertRow],
    pub examples: &'a BTreeMap<i64, Vec<Example>>,
    pub model_change: bool,
    pub model_events: &'a [ModelEvent],
    /// Annotations of the stream around the firing alerts' start; those
    /// that are not near it (`annotations::near`) are not cited.
    pub annotations: &'a [Annotation],
    pub base_url: Option<&'a str>,
    pub now_ms: i64,
    /// Alerts promoted to firing in this round.
    pub new_ids: &'a [i64],
    pub max_chars: usize,
}

/// What a rule measures, in words (an unknown rule name as it is).
pub(crate) fn rule_label(rule: &str) -> &str {
    match Rule::parse(rule) {
        Some(Rule::JudgeScoreDrop) => "judge score",
        Some(Rule::RefusalRateShift) => "refusal rate",
        Some(Rule::LengthDrift) => "output length",
        Some(Rule::EmbeddingDrift) => "embedding drift",
        Some(Rule::CanaryRegression) => "canary",
        Some(Rule::ModelChange) => "model change",
        Some(Rule::TruncationRate) => "truncation rate",
        Some(Rule::ToolCallLoop) => "tool-call loop",
        Some(Rule::SessionBudget) => "session budget",
        Some(Rule::SpendRate) => "spend rate",
        Some(Rule::JudgeDrift) => "judge drift",
        Some(Rule::ModelDrift) => "answer distribution",
        Some(Rule::LogprobShift) => "logprob shift",
        None => rule,
    }
}

fn label(a: &AlertRow) -> String {
    match (Rule::parse(&a.rule), a.dimension.as_str()) {
        (_, "") => rule_label(&a.rule).to_string(),
        (Some(Rule::JudgeScoreDrop), d) => d.to_string(),
        (_, d) => format!("{} ({d})", rule_label(&a.rule)),
    }
}

fn is_model_change(rule: &str) -> bool {
    Rule::parse(rule) == Some(Rule::ModelChange)
}

/// Triage lines for a message: the pages they name linked under the base
/// URL for links, or not at all without one (a path alone is no link in a
/// mail or a chat).
pub fn link_triage(
    mut lines: Vec<super::triage::TriageLine>,
    base_url: Option<&str>,
) -> Vec<super::triage::TriageLine> {
    for l in &mut lines {
        match base_url {
            Some(b) => {
                for k in &mut l.links {
                    k.href = format!("{}{}", b.trim_end_matches('/'), k.href);
                }
            }
            None => l.links.clear(),
        }
    }
    lines
}

/// The status page of a stream or suite, with the name URL-encoded.
pub fn link(base_url: Option<&str>, stream: &str) -> Option<String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let base = base_url?.trim_end_matches('/');
    let (kind, name) = match stream.strip_prefix("suite:") {
        Some(suite) => ("suites", suite),
        None => ("streams", stream),
    };
    let enc = utf8_percent_encode(name, NON_ALPHANUMERIC).to_string();
    // Keep the common unreserved characters readable.
    let enc = enc
        .replace("%2D", "-")
        .replace("%5F", "_")
        .replace("%2E", ".");
    Some(format!("{base}/{kind}/{enc}"))
}

fn view(a: &AlertRow, resolved: bool, input: &Input<'_>) -> AlertView {
    let change = if is_model_change(&a.rule) {
        one_line(&a.summary)
    } else if a.rule == "canary_regression" && (a.baseline_samples == 0 || a.value >= a.baseline) {
        // Fired on a flipped case, not a fall of the pass rate: an unknown
        // baseline must not read as 0 and a rate that rose must not read as
        // a regression. The detector's summary leads with the reason.
        let s = one_line(&a.summary);
        match s.split_once(": ") {
            Some((target, rest)) if target == a.dimension => rest.to_string(),
            _ => s,
        }
    } else {
        format!("{} → {}", fmt_num(a.baseline), fmt_num(a.value))
    };
    let since = if resolved {
        a.resolved_ms
    } else {
        a.firing_ms.or(a.pending_ms)
    };
    AlertView {
        id: a.id,
        rule: a.rule.clone(),
        dimension: (!a.dimension.is_empty()).then(|| a.dimension.clone()),
        label: label(a),
        severity: a.severity.clone(),
        value: a.value,
        baseline: a.baseline,
        threshold: a.threshold,
        p_value: a.p_value,
        samples: a.samples,
        baseline_samples: a.baseline_samples,
        change,
        value_text: fmt_num(a.value),
        baseline_text: if a.baseline_samples == 0 && a.rule != "model_change" {
            "unknown".into()
        } else {
            fmt_num(a.baseline)
        },
        summary: a.summary.clone(),
        new: input.new_ids.contains(&a.id) || (!resolved && a.last_notified_ms.is_none()),
        since: since.map(fmt_time).unwrap_or_default(),
        since_ms: since,
        session_link: (super::hook::applies(&a.rule) && !a.dimension.is_empty())
            .then(|| super::hook::session_url(input.base_url, &a.stream, &a.dimension))
            .flatten(),
        examples: if resolved {
            Vec::new()
        } else {
            input.examples.get(&a.id).cloned().unwrap_or_default()
        },
    }
}

fn headline(v: &AlertView, resolved: bool) -> String {
    if resolved && !is_model_change(&v.rule) {
        format!("{} back to {}", v.label, fmt_num(v.value))
    } else if is_model_change(&v.rule) {
        format!("model changed: {}", v.change)
    } else {
        format!("{} {}", v.label, v.change)
    }
}

/// The subject line, one line and at most ~160 characters.
fn title(stream: &str, firing: &[AlertView], resolved: &[AlertView], model_change: bool) -> String {
    let (tag, first, rest) = if let Some(f) = firing.first() {
        let tag = if firing.len() > 1 {
            format!("[FIRING:{}]", firing.len())
        } else {
            "[FIRING]".into()
        };
        (tag, headline(f, false), firing.len() - 1)
    } else {
        let r = &resolved[0];
        let tag = if resolved.len() > 1 {
            format!("[RESOLVED:{}]", resolved.len())
        } else {
            "[RESOLVED]".into()
        };
        (tag, headline(r, true), resolved.len() - 1)
    };
    let mut t = format!("{tag} {stream}: {first}");
    if rest > 0 {
        t.push_str(&format!(" (+{rest} more)"));
    }
    if !firing.is_empty() && !resolved.is_empty() {
        t.push_str(&format!("; {} resolved", resolved.len()));
    }
    if model_change && firing.first().is_some_and(|f| !is_model_change(&f.rule)) {
        t.push_str(" [model changed]");
    }
    truncate(&one_line(&t), 160)
}

/// The annotations near the start of the earliest firing episode (none
/// for a resolve-only message: a resolve notice explains nothing).
fn cited(input: &Input<'_>, firing: &[AlertRow]) -> Vec<AnnotationView> {
    let Some(start) = firing
        .iter()
        .filter_map(|a| a.pending_ms.or(a.firing_ms))
        .min()
    else {
        return Vec::new();
    };
    crate::annotations::near(input.annotations, start)
        .into_iter()
        .map(|a| {
            let text = truncate(&one_line(&a.text), input.max_chars);
            let relative = crate::annotations::relative(a.ts_ms, start);
            let line = format!(
                "{} \"{text}\" at {} ({relative}){}",
                a.kind,
                fmt_time(a.ts_ms),
                if a.stream == crate::annotations::ALL_STREAMS {
                    ", all streams"
                } else {
                    ""
                }
            );
            AnnotationView {
                at: fmt_time(a.ts_ms),
                at_ms: a.ts_ms,
                stream: a.stream,
                kind: a.kind,
                text,
                source: a.source,
                relative,
                line,
            }
        })
        .collect()
}

/// Builds the message for one channel.
pub fn build(input: Input<'_>) -> Message {
    let firing: Vec<AlertView> = input
        .firing
        .iter()
        .map(|a| view(a, false, &input))
        .collect();
    let resolved: Vec<AlertView> = input
        .resolved
        .iter()
        .map(|a| view(a, true, &input))
        .collect();
    let model_events = input
        .model_events
        .iter()
        .map(|e| {
            let (old, new) = (e.before(), e.after());
            let change = if e.old_model == e.new_model {
                format!(
                    "{old} (fingerprint {} → {})",
                    e.old_fingerprint.as_deref().unwrap_or("?"),
                    e.new_fingerprint.as_deref().unwrap_or("?")
                )
            } else {
                format!("{old} → {new}")
            };
            ModelEventView {
                at: fmt_time(e.at_ms),
                scope: e.scope.clone(),
                requested_model: e.requested_model.clone(),
                old_model: e.old_model.clone(),
                new_model: e.new_model.clone(),
                old_fingerprint: e.old_fingerprint.clone(),
                new_fingerprint: e.new_fingerprint.clone(),
                change: truncate(&one_line(&change), input.max_chars),
            }
        })
        .collect();
    let model_change = input.model_change || !input.model_events.is_empty() && !firing.is_empty();
    let annotations = cited(&input, input.firing);
    Message {
        status: if firing.is_empty() {
            "resolved"
        } else {
            "firing"
        }
        .into(),
        stream: input.stream.to_string(),
        title: title(input.stream, &firing, &resolved, model_change),
        link: link(input.base_url, input.stream),
        firing,
        resolved,
        model_change,
        model_events,
        annotations,
        triage: Vec::new(),
        at: fmt_time(input.now_ms),
        at_ms: input.now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_kills_crlf() {
        assert_eq!(one_line("bot\r\nBcc: evil@x.com"), "bot Bcc: evil@x.com");
        assert_eq!(one_line(" a\t\tb "), "a b");
    }

    #[test]
    fn truncates_at_words_and_marks_it() {
        assert_eq!(truncate("short", 10), "short");
        let t = truncate("the quick brown fox jumps over the lazy dog", 20);
        assert!(t.ends_with('…') && t.chars().count() <= 20, "{t}");
        assert_eq!(t, "the quick brown fox…");
        assert_eq!(truncate("ééééééééééé", 5).chars().count(), 5);
    }

    #[test]
    fn links_encode_names() {
        assert_eq!(
            link(Some("https://c.example/"), "support-bot").unwrap(),
            "https://c.example/streams/support-bot"
        );
        assert_eq!(
            link(Some("https://c.example"), "suite:refund policy").unwrap(),
            "https://c.example/suites/refund%20policy"
        );
        assert_eq!(
            link(Some("http://x"), "a/b?c").unwrap(),
            "http://x/streams/a%2Fb%3Fc"
        );
        assert_eq!(link(None, "s"), None);
    }

    fn canary_alert(value: f64, baseline: f64, baseline_samples: i64, summary: &str) -> AlertRow {
        AlertRow {
            id: 1,
            rule: "canary_regression".into(),
            stream: "suite:refunds".into(),
            dimension: "live".into(),
            state: "firing".into(),
            severity: "warning".into(),
            value,
            baseline,
            threshold: 0.1,
            p_value: None,
            samples: 14,
            baseline_samples,
            summary: summary.into(),
            pending_ms: Some(0),
            firing_ms: Some(0),
            resolved_ms: None,
            last_eval_ms: 0,
            last_notified_ms: None,
            resolve_pending: false,
            rev: 0,
        }
    }

    fn title_of(a: AlertRow) -> (String, String) {
        let firing = [a];
        let m = build(Input {
            stream: "suite:refunds",
            firing: &firing,
            resolved: &[],
            examples: &BTreeMap::new(),
            model_change: false,
            model_events: &[],
            annotations: &[],
            base_url: None,
            now_ms: 0,
            new_ids: &[],
            max_chars: 100,
        });
        (m.title, m.firing[0].baseline_text.clone())
    }

    #[test]
    fn a_canary_flip_without_baseline_runs_reads_as_the_flip_not_as_zero() {
        // The demo's alert: the suite had no baseline runs (stored 0) and
        // its pass rate is 93 %: it fired on a case that flipped.
        let (title, baseline) = title_of(canary_alert(
            0.929,
            0.0,
            0,
            "live: now failing after 3 passes: late-fee (pass rate 93 % (n=14; no baseline runs))",
        ));
        assert!(!title.contains("0.00"), "{title}");
        assert!(!title.contains("→ 0.929"), "{title}");
        assert!(
            title.contains("now failing after 3 passes: late-fee"),
            "{title}"
        );
        assert_eq!(baseline, "unknown");
        // A pass rate that rose does not read as a regression either.
        let (title, _) = title_of(canary_alert(
            0.95,
            0.9,
            40,
            "live: now failing after 3 passes: late-fee (pass rate 90 % → 95 % (n=14))",
        ));
        assert!(!title.contains("0.900 → 0.950"), "{title}");
        // A real fall of the pass rate still shows it.
        let (title, _) = title_of(canary_alert(
            0.6,
            0.95,
            40,
            "live: pass rate 95 % → 60 % (n=14)",
        ));
        assert!(title.contains("0.950 → 0.600"), "{title}");
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(4.2213), "4.22");
        assert_eq!(fmt_num(0.1134), "0.113");
        assert_eq!(fmt_num(1840.4), "1840");
        assert_eq!(fmt_num(f64::NAN), "n/a");
    }
}
