//! `POST /v1/traces`: OTLP/HTTP traces (protobuf or JSON) whose GenAI spans
//! become records.
//!
//! A span is an LLM call when it carries `gen_ai.*` attributes; others are
//! ignored. Content is read from the current semantic conventions
//! (`gen_ai.input.messages` / `gen_ai.output.messages`, JSON with `parts`)
//! or the older ones (`gen_ai.prompt` / `gen_ai.completion` attributes,
//! indexed `gen_ai.prompt.N.content` attributes, and the
//! `gen_ai.content.prompt` / `gen_ai.content.completion`, `gen_ai.*.message`
//! and `gen_ai.choice` events). The stream comes from the configured
//! attribute (`ingest.stream_attribute`, default `service.name`), looked up
//! on the span first, then on the resource.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;

use super::api::{IngestError, store_records};
use super::record::{Input, content_text};
use super::{Ctx, Record};

pub async fn post_traces(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let json = is_json(&headers);
    let request: ExportTraceServiceRequest = match decode(json, &body) {
        Ok(r) => r,
        Err(e) => {
            return IngestError::BadRequest(format!("not an OTLP trace export: {e}"))
                .into_response();
        }
    };
    let started = std::time::Instant::now();
    let live = ctx.live.current();
    let (mut records, rejected) = checked_records(&request, &live.ingest().stream_attribute);
    drop(request);
    let max = live.ingest().max_records;
    if records.len() > max {
        return IngestError::TooLarge {
            message: format!(
                "more than {max} GenAI spans in one export (ingest.max_records); export smaller batches"
            ),
            limit: max,
        }
        .into_response();
    }
    let taken = match super::otlp_logs::take_pending(&ctx, &mut records).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let stored = store_records(&ctx, records, ctx.clock.now_ms()).await;
    crate::telemetry::record_ingest(stored.as_ref().ok(), started);
    if stored.is_ok()
        && let Err(e) = ctx.store.delete_log_events(&taken).await
    {
        // The events are in their records now; left pending they would only
        // be offered to the same (duplicate) records again.
        tracing::warn!(error = %e, "could not remove joined OTLP log events");
    }
    match stored {
        Ok(_) => answer(
            json,
            &ExportTraceServiceResponse {
                partial_success: (rejected.spans > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: rejected.spans,
                    error_message: rejected.first.unwrap_or_default(),
                }),
            },
        ),
        Err(e) => e.into_response(),
    }
}

/// OTLP/HTTP's two encodings: JSON when the request says so, else protobuf.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// An export request in the request's encoding.
pub(super) fn decode<T>(json: bool, body: &[u8]) -> Result<T, String>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    if json {
        serde_json::from_slice::<T>(body).map_err(|e| e.to_string())
    } else {
        T::decode(body).map_err(|e| e.to_string())
    }
}

/// The success answer, in the request's encoding; items left out are
/// reported in its `partial_success`, as OTLP/HTTP specifies.
pub(super) fn answer<T: prost::Message + serde::Serialize>(json: bool, resp: &T) -> Response {
    if json {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(resp).unwrap_or_else(|_| b"{}".to_vec()),
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            resp.encode_to_vec(),
        )
            .into_response()
    }
}

/// The records of every GenAI span in an export: model calls become
/// responses; `invoke_agent` and `execute_tool` spans become session events
/// (`session_only`).
pub fn to_records(req: &ExportTraceServiceRequest, stream_attribute: &str) -> Vec<Record> {
    checked_records(req, stream_attribute).0
}

/// Spans that could not become records, for OTLP's `partial_success`.
#[derive(Debug, Default, PartialEq)]
pub struct Rejected {
    pub spans: i64,
    /// The first reason, naming the span's position and field.
    pub first: Option<String>,
}

/// The records of every GenAI span, each validated like a JSON record
/// (`record::check`); a span that fails is left out and counted.
///
/// A span without usable ids (empty or all-zero trace or span id) would
/// share one record id with every other such span and be dropped as a
/// duplicate; it gets an id derived from its content and its position in
/// the export instead, so a retried export still deduplicates.
pub fn checked_records(
    req: &ExportTraceServiceRequest,
    stream_attribute: &str,
) -> (Vec<Record>, Rejected) {
    let mut out = Vec::new();
    let mut rejected = Rejected::default();
    let by_id: HashMap<&[u8], &Span> = req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| (s.span_id.as_slice(), s))
        .collect();
    for (ri, rs) in req.resource_spans.iter().enumerate() {
        let resource: HashMap<&str, &AnyValue> = rs
            .resource
            .as_ref()
            .map(|r| attr_map(&r.attributes))
            .unwrap_or_default();
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            for (pi, span) in ss.spans.iter().enumerate() {
                let Some(mut r) = span_record(span, &resource, stream_attribute) else {
                    continue;
                };
                if r.agent.is_none() {
                    r.agent = enclosing_agent(span, &by_id);
                }
                let unusable = |id: &[u8]| id.iter().all(|b| *b == 0);
                if unusable(&span.trace_id) || unusable(&span.span_id) {
                    r.id = Some(derived_id(&r, span, [ri, si, pi]));
                }
                match super::record::check(out.len(), &r) {
                    Ok(()) => out.push(r),
                    Err(e) => {
                        rejected.spans += 1;
                        rejected.first.get_or_insert_with(|| {
                            format!(
                                "resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]: {}: {}",
                                e.field, e.message
                            )
                        });
                    }
                }
            }
        }
    }
    (out, rejected)
}

/// The id of a span's record, `otel:<trace id>:<span id>` in hex; OTLP log
/// events name their span the same way and are joined by it.
pub(super) fn record_id(trace_id: &[u8], span_id: &[u8]) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("otel:{}:{}", hex(trace_id), hex(span_id))
}

/// `otel:derived:` and a hash of the span's position, times, name and content.
fn derived_id(r: &Record, span: &Span, position: [usize; 3]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in position {
        h.update((p as u64).to_le_bytes());
    }
    h.update(span.start_time_unix_nano.to_le_bytes());
    h.update(span.end_time_unix_nano.to_le_bytes());
    for part in [
        span.name.as_str(),
        r.stream.as_str(),
        r.output.as_str(),
        &r.input.as_ref().map(|i| i.to_text()).unwrap_or_default(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("otel:derived:{hex}")
}

pub(super) fn attr_map(attrs: &[KeyValue]) -> HashMap<&str, &AnyValue> {
    attrs
        .iter()
        .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.as_str(), v)))
        .collect()
}

pub(super) fn as_string(v: &AnyValue) -> Option<String> {
    match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::ArrayValue(a) => a.values.first().and_then(as_string),
        _ => None,
    }
}

pub(super) fn as_int(v: &AnyValue) -> Option<i64> {
    match v.value.as_ref()? {
        any_value::Value::IntValue(i) => Some(*i),
        any_value::Value::DoubleValue(d) => Some(*d as i64),
        any_value::Value::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

/// An attribute value as JSON (messages attributes may be JSON strings or
/// structured OTLP values).
pub(super) fn as_json(v: &AnyValue) -> Value {
    match v.value.as_ref() {
        Some(any_value::Value::StringValue(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(as_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .filter_map(|e| e.value.as_ref().map(|v| (e.key.clone(), as_json(v))))
                .collect(),
        ),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::BoolValue(b)) => Value::from(*b),
        _ => Value::Null,
    }
}

/// Chat messages in either shape: `{role, content}` or the semantic
/// conventions' `{role, parts: [{type: "text", content}]}`.
pub(super) fn messages(v: Value) -> Vec<Value> {
    let items = match v {
        Value::Array(a) => a,
        Value::String(s) => return vec![serde_json::json!({"role": "user", "content": s})],
        other => vec![other],
    };
    items
        .into_iter()
        .map(|m| {
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("user")
                .to_string();
            let text = match m.get("parts") {
                Some(parts) => content_text(Some(parts)),
                None => content_text(
                    m.get("content")
                        .or(m.get("message").and_then(|x| x.get("content"))),
                ),
            };
            serde_json::json!({"role": role, "content": text})
        })
        .collect()
}

/// The agent of the nearest enclosing span that names one (a model call
/// inside an `invoke_agent` span belongs to that agent).
fn enclosing_agent(span: &Span, by_id: &HashMap<&[u8], &Span>) -> Option<String> {
    let mut parent = span.parent_span_id.as_slice();
    for _ in 0..32 {
        let p = by_id.get(parent)?;
        let a = attr_map(&p.attributes);
        if let Some(name) = a.get("gen_ai.agent.name").and_then(|v| as_string(v)) {
            return Some(name);
        }
        parent = p.parent_span_id.as_slice();
    }
    None
}

/// `tool_call` parts of semantic-convention messages, as `tool_calls` entries.
fn tool_call_parts(v: &Value) -> Vec<Value> {
    let msgs: &[Value] = match v {
        Value::Array(a) => a,
        _ => return Vec::new(),
    };
    msgs.iter()
        .filter_map(|m| m.get("parts").and_then(Value::as_array))
        .flatten()
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("tool_call"))
        .map(|p| {
            let mut call = serde_json::Map::new();
            for k in ["id", "name", "arguments"] {
                if let Some(x) = p.get(k) {
                    call.insert(k.into(), x.clone());
                }
            }
            Value::Object(call)
        })
        .collect()
}

pub(super) fn joined(msgs: &[Value]) -> String {
    msgs.iter()
        .map(|m| content_text(m.get("content")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn span_record(
    span: &Span,
    resource: &HashMap<&str, &AnyValue>,
    stream_attribute: &str,
) -> Option<Record> {
    let a = attr_map(&span.attributes);
    if !a
        .keys()
        .any(|k| k.starts_with("gen_ai.") || k.starts_with("llm."))
    {
        return None;
    }
    let get = |k: &str| a.get(k).copied();
    let operation = get("gen_ai.operation.name").and_then(as_string);
    // Definitions and workflows are not turns of a session.
    if let Some("create_agent" | "invoke_workflow") = operation.as_deref() {
        return None;
    }
    let stream = get(stream_attribute)
        .or_else(|| resource.get(stream_attribute).copied())
        .and_then(as_string)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown_service".into());

    // Input: new attribute, old attribute, indexed attributes, events.
    let mut input_msgs: Vec<Value> = Vec::new();
    if let Some(v) = get("gen_ai.input.messages").or(get("gen_ai.prompt")) {
        input_msgs = messages(as_json(v));
    } else {
        for i in 0.. {
            let Some(c) = get(&format!("gen_ai.prompt.{i}.content")) else {
                break;
            };
            let role = get(&format!("gen_ai.prompt.{i}.role"))
                .and_then(as_string)
                .unwrap_or("user".into());
            input_msgs.push(
                serde_json::json!({"role": role, "content": as_string(c).unwrap_or_default()}),
            );
        }
    }
    let mut tool_calls: Vec<Value> = get("gen_ai.output.messages")
        .map(|v| tool_call_parts(&as_json(v)))
        .unwrap_or_default();
    let mut output = get("gen_ai.output.messages")
        .or(get("gen_ai.completion"))
        .map(|v| joined(&messages(as_json(v))));
    if output.is_none() && get("gen_ai.completion.0.content").is_some() {
        output = get("gen_ai.completion.0.content").and_then(as_string);
    }
    for ev in &span.events {
        let e = attr_map(&ev.attributes);
        match ev.name.as_str() {
            "gen_ai.content.prompt" if input_msgs.is_empty() => {
                if let Some(v) = e.get("gen_ai.prompt") {
                    input_msgs = messages(as_json(v));
                }
            }
            "gen_ai.content.completion" if output.is_none() => {
                output = e
                    .get("gen_ai.completion")
                    .map(|v| joined(&messages(as_json(v))));
            }
            "gen_ai.system.message"
            | "gen_ai.user.message"
            | "gen_ai.assistant.message"
            | "gen_ai.tool.message" => {
                let role = ev
                    .name
                    .trim_start_matches("gen_ai.")
                    .trim_end_matches(".message");
                let text = e
                    .get("content")
                    .and_then(|v| as_string(v))
                    .unwrap_or_default();
                input_msgs.push(serde_json::json!({"role": role, "content": text}));
            }
            "gen_ai.choice" if output.is_none() => {
                output = e
                    .get("message")
                    .map(|v| joined(&messages(as_json(v))))
                    .or_else(|| e.get("content").and_then(|v| as_string(v)));
            }
            _ => {}
        }
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let session_only = matches!(operation.as_deref(), Some("invoke_agent" | "execute_tool"));
    if operation.as_deref() == Some("execute_tool") {
        // Arguments are opt-in in instrumentations: without them the tool
        // name alone identifies the call.
        let name = get("gen_ai.tool.name").and_then(as_string);
        let mut call = serde_json::Map::new();
        call.insert(
            "name".into(),
            name.map(Value::String).unwrap_or(Value::Null),
        );
        if let Some(args) = get("gen_ai.tool.call.arguments") {
            call.insert("arguments".into(), as_json(args));
        }
        if let Some(id) = get("gen_ai.tool.call.id").and_then(as_string) {
            call.insert("id".into(), Value::String(id));
        }
        tool_calls = vec![Value::Object(call)];
    }
    let session_id = get("gen_ai.conversation.id")
        .or(get("session.id"))
        .and_then(as_string)
        .filter(|s| !s.is_empty())
        .or_else(|| (!span.trace_id.is_empty()).then(|| format!("trace:{}", hex(&span.trace_id))));
    let end = if span.end_time_unix_nano > 0 {
        span.end_time_unix_nano
    } else {
        span.start_time_unix_nano
    };
    Some(Record {
        id: Some(record_id(&span.trace_id, &span.span_id)),
        timestamp_ms: (end > 0).then_some((end / 1_000_000) as i64),
        stream,
        prompt_version: None,
        request_model: get("gen_ai.request.model")
            .or(get("llm.model_name"))
            .and_then(as_string),
        response_model: get("gen_ai.response.model").and_then(as_string),
        system_fingerprint: get("gen_ai.openai.response.system_fingerprint")
            .or(get("openai.response.system_fingerprint"))
            .and_then(as_string),
        input: (!input_msgs.is_empty()).then_some(Input::Messages(input_msgs)),
        context: Vec::new(),
        output: output.unwrap_or_default(),
        finish_reason: get("gen_ai.response.finish_reasons").and_then(as_string),
        input_tokens: get("gen_ai.usage.input_tokens")
            .or(get("gen_ai.usage.prompt_tokens"))
            .or(get("llm.token_count.prompt"))
            .and_then(as_int),
        output_tokens: get("gen_ai.usage.output_tokens")
            .or(get("gen_ai.usage.completion_tokens"))
            .or(get("llm.token_count.completion"))
            .and_then(as_int),
        max_tokens: get("gen_ai.request.max_tokens").and_then(as_int),
        // The application's dimensions: `canaryd.label.<name>` attributes
        // (bounded by `record::check` like the JSON API's `labels`).
        labels: a
            .iter()
            .filter_map(|(k, v)| {
                Some((k.strip_prefix("canaryd.label.")?.to_string(), as_string(v)?))
            })
            .collect(),
        latency_ms: (span.end_time_unix_nano > span.start_time_unix_nano
            && span.start_time_unix_nano > 0)
            .then(|| ((span.end_time_unix_nano - span.start_time_unix_nano) / 1_000_000) as i64),
        session_id,
        tool_calls: (!tool_calls.is_empty()).then_some(Value::Array(tool_calls)),
        agent: get("gen_ai.agent.name").and_then(as_string),
        user_id: get("user.id")
            .or(get("enduser.id"))
            .or_else(|| resource.get("user.id").copied())
            .and_then(as_string),
        cost_usd: None,
        session_only,
        scores: Default::default(),
        explanations: Default::default(),
        embedding: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn json_export_with_semconv_messages_becomes_a_record() {
        let body = r#"{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "support-bot"}}]},
          "scopeSpans": [{"spans": [
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat gpt-4o",
             "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000930000000",
             "attributes": [
               {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
               {"key": "gen_ai.response.model", "value": {"stringValue": "gpt-4o-2024-08-06"}},
               {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
               {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "812"}},
               {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 143}},
               {"key": "gen_ai.input.messages", "value": {"stringValue": "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Where is my order?\"}]}]"}},
               {"key": "gen_ai.output.messages", "value": {"stringValue": "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"It shipped.\"}],\"finish_reason\":\"stop\"}]"}}
             ]},
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "aaa19b7ec3c1b174", "name": "GET /",
             "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}]}
          ]}]}]}"#;
        let req: ExportTraceServiceRequest = serde_json::from_str(body).unwrap();
        let recs = to_records(&req, "service.name");
        assert_eq!(recs.len(), 1, "the HTTP span is ignored");
        let r = &recs[0];
        assert_eq!(r.stream, "support-bot");
        assert_eq!(r.output, "It shipped.");
        assert_eq!(
            r.input.as_ref().unwrap().to_text(),
            "user: Where is my order?"
        );
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.latency_ms),
            (Some(812), Some(143), Some(930))
        );
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.response_model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(
            r.id.as_deref(),
            Some("otel:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174")
        );
        // The same export as protobuf decodes to the same records.
        let bytes = req.encode_to_vec();
        let back = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(to_records(&back, "service.name"), recs);
    }

    #[test]
    fn older_prompt_and_completion_events_are_read() {
        let body = r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "01", "spanId": "02",
             "attributes": [{"key": "gen_ai.system", "value": {"stringValue": "openai"}}, {"key": "app.route", "value": {"stringValue": "faq"}}],
             "events": [
               {"name": "gen_ai.content.prompt", "attributes": [{"key": "gen_ai.prompt", "value": {"stringValue": "What time is it?"}}]},
               {"name": "gen_ai.content.completion", "attributes": [{"key": "gen_ai.completion", "value": {"stringValue": "Noon."}}]}
             ]}]}]}]}"#;
        let req: ExportTraceServiceRequest = serde_json::from_str(body).unwrap();
        let r = &to_records(&req, "app.route")[0];
        assert_eq!((r.stream.as_str(), r.output.as_str()), ("faq", "Noon."));
        assert_eq!(
            r.input.as_ref().unwrap().to_text(),
            "user: What time is it?"
        );
    }
}
