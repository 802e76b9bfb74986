//! The production-response record: the contract shared by the ingest API,
//! OTLP conversion, `canaryd backtest` and the docs.
//!
//! Records are validated field by field (not with a derived `Deserialize`)
//! so that an error names the record's index in its batch and the offending
//! field, which is what a client needs to fix a rejected batch.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::text::content_text;

/// Longest accepted `id`, `stream` and other short labels.
const MAX_LABEL: usize = 512;
/// Most embedding dimensions accepted.
const MAX_DIMS: usize = 16_384;
/// Most application labels on one record, and the longest key and value:
/// labels are dimensions to split a statistic by (`route`, `query_type`),
/// not a place for content, so they are few and short.
pub const MAX_LABELS: usize = 16;
pub const MAX_LABEL_KEY: usize = 64;
pub const MAX_LABEL_VALUE: usize = 128;
/// Largest accepted token count or latency (ms): a billion tokens is beyond
/// any context window and ~11 days beyond any call, so larger values are
/// corrupt and would swamp the roll-up sums.
pub const MAX_COUNT: i64 = 1_000_000_000;

/// What the user sent: a plain string or chat messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    /// Chat messages, kept as sent (`role`, `content` and whatever else).
    Messages(Vec<Value>),
}

impl Input {
    /// The text a judge reads: the string, or `role: content` lines.
    pub fn to_text(&self) -> String {
        match self {
            Input::Text(t) => t.clone(),
            Input::Messages(msgs) => crate::text::messages_text(msgs),
        }
    }
}

/// One production response as a client describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Record {
    /// Idempotency key: a repeated id is stored once.
    pub id: Option<String>,
    /// Milliseconds since the epoch; `None` means "the receive time".
    pub timestamp_ms: Option<i64>,
    pub stream: String,
    pub prompt_version: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub system_fingerprint: Option<String>,
    pub input: Option<Input>,
    pub context: Vec<String>,
    pub output: String,
    pub finish_reason: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// The request's output budget (`max_tokens`, OTLP
    /// `gen_ai.request.max_tokens`): an answer near it was probably cut.
    pub max_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub session_id: Option<String>,
    pub tool_calls: Option<Value>,
    /// The application's own dimensions (`route`, `query_type`, ...), which
    /// the triage section splits a shifted statistic by.
    pub labels: BTreeMap<String, String>,
    /// The agent that made this call (multi-agent sessions).
    pub agent: Option<String>,
    /// The application's end user, for spend per user.
    pub user_id: Option<String>,
    /// What the call cost, as the application computed it (wins over
    /// canaryd's estimate from the model's prices).
    pub cost_usd: Option<f64>,
    /// An agent invocation or tool execution span (OTLP): a session event,
    /// not a model response (never in the quality signals).
    #[serde(skip)]
    pub session_only: bool,
    /// Precomputed judge scores by judge name.
    pub scores: BTreeMap<String, f64>,
    /// Why those scores were given, by judge (OTLP
    /// `gen_ai.evaluation.explanation`; the JSON API has no such field).
    #[serde(skip)]
    pub explanations: BTreeMap<String, String>,
    /// A precomputed embedding of `output`.
    pub embedding: Option<Vec<f32>>,
}

/// A rejected record: which one, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {index}: {field}: {message}")]
pub struct RecordError {
    /// Position in the batch, from 0.
    pub index: usize,
    /// The field at fault (`(record)` when the record itself is not an object
    /// or not JSON).
    pub field: String,
    pub message: String,
}

const FIELDS: &[&str] = &[
    "id",
    "timestamp",
    "stream",
    "prompt_version",
    "request_model",
    "response_model",
    "system_fingerprint",
    "input",
    "context",
    "output",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "max_tokens",
    "latency_ms",
    "session_id",
    "tool_calls",
    "labels",
    "agent",
    "user_id",
    "cost_usd",
    "scores",
    "embedding",
];

/// Why a body could not become records.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Record(#[from] RecordError),
    /// More records than `ingest.max_records` allows.
    #[error("more than {limit} records in one request (ingest.max_records); split the batch")]
    TooMany { limit: usize },
}

/// Parses a request body: one record, a JSON array of records, or NDJSON
/// (one record per line). All or nothing: the first bad record fails the
/// whole batch. Records are converted one at a time as they are read, so a
/// body never exists as a whole tree of JSON values, and reading stops at
/// the `max_records + 1`-th record.
///
/// A body that starts with `[` must be exactly one array; an array followed
/// by more values, or an array on a later NDJSON line, is rejected (NDJSON
/// takes one object per line), so a body never means two things.
pub fn parse_body_limited(body: &[u8], max_records: usize) -> Result<Vec<Record>, BodyError> {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first == Some(b'[') {
        return parse_array(body, max_records);
    }
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    for (i, v) in stream.enumerate() {
        let v = v.map_err(|e| RecordError {
            index: i,
            field: "(record)".into(),
            message: format!("invalid JSON: {e}"),
        })?;
        if out.len() == max_records {
            return Err(BodyError::TooMany { limit: max_records });
        }
        if v.is_array() {
            return Err(RecordError {
                index: i,
                field: "(record)".into(),
                message: "an array on an NDJSON line: send one JSON array, or one object per line"
                    .into(),
            }
            .into());
        }
        out.push(from_value(i, v)?);
    }
    if out.is_empty() {
        return Err(RecordError {
            index: 0,
            field: "(record)".into(),
            message: "the body holds no record".into(),
        }
        .into());
    }
    Ok(out)
}

/// [`parse_body_limited`] without a limit on the number of records.
pub fn parse_body(body: &[u8]) -> Result<Vec<Record>, RecordError> {
    parse_body_limited(body, usize::MAX).map_err(|e| match e {
        BodyError::Record(r) => r,
        BodyError::TooMany { .. } => unreachable!("no limit"),
    })
}

fn parse_array(body: &[u8], max_records: usize) -> Result<Vec<Record>, BodyError> {
    use serde::de::{Deserializer as _, Error as _, SeqAccess, Visitor};
    /// Converts each element as it is read; a record error is kept aside
    /// (serde errors carry only text) and the visit stops.
    struct Records<'a> {
        max: usize,
        failed: &'a mut Option<BodyError>,
    }
    impl<'de> Visitor<'de> for Records<'_> {
        type Value = Vec<Record>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Record>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<Value>()? {
                if out.len() == self.max {
                    *self.failed = Some(BodyError::TooMany { limit: self.max });
                    return Err(A::Error::custom("too many records"));
                }
                match from_value(out.len(), v) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        *self.failed = Some(e.into());
                        return Err(A::Error::custom("bad record"));
                    }
                }
            }
            Ok(out)
        }
    }
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de
        .deserialize_seq(Records {
            max: max_records,
            failed: &mut failed,
        })
        .and_then(|v| de.end().map(|()| v));
    match (parsed, failed) {
        (_, Some(e)) => Err(e),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => {
            let trailing = e.classify() == serde_json::error::Category::Syntax
                && e.to_string().contains("trailing characters");
            Err(RecordError {
                index: array_index_at(body, e.line(), e.column()),
                field: "(record)".into(),
                message: if trailing {
                    format!(
                        "invalid JSON: {e}: a body that starts with an array must be exactly one array (NDJSON takes one object per line)"
                    )
                } else {
                    format!("invalid JSON: {e}")
                },
            }
            .into())
        }
    }
}

/// Parses one record from JSON text (`index` is only used in errors).
pub fn parse_one(index: usize, text: &str) -> Result<Record, RecordError> {
    let v: Value = serde_json::from_str(text).map_err(|e| RecordError {
        index,
        field: "(record)".into(),
        message: format!("invalid JSON: {e}"),
    })?;
    from_value(index, v)
}

/// Best effort: which array element a syntax error falls in, by counting
/// top-level elements before the error position.
fn array_index_at(body: &[u8], line: usize, column: usize) -> usize {
    let (mut l, mut c) = (1usize, 0usize);
    let (mut depth, mut in_str, mut esc, mut index) = (0i32, false, false, 0usize);
    for &b in body {
        if b == b'\n' {
            l += 1;
            c = 0;
        } else {
            c += 1;
        }
        if l > line || (l == line && c >= column) {
            break;
        }
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth -= 1,
            b',' if depth == 1 => index += 1,
            _ => {}
        }
    }
    index
}

/// Validates one record given as a JSON value.
pub fn from_value(index: usize, v: Value) -> Result<Record, RecordError> {
    let err = |field: &str, message: String| RecordError {
        index,
        field: field.to_string(),
        message,
    };
    let Value::Object(mut m) = v else {
        return Err(err(
            "(record)",
            format!("expected an object, got {}", kind(&v)),
        ));
    };
    if let Some(unknown) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        let hint = crate::yaml::hint(unknown, FIELDS.iter().copied());
        return Err(err(unknown, format!("unknown field{hint}")));
    }
    let stream = label(&mut m, "stream", index)?.ok_or_else(|| err("stream", "required".into()))?;
    if stream.trim().is_empty() {
        return Err(err("stream", "must not be empty".into()));
    }
    let output = match m.remove("output") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => return Err(err("output", "required".into())),
        Some(v) => {
            return Err(err(
                "output",
                format!("expected a string, got {}", kind(&v)),
            ));
        }
    };
    let timestamp_ms = match m.remove("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            chrono::DateTime::parse_from_rfc3339(&s)
                .map_err(|e| err("timestamp", format!("not RFC 3339 ({e}): {s:?}")))?
                .timestamp_millis(),
        ),
        Some(v) => {
            return Err(err(
                "timestamp",
                format!("expected an RFC 3339 string, got {}", kind(&v)),
            ));
        }
    };
    let input = match m.remove("input") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Input::Text(s)),
        Some(Value::Array(msgs)) => {
            for (j, msg) in msgs.iter().enumerate() {
                if !msg.is_object() || msg.get("content").is_none() && msg.get("role").is_none() {
                    return Err(err(
                        &format!("input[{j}]"),
                        "expected a chat message object with `role` and `content`".into(),
                    ));
                }
            }
            Some(Input::Messages(msgs))
        }
        Some(v) => {
            return Err(err(
                "input",
                format!("expected a string or chat messages, got {}", kind(&v)),
            ));
        }
    };
    let context = match m.remove("context") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(j, p)| match p {
                Value::String(s) => Ok(s),
                v => Err(err(
                    &format!("context[{j}]"),
                    format!("expected a string, got {}", kind(&v)),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(err(
                "context",
                format!("expected an array of strings, got {}", kind(&v)),
            ));
        }
    };
    let scores = match m.remove("scores") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(o)) => o
            .into_iter()
            .map(|(k, v)| match v.as_f64().filter(|f| f.is_finite()) {
                Some(f) if !k.is_empty() && k.len() <= MAX_LABEL => Ok((k, f)),
                _ => Err(err(
                    &format!("scores.{k}"),
                    "expected a finite number".into(),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(err(
                "scores",
                format!("expected an object of numbers, got {}", kind(&v)),
            ));
        }
    };
    let embedding = match m.remove("embedding") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_DIMS => Some(
            a.iter()
                .enumerate()
                .map(|(j, x)| {
                    x.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f as f32)
                        .ok_or_else(|| {
                            err(
                                &format!("embedding[{j}]"),
                                "expected a finite number".into(),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(v) => {
            return Err(err(
                "embedding",
                format!("expected 1 to {MAX_DIMS} numbers, got {}", kind(&v)),
            ));
        }
    };
    let tool_calls = match m.remove("tool_calls") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Array(_)) => Some(v),
        Some(v) => {
            return Err(err(
                "tool_calls",
                format!("expected an array, got {}", kind(&v)),
            ));
        }
    };
    let labels = match m.remove("labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(o)) => o
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                Value::Number(n) => Ok((k, n.to_string())),
                Value::Bool(b) => Ok((k, b.to_string())),
                v => Err(err(
                    &format!("labels.{k}"),
                    format!("expected a string, got {}", kind(&v)),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(err(
                "labels",
                format!("expected an object of strings, got {}", kind(&v)),
            ));
        }
    };
    let cost_usd = match m.remove("cost_usd") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .ok_or_else(|| err("cost_usd", format!("expected a number, got {}", kind(&v))))?,
        ),
    };
    let r = Record {
        id: label(&mut m, "id", index)?,
        timestamp_ms,
        stream,
        prompt_version: label(&mut m, "prompt_version", index)?,
        request_model: label(&mut m, "request_model", index)?,
        response_model: label(&mut m, "response_model", index)?,
        system_fingerprint: label(&mut m, "system_fingerprint", index)?,
        input,
        context,
        output,
        finish_reason: label(&mut m, "finish_reason", index)?,
        input_tokens: count(&mut m, "input_tokens", index)?,
        output_tokens: count(&mut m, "output_tokens", index)?,
        max_tokens: count(&mut m, "max_tokens", index)?,
        latency_ms: count(&mut m, "latency_ms", index)?,
        session_id: label(&mut m, "session_id", index)?,
        tool_calls,
        labels,
        agent: label(&mut m, "agent", index)?,
        user_id: label(&mut m, "user_id", index)?,
        cost_usd,
        session_only: false,
        scores,
        explanations: BTreeMap::new(),
        embedding,
    };
    check(index, &r)?;
    Ok(r)
}

/// The checks a record from any source gets (the JSON API, OTLP spans and
/// logs): labels at most 512 bytes, counts from 0 to 10⁹, tool calls
/// readable, cost a finite non-negative number, session labels short and
/// not blank.
pub fn check(index: usize, r: &Record) -> Result<(), RecordError> {
    check_labels_and_counts(index, r)?;
    let err = |field: &str, message: String| RecordError {
        index,
        field: field.to_string(),
        message,
    };
    if let Some(t) = &r.tool_calls {
        crate::tool_calls::parse_tool_calls(t).map_err(|e| err(&e.field, e.message))?;
    }
    check_labels(&r.labels).map_err(|(field, message)| err(&field, message))?;
    if let Some(c) = r.cost_usd
        && !(c.is_finite() && c >= 0.0)
    {
        return Err(err(
            "cost_usd",
            format!("expected a non-negative number, got {c}"),
        ));
    }
    for (field, v) in [
        ("session_id", &r.session_id),
        ("agent", &r.agent),
        ("user_id", &r.user_id),
    ] {
        match v {
            Some(s) if s.trim().is_empty() => {
                return Err(err(field, "must not be blank".into()));
            }
            Some(s) if s.len() > MAX_LABEL => {
                return Err(err(field, format!("longer than {MAX_LABEL} bytes")));
            }
            _ => {}
        }
    }
    // JSON scores are checked as they are parsed; OTLP evaluation results
    // reach here as numbers already, and get the same bounds.
    for (name, score) in &r.scores {
        if name.is_empty() || name.len() > MAX_LABEL || !score.is_finite() {
            return Err(err(
                &format!("scores.{name}"),
                format!("expected a named finite number, got {score}"),
            ));
        }
    }
    Ok(())
}

/// Application labels: at most [`MAX_LABELS`], keys of 1 to
/// [`MAX_LABEL_KEY`] bytes of letters, digits, `_`, `-` and `.`, values of
/// at most [`MAX_LABEL_VALUE`] bytes without control characters. Every
/// resource a record can make the triage consume is bounded here.
fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    if labels.len() > MAX_LABELS {
        return Err((
            "labels".into(),
            format!(
                "{} labels; at most {MAX_LABELS} (labels are dimensions like `route`, not content)",
                labels.len()
            ),
        ));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_LABEL_KEY
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !key_ok {
            return Err((
                format!("labels.{k}"),
                format!(
                    "a label name must be 1 to {MAX_LABEL_KEY} bytes of letters, digits, `_`, `-` or `.`"
                ),
            ));
        }
        if v.len() > MAX_LABEL_VALUE || v.chars().any(char::is_control) {
            return Err((
                format!("labels.{k}"),
                format!(
                    "a label value must be at most {MAX_LABEL_VALUE} bytes without control characters ({} bytes)",
                    v.len()
                ),
            ));
        }
    }
    Ok(())
}

/// An optional short string (numbers are accepted for `id`-like fields and
/// kept as their decimal text).
fn label(
    m: &mut Map<String, Value>,
    field: &str,
    index: usize,
) -> Result<Option<String>, RecordError> {
    let s = match m.remove(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) if field == "id" || field == "session_id" => n.to_string(),
        Some(v) => {
            return Err(RecordError {
                index,
                field: field.into(),
                message: format!("expected a string, got {}", kind(&v)),
            });
        }
    };
    if s.len() > MAX_LABEL {
        return Err(RecordError {
            index,
            field: field.into(),
            message: format!("longer than {MAX_LABEL} bytes"),
        });
    }
    Ok(Some(s))
}

fn count(
    m: &mut Map<String, Value>,
    field: &str,
    index: usize,
) -> Result<Option<i64>, RecordError> {
    match m.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64().filter(|n| (0..=MAX_COUNT).contains(n)) {
            Some(n) => Ok(Some(n)),
            None => Err(RecordError {
                index,
                field: field.into(),
                message: format!("expected an integer from 0 to {MAX_COUNT}, got {v}"),
            }),
        },
    }
}

/// The checks of [`from_value`] that also apply to a record built another
/// way (OTLP): label lengths, a non-empty stream, counts in range. One rule
/// for every path, so OTLP cannot store what the JSON API refuses.
fn check_labels_and_counts(index: usize, r: &Record) -> Result<(), RecordError> {
    let err = |field: &str, message: String| RecordError {
        index,
        field: field.into(),
        message,
    };
    if r.stream.trim().is_empty() {
        return Err(err("stream", "must not be empty".into()));
    }
    let labels = [
        ("id", &r.id),
        ("prompt_version", &r.prompt_version),
        ("request_model", &r.request_model),
        ("response_model", &r.response_model),
        ("system_fingerprint", &r.system_fingerprint),
        ("finish_reason", &r.finish_reason),
        ("session_id", &r.session_id),
    ];
    for (field, value) in std::iter::once(("stream", &Some(r.stream.clone()))).chain(labels) {
        if let Some(v) = value
            && v.len() > MAX_LABEL
        {
            return Err(err(
                field,
                format!("longer than {MAX_LABEL} bytes ({} bytes)", v.len()),
            ));
        }
    }
    for (field, value) in [
        ("input_tokens", r.input_tokens),
        ("output_tokens", r.output_tokens),
        ("max_tokens", r.max_tokens),
        ("latency_ms", r.latency_ms),
    ] {
        if let Some(n) = value
            && !(0..=MAX_COUNT).contains(&n)
        {
            return Err(err(
                field,
                format!("expected an integer from 0 to {MAX_COUNT}, got {n}"),
            ));
        }
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{"id": "r1", "timestamp": "2026-11-20T10:00:00Z", "stream": "support-bot",
        "prompt_version": "v12", "request_model": "gpt-4o", "response_model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_1", "input": [{"role": "user", "content": "Where is my order?"}],
        "context": ["Order 7 shipped on Monday."], "output": "It shipped on Monday.",
        "finish_reason": "stop", "input_tokens": 812, "output_tokens": 143, "latency_ms": 930,
        "session_id": "s1", "tool_calls": [{"name": "lookup_order", "arguments": {"id": 7}}],
        "scores": {"groundedness": 4.5}, "embedding": [0.01, -0.2]}"#;

    #[test]
    fn contract_example_parses() {
        let r = parse_one(0, FULL).unwrap();
        assert_eq!(r.id.as_deref(), Some("r1"));
        assert_eq!(r.timestamp_ms, Some(1_795_168_800_000));
        assert_eq!(r.input.unwrap().to_text(), "user: Where is my order?");
        assert_eq!(r.scores["groundedness"], 4.5);
        assert_eq!(r.embedding.unwrap().len(), 2);
        assert_eq!(r.output_tokens, Some(143));
    }

    #[test]
    fn one_record_array_and_ndjson_are_accepted() {
        let one = r#"{"stream": "a", "output": "x"}"#;
        assert_eq!(parse_body(one.as_bytes()).unwrap().len(), 1);
        let arr = format!("[{one}, {one}, {one}]");
        assert_eq!(parse_body(arr.as_bytes()).unwrap().len(), 3);
        let nd = format!("{one}\n{one}\n\n");
        assert_eq!(parse_body(nd.as_bytes()).unwrap().len(), 2);
        assert!(parse_body(b"  ").is_err());
    }

    #[test]
    fn errors_name_the_record_and_field() {
        let ok = r#"{"stream": "a", "output": "x"}"#;
        let bad = format!(r#"[{ok}, {ok}, {{"stream": "a", "output": 5}}]"#);
        let e = parse_body(bad.as_bytes()).unwrap_err();
        assert_eq!((e.index, e.field.as_str()), (2, "output"), "{e}");
        let nd = format!("{ok}\n{{\"stream\": \"a\"}}\n");
        let e = parse_body(nd.as_bytes()).unwrap_err();
        assert_eq!((e.index, e.field.as_str()), (1, "output"));
        assert_eq!(e.to_string(), "record 1: output: required");
        let e = parse_body(format!("{ok}\n{{\"stream\": \"a\", \"ouput\": \"x\"}}").as_bytes())
            .unwrap_err();
        assert!(e.to_string().contains("did you mean `output`"), "{e}");
        let e = parse_body(
            format!(r#"[{ok}, {{"stream": "a", "output": "x", "timestamp": "yesterday"}}]"#)
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!((e.index, e.field.as_str()), (1, "timestamp"));
        let e = parse_body(
            format!(r#"[{ok}, {{"stream": "a", "output": "x", "embedding": [1, "a"]}}]"#)
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field, "embedding[1]");
        let e = parse_body(format!("[{ok}, {ok}, {{\"stream\": ").as_bytes()).unwrap_err();
        assert_eq!((e.index, e.field.as_str()), (2, "(record)"), "{e}");
        let e = parse_body(br#"{"stream": "", "output": "x"}"#).unwrap_err();
        assert_eq!(e.field, "stream");
        let e = parse_body(br#"{"stream": "s", "output": "x", "output_tokens": -1}"#).unwrap_err();
        assert_eq!(e.field, "output_tokens");
    }

    #[test]
    fn max_tokens_and_labels_are_read_and_bounded() {
        let r = parse_one(
            0,
            r#"{"stream": "a", "output": "x", "max_tokens": 256, "labels": {"route": "/refund", "tier": 2}}"#,
        )
        .unwrap();
        assert_eq!(r.max_tokens, Some(256));
        assert_eq!(r.labels["route"], "/refund");
        assert_eq!(r.labels["tier"], "2");
        let e = parse_one(0, r#"{"stream": "a", "output": "x", "labels": ["route"]}"#).unwrap_err();
        assert_eq!(e.field, "labels");
        let e = parse_one(
            0,
            r#"{"stream": "a", "output": "x", "labels": {"bad key": "v"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "labels.bad key", "{e}");
        let long = format!(
            r#"{{"stream": "a", "output": "x", "labels": {{"k": "{}"}}}}"#,
            "v".repeat(129)
        );
        let e = parse_one(0, &long).unwrap_err();
        assert!(e.message.contains("at most 128 bytes"), "{e}");
        let many: Vec<String> = (0..17).map(|i| format!(r#""k{i}": "v""#)).collect();
        let e = parse_one(
            0,
            &format!(
                r#"{{"stream": "a", "output": "x", "labels": {{{}}}}}"#,
                many.join(",")
            ),
        )
        .unwrap_err();
        assert!(e.message.contains("at most 16"), "{e}");
        let e = parse_one(0, r#"{"stream": "a", "output": "x", "max_tokens": -3}"#).unwrap_err();
        assert_eq!(e.field, "max_tokens");
    }

    #[test]
    fn content_parts_flatten_to_text() {
        let i = Input::Messages(vec![
            serde_json::json!({"role": "user", "content": [{"type": "text", "text": "hi"}]}),
        ]);
        assert_eq!(i.to_text(), "user: hi");
    }
}
