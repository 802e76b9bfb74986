//! `POST /v1/logs`: OTLP/HTTP logs (protobuf or JSON) carrying the GenAI
//! events instrumentations now emit as log records instead of span events.
//!
//! Read, by event name (the log record's `event_name`, else its
//! `event.name` attribute): the message events (`gen_ai.system.message`,
//! `gen_ai.user.message`, `gen_ai.assistant.message`, `gen_ai.tool.message`,
//! `gen_ai.choice`), `gen_ai.client.inference.operation.details` with
//! `gen_ai.input.messages` / `gen_ai.output.messages`, and
//! `gen_ai.evaluation.result` (`gen_ai.evaluation.name`, numeric
//! `gen_ai.evaluation.score.value`, optional `gen_ai.evaluation.explanation`
//! kept as the score's reasoning). Other log records are ignored, as
//! non-GenAI spans are.
//!
//! Events are joined to their span's record by trace and span id (the
//! record id `otel:<trace>:<span>`): content fills an input or output the
//! span did not carry, an evaluation becomes a `precomputed` judge score.
//! The span may come first: the stored record is completed, and an output
//! it lacked recomputes its refusal flag and token count (and its place in
//! the roll-ups), since instrumentations that record content only as
//! events send spans whose output is empty. Or the span comes later: the
//! events then wait in the store and the span's record takes them when it
//! is ingested, before its signals are computed. A span that never arrives
//! leaves its events stored and pending; a log record is never a record of
//! its own. A GenAI event without a span id cannot be joined and is
//! rejected, counted in `partialSuccess` like a malformed one.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{Value, json};

use super::api::IngestError;
use super::otlp::{
    answer, as_json, as_string, attr_map, decode, is_json, joined, messages, record_id,
};
use super::{Ctx, Input, Record};
use crate::store::log_events::{LateJudging, LogEvents};
use crate::store::rollups::Signals;
use crate::store::{JobPlan, ResponseRow};

/// Most bytes of a `gen_ai.evaluation.explanation` kept; the rest is cut.
const MAX_EXPLANATION_BYTES: usize = 4096;

pub async fn post_logs(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let json = is_json(&headers);
    let request: ExportLogsServiceRequest = match decode(json, &body) {
        Ok(r) => r,
        Err(e) => {
            return IngestError::BadRequest(format!("not an OTLP logs export: {e}"))
                .into_response();
        }
    };
    let live = ctx.live.current();
    let (events, rejected) = checked_events(
        &request,
        &live.ingest().stream_attribute,
        ctx.clock.now_ms(),
    );
    drop(request);
    let max = live.ingest().max_records;
    if events.len() > max {
        return IngestError::TooLarge {
            message: format!(
                "GenAI events of more than {max} spans in one export (ingest.max_records); export smaller batches"
            ),
            limit: max,
        }
        .into_response();
    }
    if !events.is_empty() {
        let judging = live.judging();
        let floor_cap = |s: &str| judging.floor_cap(s);
        let judges = |row: &ResponseRow| super::state::judges_for(live.judges(), row);
        let plan = JobPlan {
            floor_cap: &floor_cap,
            now_ms: ctx.clock.now_ms(),
        };
        let late = LateJudging {
            plan: &plan,
            judges: &judges,
        };
        let on = judging.enabled && !live.judges().is_empty();
        match ctx
            .store
            .attach_log_events(&events, on.then_some(&late))
            .await
        {
            Ok(done) => metrics::counter!("canaryd_judge_jobs_enqueued_total").increment(done.jobs),
            Err(e) => return IngestError::Store(e).into_response(),
        }
    }
    answer(
        json,
        &ExportLogsServiceResponse {
            partial_success: (rejected.log_records > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected.log_records,
                error_message: rejected.first.unwrap_or_default(),
            }),
        },
    )
}

/// Log records that could not be taken, for OTLP's `partial_success`.
#[derive(Debug, Default, PartialEq)]
pub struct Rejected {
    pub log_records: i64,
    /// The first reason, naming the log record's position and field.
    pub first: Option<String>,
}

impl Rejected {
    fn add(&mut self, n: i64, why: impl FnOnce() -> String) {
        self.log_records += n;
        self.first.get_or_insert_with(why);
    }
}

/// What one GenAI event contributes to its span's record.
#[derive(Debug, Default)]
struct Part {
    input: Vec<Value>,
    output: Option<String>,
    score: Option<(String, f64)>,
    explanation: Option<String>,
}

/// The events of one span, gathered over the export.
#[derive(Debug, Default)]
struct Gathered {
    stream: String,
    input: Vec<Value>,
    output: Option<String>,
    scores: BTreeMap<String, f64>,
    explanations: BTreeMap<String, String>,
    logs: i64,
    first_at: String,
}

/// The GenAI events of an export, one entry per span (ordered by record
/// id), each validated like a record (`record::check`); log records that
/// fail are left out and counted.
pub fn checked_events(
    req: &ExportLogsServiceRequest,
    stream_attribute: &str,
    received_ms: i64,
) -> (Vec<LogEvents>, Rejected) {
    let mut rejected = Rejected::default();
    let mut by_span: BTreeMap<String, Gathered> = BTreeMap::new();
    for (ri, rl) in req.resource_logs.iter().enumerate() {
        let resource: HashMap<&str, &AnyValue> = rl
            .resource
            .as_ref()
            .map(|r| attr_map(&r.attributes))
            .unwrap_or_default();
        for (si, sl) in rl.scope_logs.iter().enumerate() {
            for (li, log) in sl.log_records.iter().enumerate() {
                let at = format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]");
                let a = attr_map(&log.attributes);
                let name = if log.event_name.is_empty() {
                    a.get("event.name").and_then(|v| as_string(v))
                } else {
                    Some(log.event_name.clone())
                };
                let Some(part) = name.and_then(|n| read_event(&n, log, &a)) else {
                    continue;
                };
                let part = match part {
                    Ok(p) => p,
                    Err(why) => {
                        rejected.add(1, || format!("{at}: {why}"));
                        continue;
                    }
                };
                let unusable = |id: &[u8]| id.iter().all(|b| *b == 0);
                if unusable(&log.trace_id) || unusable(&log.span_id) {
                    rejected.add(1, || {
                        format!("{at}: traceId/spanId: a GenAI event must name its span to be joined to its record")
                    });
                    continue;
                }
                let g = by_span
                    .entry(record_id(&log.trace_id, &log.span_id))
                    .or_default();
                if g.logs == 0 {
                    g.first_at = at;
                    g.stream = a
                        .get(stream_attribute)
                        .or_else(|| resource.get(stream_attribute))
                        .and_then(|v| as_string(v))
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "unknown_service".into());
                }
                g.logs += 1;
                g.input.extend(part.input);
                if g.output.is_none() {
                    g.output = part.output;
                }
                if let Some((judge, score)) = part.score {
                    match part.explanation {
                        Some(e) => g.explanations.insert(judge.clone(), e),
                        None => g.explanations.remove(&judge),
                    };
                    g.scores.insert(judge, score);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(by_span.len());
    for (i, (ext_id, g)) in by_span.into_iter().enumerate() {
        let record = Record {
            id: Some(ext_id),
            stream: g.stream,
            input: (!g.input.is_empty()).then_some(Input::Messages(g.input)),
            output: g.output.clone().unwrap_or_default(),
            scores: g.scores,
            ..Default::default()
        };
        if let Err(e) = super::record::check(i, &record) {
            let at = g.first_at;
            rejected.add(g.logs, || format!("{at}: {}: {}", e.field, e.message));
            continue;
        }
        out.push(LogEvents {
            id: 0,
            ext_id: record.id.expect("set above"),
            input: record
                .input
                .as_ref()
                .map(|i| serde_json::to_string(i).expect("JSON values serialize")),
            output_signals: g.output.as_deref().map(|o| Signals {
                refusal: super::is_refusal(o),
                tokens: crate::tokens::count(o),
            }),
            output: g.output,
            scores: record.scores,
            explanations: g.explanations,
            received_ms,
        });
    }
    (out, rejected)
}

/// One log record as a GenAI event: `None` when it is not one canaryd
/// reads, an error when it is one and is malformed.
fn read_event(
    name: &str,
    log: &LogRecord,
    a: &HashMap<&str, &AnyValue>,
) -> Option<Result<Part, String>> {
    let body = log.body.as_ref().map(as_json).unwrap_or(Value::Null);
    // A field of the event: an attribute, else a key of a structured body.
    let field = |k: &str| {
        a.get(k)
            .map(|v| as_json(v))
            .or_else(|| body.get(k).cloned())
    };
    let mut part = Part::default();
    match name {
        "gen_ai.system.message"
        | "gen_ai.user.message"
        | "gen_ai.assistant.message"
        | "gen_ai.tool.message" => {
            let role = name
                .trim_start_matches("gen_ai.")
                .trim_end_matches(".message");
            let content = match &body {
                Value::String(_) => Some(body.clone()),
                _ => field("content"),
            };
            // Without content capture an instrumentation sends the event empty.
            if let Some(c) = content.filter(|c| !c.is_null()) {
                part.input = messages(json!([{"role": role, "content": c}]));
            }
        }
        "gen_ai.choice" => {
            part.output = field("message")
                .map(|m| joined(&messages(Value::Array(vec![m]))))
                .or_else(|| field("content").map(|c| joined(&messages(json!([{"content": c}])))))
                .filter(|t| !t.is_empty());
        }
        "gen_ai.client.inference.operation.details" => {
            if let Some(v) = field("gen_ai.input.messages") {
                part.input = messages(v);
            }
            part.output = field("gen_ai.output.messages")
                .map(|v| joined(&messages(v)))
                .filter(|t| !t.is_empty());
        }
        "gen_ai.evaluation.result" => {
            let Some(judge) = field("gen_ai.evaluation.name")
                .and_then(|v| v.as_str().map(str::to_string))
                .filter(|s| !s.trim().is_empty())
            else {
                return Some(Err("gen_ai.evaluation.name: missing or empty".into()));
            };
            let score = match field("gen_ai.evaluation.score.value") {
                Some(v) => v.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
                    format!("gen_ai.evaluation.score.value: expected a finite number, got {v}")
                }),
                None => Err(format!(
                    "gen_ai.evaluation.score.value: missing for evaluation {judge:?} (a label alone is not a score)"
                )),
            };
            match score {
                Ok(s) => part.score = Some((judge, s)),
                Err(e) => return Some(Err(e)),
            }
            part.explanation = field("gen_ai.evaluation.explanation")
                .and_then(|v| v.as_str().map(str::trim).map(str::to_string))
                .filter(|e| !e.is_empty())
                .map(|mut e| {
                    // Reasoning shown beside a score, not a document: bounded
                    // like a judge's own reasoning.
                    e.truncate(crate::text::floor_char_boundary(&e, MAX_EXPLANATION_BYTES));
                    e
                });
        }
        _ => return None,
    }
    Some(Ok(part))
}

/// Gives records about to be stored the events that arrived before them
/// (content they lack, scores), and returns the pending rows taken, to be
/// removed once the records are stored.
pub async fn take_pending(ctx: &Ctx, records: &mut [Record]) -> Result<Vec<i64>, IngestError> {
    let index: HashMap<String, usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.session_only)
        .filter_map(|(i, r)| r.id.clone().map(|id| (id, i)))
        .collect();
    if index.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = index.keys().cloned().collect();
    let pending = ctx.store.pending_log_events(&ids).await?;
    for ev in &pending {
        let Some(&i) = index.get(&ev.ext_id) else {
            continue;
        };
        let r = &mut records[i];
        if r.input.is_none() {
            r.input = ev
                .input
                .as_deref()
                .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
                .map(Input::Messages);
        }
        if r.output.is_empty()
            && let Some(o) = &ev.output
        {
            r.output = o.clone();
        }
        for (judge, score) in &ev.scores {
            if !r.scores.contains_key(judge) {
                r.scores.insert(judge.clone(), *score);
                if let Some(e) = ev.explanations.get(judge) {
                    r.explanations.insert(judge.clone(), e.clone());
                }
            }
        }
    }
    Ok(pending.iter().map(|e| e.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(logs: &str) -> ExportLogsServiceRequest {
        let body = format!(
            r#"{{"resourceLogs": [{{"resource": {{"attributes": [{{"key": "service.name", "value": {{"stringValue": "bot"}}}}]}},
              "scopeLogs": [{{"logRecords": [{logs}]}}]}}]}}"#
        );
        serde_json::from_str(&body).unwrap()
    }

    #[test]
    fn events_of_one_span_are_gathered_and_malformed_ones_counted() {
        let req = export(
            r#"{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "eventName": "gen_ai.user.message",
                "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "Where is my order?"}}]}}},
               {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "attributes": [{"key": "event.name", "value": {"stringValue": "gen_ai.choice"}}],
                "body": {"kvlistValue": {"values": [{"key": "message", "value": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "It shipped."}}]}}}]}}},
               {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "eventName": "gen_ai.evaluation.result",
                "attributes": [{"key": "gen_ai.evaluation.name", "value": {"stringValue": "relevance"}},
                               {"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": 0.75}}]},
               {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "eventName": "gen_ai.evaluation.result",
                "attributes": [{"key": "gen_ai.evaluation.name", "value": {"stringValue": "tone"}},
                               {"key": "gen_ai.evaluation.score.label", "value": {"stringValue": "polite"}}]},
               {"eventName": "gen_ai.choice", "body": {"stringValue": "orphan"}},
               {"body": {"stringValue": "GET / 200"}}"#,
        );
        let (events, rejected) = checked_events(&req, "service.name", 7);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            e.ext_id,
            "otel:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
        );
        assert_eq!(e.output.as_deref(), Some("It shipped."));
        assert!(e.input.as_deref().unwrap().contains("Where is my order?"));
        assert_eq!(e.scores, BTreeMap::from([("relevance".to_string(), 0.75)]));
        assert_eq!(rejected.log_records, 2, "{rejected:?}");
        assert!(rejected.first.unwrap().starts_with(
            "resourceLogs[0].scopeLogs[0].logRecords[3]: gen_ai.evaluation.score.value"
        ));
        // The output's own signals travel with it, for a record already stored.
        assert_eq!(
            e.output_signals,
            Some(Signals {
                refusal: false,
                tokens: crate::tokens::count("It shipped.")
            })
        );
    }

    #[test]
    fn an_explanation_is_kept_bounded_and_follows_its_score() {
        let eval = |score: f64, explanation: &str| {
            format!(
                r#"{{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "eventName": "gen_ai.evaluation.result",
                    "attributes": [{{"key": "gen_ai.evaluation.name", "value": {{"stringValue": "relevance"}}}},
                                   {{"key": "gen_ai.evaluation.score.value", "value": {{"doubleValue": {score}}}}},
                                   {{"key": "gen_ai.evaluation.explanation", "value": {{"stringValue": "{explanation}"}}}}]}}"#
            )
        };
        let long = "é".repeat(MAX_EXPLANATION_BYTES);
        let (events, _) = checked_events(&export(&eval(0.5, &long)), "service.name", 7);
        let kept = &events[0].explanations["relevance"];
        assert!(kept.len() <= MAX_EXPLANATION_BYTES && kept.len() > MAX_EXPLANATION_BYTES - 2);
        assert!(long.starts_with(kept.as_str()));
        // A later evaluation by the same judge without one does not keep
        // the earlier reason beside the later score.
        let both = format!("{}, {}", eval(0.5, "on topic"), eval(0.9, " "));
        let (events, _) = checked_events(&export(&both), "service.name", 7);
        assert_eq!(events[0].scores["relevance"], 0.9);
        assert!(events[0].explanations.is_empty());
    }
}
