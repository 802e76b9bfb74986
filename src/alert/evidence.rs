//! Evidence for a notification: the worst examples behind an alert.
//!
//! A number alone gets ignored at 3 a.m.; the answers that dragged the
//! number down get read. Per rule:
//!
//! - `judge_score_drop`: the lowest-scored responses in the window with the
//!   judge's reasoning, the input and the output;
//! - `canary_regression`: the latest failing cases with the failing answer
//!   next to the other target's answer for the same run and case (pinned vs live);
//! - `refusal_rate_shift` / `truncation_rate`: recent refusals / cut answers;
//! - `length_drift`: the shortest (or longest) recent answers, in the
//!   direction of the drift; `embedding_drift`: recent answers;
//! - `model_drift`: the cases whose answer distributions moved most in the
//!   most decisive equality test, a reference answer ("before") next to a
//!   live one ("after").
//!
//! Texts are cut to `max_example_chars`; escaping is the renderers' job.

use serde::Serialize;

use super::AlertError;
use super::settings::AlertsConfig;
use super::text::{one_line, truncate};
use crate::signals::Rule;
use crate::store::{AlertRow, ModelEvent, ResponsePick, Store};

/// One example: a heading and labelled texts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub title: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    pub label: String,
    pub text: String,
}

fn field(label: &str, text: Option<String>, max: usize) -> Option<Field> {
    let text = text?;
    let text = text.trim();
    (!text.is_empty()).then(|| Field {
        label: label.into(),
        text: truncate(text, max),
    })
}

/// A response's `input` column is JSON: a string, or chat messages. The last
/// user message is what a person wants to see.
pub fn input_text(raw: Option<String>) -> Option<String> {
    let raw = raw?;
    match serde_json::from_str::<serde_json::Value>(&raw) {
        Ok(serde_json::Value::String(s)) => Some(s),
        Ok(serde_json::Value::Array(msgs)) => msgs
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
            .or(msgs.last())
            .and_then(|m| m.get("content"))
            .map(|c| {
                c.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| c.to_string())
            }),
        _ => Some(raw),
    }
}

/// Up to `max_examples` worst examples for `alert`, looking back `evidence_window` from `now_ms`.
pub async fn examples(
    store: &Store,
    alert: &AlertRow,
    cfg: &AlertsConfig,
    now_ms: i64,
) -> Result<Vec<Example>, AlertError> {
    let n = i64::try_from(cfg.max_examples).unwrap_or(0);
    if n == 0 {
        return Ok(Vec::new());
    }
    let since = now_ms - i64::try_from(cfg.evidence_window.0.as_millis()).unwrap_or(i64::MAX / 2);
    let max = cfg.max_example_chars;
    let dim = alert.dimension.as_str();
    let stream = alert.stream.as_str();
    let Some(rule) = Rule::parse(&alert.rule) else {
        return Ok(Vec::new());
    };
    let out = match rule {
        Rule::JudgeScoreDrop => {
            let rows = store
                .worst_judge_scores(stream, dim, since, now_ms, n)
                .await?;
            rows.into_iter()
                .map(
                    |crate::store::JudgedExample {
                         score,
                         reasoning,
                         ts_ms: ts,
                         input,
                         output,
                         answer,
                         case_id,
                         judge,
                     }| {
                        let mut title = format!(
                            "{judge} score {} · {}",
                            score.map(super::text::fmt_num).unwrap_or_default(),
                            crate::text::fmt_time(ts)
                        );
                        if let Some(c) = case_id {
                            title.push_str(&format!(" · case {}", one_line(&c)));
                        }
                        Example {
                            title,
                            fields: [
                                field("input", input_text(input), max),
                                field("output", output.or(answer), max),
                                field("judge reasoning", reasoning, max),
                            ]
                            .into_iter()
                            .flatten()
                            .collect(),
                        }
                    },
                )
                .collect()
        }
        Rule::CanaryRegression => {
            let suite = stream.strip_prefix("suite:").unwrap_or(stream);
            let rows = store
                .failed_canary_cases(suite, dim, since, now_ms, n)
                .await?;
            rows.into_iter()
                .map(
                    |crate::store::FailedCase {
                         case_id,
                         target,
                         answer,
                         verdicts,
                         other_target,
                         other_answer,
                     }| {
                        let failed = failed_checks(&verdicts);
                        let other_label = other_target.map(|t| format!("{} answer", one_line(&t)));
                        Example {
                            title: format!(
                                "case {} failed on {}",
                                one_line(&case_id),
                                one_line(&target)
                            ),
                            fields: [
                                field(&format!("{} answer", one_line(&target)), answer, max),
                                other_label.and_then(|l| field(&l, other_answer, max)),
                                field("failed checks", failed, max),
                            ]
                            .into_iter()
                            .flatten()
                            .collect(),
                        }
                    },
                )
                .collect()
        }
        Rule::RefusalRateShift
        | Rule::TruncationRate
        | Rule::LengthDrift
        | Rule::EmbeddingDrift => {
            let (pick, what) = match rule {
                Rule::RefusalRateShift => (ResponsePick::Refusals, "refusal"),
                Rule::TruncationRate => (ResponsePick::Truncated, "cut at the length limit"),
                Rule::LengthDrift if alert.value < alert.baseline => {
                    (ResponsePick::Shortest, "short answer")
                }
                Rule::LengthDrift => (ResponsePick::Longest, "long answer"),
                _ => (ResponsePick::Recent, "recent answer"),
            };
            let rows = store
                .example_responses(stream, pick, since, now_ms, n)
                .await?;
            rows.into_iter()
                .map(
                    |crate::store::ExampleResponse {
                         input,
                         output,
                         finish_reason: finish,
                         output_tokens: tokens,
                     }| Example {
                        title: format!(
                            "{what} · {tokens} tokens{}",
                            finish
                                .map(|f| format!(" · finish_reason {}", one_line(&f)))
                                .unwrap_or_default()
                        ),
                        fields: [
                            field("input", input_text(input), max),
                            field("output", Some(output), max),
                        ]
                        .into_iter()
                        .flatten()
                        .collect(),
                    },
                )
                .collect()
        }
        Rule::ToolCallLoop | Rule::SessionBudget => {
            session_timeline(store, stream, dim, max).await?
        }
        Rule::ModelDrift => {
            let suite = stream.strip_prefix("suite:").unwrap_or(stream);
            match store.equality_evidence(suite, dim, since, now_ms).await? {
                None => Vec::new(),
                Some((reference, top)) => top
                    .into_iter()
                    .take(cfg.max_examples)
                    .map(|c| Example {
                        title: format!(
                            "case {} moved (MMD² {}, p {}) · {} vs {}",
                            one_line(&c.case_id),
                            super::text::fmt_num(c.mmd2),
                            super::text::fmt_num(c.p_value),
                            one_line(dim),
                            one_line(&reference)
                        ),
                        fields: [
                            field("before (reference answer)", Some(c.reference_example), max),
                            field(
                                &format!("after ({} answer)", one_line(dim)),
                                Some(c.live_example),
                                max,
                            ),
                        ]
                        .into_iter()
                        .flatten()
                        .collect(),
                    })
                    .collect(),
            }
        }
        // The logprob finding's summary carries its evidence (probes, tokens, before/after).
        Rule::ModelChange | Rule::SpendRate | Rule::JudgeDrift | Rule::LogprobShift => Vec::new(),
    };
    Ok(out)
}

/// Events of a session's timeline shown in an alert (the latest ones).
const TIMELINE_EVENTS: usize = 40;

/// The session's timeline: one line per event (time, agent, tools with
/// argument hashes, tokens, cost), the repeated (tool, arguments) marked.
async fn session_timeline(
    store: &Store,
    stream: &str,
    session: &str,
    max: usize,
) -> Result<Vec<Example>, AlertError> {
    let Some(s) = store.session(stream, session).await? else {
        return Ok(Vec::new());
    };
    let events = store
        .session_events(stream, session, TIMELINE_EVENTS)
        .await?;
    Ok(vec![timeline_example(&s, &events, max)])
}

/// The timeline as an example (pure, for tests).
pub fn timeline_example(
    s: &crate::store::sessions::SessionSummary,
    events: &[crate::store::sessions::SessionEvent],
    max: usize,
) -> Example {
    let repeated = crate::sessions::detect::most_repeated(events)
        .filter(|(_, n)| *n >= 2)
        .map(|(t, _)| (t.name.clone(), t.hash.clone()));
    let fields = events
        .iter()
        .map(|e| {
            let tools: Vec<String> = e
                .tools
                .iter()
                .map(|t| {
                    let mark = if repeated.as_ref() == Some(&(t.name.clone(), t.hash.clone())) {
                        " ◀ repeated"
                    } else {
                        ""
                    };
                    match &t.args {
                        Some(a) => {
                            format!("{}({}) #{}{mark}", one_line(&t.name), one_line(a), t.hash)
                        }
                        None => format!("{} #{}{mark}", one_line(&t.name), t.hash),
                    }
                })
                .collect();
            let mut text = format!(
                "{} · {}",
                e.agent
                    .as_deref()
                    .map(one_line)
                    .unwrap_or_else(|| "-".into()),
                e.kind
            );
            if !tools.is_empty() {
                text.push_str(&format!(" · {}", tools.join(", ")));
            }
            text.push_str(&format!(" · {} tokens · ${:.4}", e.tokens, e.cost_usd));
            Field {
                label: chrono::DateTime::from_timestamp_millis(e.ts_ms)
                    .map(|t| t.format("%H:%M:%S").to_string())
                    .unwrap_or_default(),
                text: truncate(&text, max),
            }
        })
        .collect();
    Example {
        title: format!(
            "session {} · {} calls · {} tokens · ${:.2} · {} → {}{}",
            one_line(&s.session_id),
            s.calls,
            s.tokens,
            s.cost_usd,
            crate::text::fmt_time(s.first_ms),
            crate::text::fmt_time(s.last_ms),
            s.user_id
                .as_deref()
                .map(|u| format!(" · user {}", one_line(u)))
                .unwrap_or_default()
        ),
        fields,
    }
}

/// The expectations a canary answer failed, from its `verdicts` JSON.
fn failed_checks(verdicts: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(verdicts).ok()?;
    let items = v.as_array()?;
    let failed: Vec<String> = items
        .iter()
        .filter(|i| {
            i.get("pass")
                .or_else(|| i.get("passed"))
                .and_then(|p| p.as_bool())
                == Some(false)
        })
        .map(|i| {
            ["detail", "reason", "message", "expect", "check"]
                .iter()
                .find_map(|k| i.get(*k))
                .map(|d| {
                    d.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| d.to_string())
                })
                .unwrap_or_else(|| i.to_string())
        })
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// Model changes seen for this stream (`stream:<name>`) or suite
/// (`suite:<name>:<target>`) since `since_ms`.
pub async fn model_events(
    store: &Store,
    stream: &str,
    since_ms: i64,
) -> Result<Vec<ModelEvent>, AlertError> {
    let (prefix, exact) = match stream.strip_prefix("suite:") {
        Some(suite) => (format!("suite:{suite}:"), None),
        None => (format!("stream:{stream}"), Some(format!("stream:{stream}"))),
    };
    let mut events = store.model_events(&prefix, since_ms).await?;
    if let Some(exact) = exact {
        events.retain(|e| e.scope == exact);
    }
    events.reverse();
    events.truncate(5);
    Ok(events)
}

/// The records behind the triage section of `stream`'s pending or firing
/// `alerts` (`alert::triage`), over the periods of their earliest start;
/// `None` when none of them is open.
pub async fn triage_data(
    store: &Store,
    stream: &str,
    alerts: &[AlertRow],
    now_ms: i64,
) -> Result<Option<crate::store::TriageData>, AlertError> {
    use super::triage;
    if stream.starts_with("suite:") {
        return Ok(None); // canary suites have no production records
    }
    let Some(start) = triage::start_of(alerts) else {
        return Ok(None);
    };
    let (baseline_from_ms, window_from_ms, to_ms) = triage::periods(start, now_ms);
    let q = crate::store::TriageQuery {
        stream: stream.to_string(),
        baseline_from_ms,
        window_from_ms,
        to_ms,
        judges: triage::judges_of(alerts),
        limit: triage::ROW_LIMIT,
    };
    Ok(Some(store.triage_data(&q).await?))
}

/// Annotations of `stream` (or of all streams) that could be near the start
/// of one of its pending or firing `alerts`; `message::build` keeps the near ones.
pub async fn annotations(
    store: &Store,
    stream: &str,
    alerts: &[AlertRow],
) -> Result<Vec<crate::store::Annotation>, AlertError> {
    use crate::annotations::{NEAR_AFTER_MS, NEAR_BEFORE_MS};
    let starts = alerts
        .iter()
        .filter(|a| matches!(a.state.as_str(), "pending" | "firing"))
        .filter_map(|a| a.pending_ms.or(a.firing_ms));
    let (Some(lo), Some(hi)) = (starts.clone().min(), starts.max()) else {
        return Ok(Vec::new());
    };
    Ok(store
        .annotations(
            Some(stream),
            lo.saturating_sub(NEAR_BEFORE_MS),
            hi.saturating_add(NEAR_AFTER_MS),
            100,
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_text_takes_last_user_message() {
        let chat = r#"[{"role":"system","content":"be nice"},{"role":"user","content":"refund?"}]"#;
        assert_eq!(input_text(Some(chat.into())).unwrap(), "refund?");
        assert_eq!(input_text(Some("\"plain\"".into())).unwrap(), "plain");
        assert_eq!(input_text(Some("not json".into())).unwrap(), "not json");
    }

    #[test]
    fn failed_checks_lists_failures_only() {
        let v = r#"[{"pass":true,"detail":"ok"},{"pass":false,"detail":"missing \"30 days\""}]"#;
        assert_eq!(failed_checks(v).unwrap(), "missing \"30 days\"");
        assert_eq!(failed_checks("[]"), None);
    }
}
