//! Tool calls as the session detectors see them: a name and a hash of the
//! arguments that ignores how the JSON was written (key order, whitespace,
//! arguments sent as a JSON string or as an object), so "the same call
//! again" is recognised however the framework serialises it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Longest argument text kept for the alert's timeline.
pub const MAX_ARGS_CHARS: usize = 500;
/// Longest tool name accepted.
pub const MAX_NAME: usize = 512;
/// Most tool calls accepted on one record.
pub const MAX_CALLS: usize = 256;

/// One tool call of a session event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub name: String,
    /// 16 hex digits of SHA-256 over the canonical arguments; the hash of
    /// "no arguments recorded" when the instrumentation did not send them.
    pub hash: String,
    /// The framework's id for the call, when known: the model's request for
    /// a tool and the span that executed it share it, and count once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The canonical arguments, cut to [`MAX_ARGS_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
}

impl ToolCall {
    /// A call of `name` with `arguments` (JSON text, a JSON value, or none).
    pub fn new(name: &str, arguments: Option<&Value>, call_id: Option<String>) -> ToolCall {
        let canonical = arguments.map(|a| {
            let parsed = match a {
                Value::String(s) => serde_json::from_str::<Value>(s)
                    .unwrap_or_else(|_| Value::String(s.trim().to_string())),
                other => other.clone(),
            };
            canonical_json(&parsed)
        });
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([0]);
        match &canonical {
            Some(c) => h.update(c.as_bytes()),
            None => h.update([0xff]),
        }
        let d = h.finalize();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hash = String::with_capacity(16);
        for b in &d[..8] {
            hash.push(char::from(HEX[usize::from(b >> 4)]));
            hash.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        ToolCall {
            name: name.to_string(),
            hash,
            call_id,
            args: canonical.map(|c| cut(&c, MAX_ARGS_CHARS)),
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// JSON with object keys sorted and no whitespace. Numbers keep serde_json's
/// own formatting, so `1` and `1.0` differ (as they may for the tool).
pub fn canonical_json(v: &Value) -> String {
    // Written into one buffer (every record with a tool call pays this at
    // ingest): no string per key or scalar.
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("writing to a Vec cannot fail");
                out.push(b':');
                write_canonical(x, out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => serde_json::to_writer(&mut *out, other).expect("writing to a Vec cannot fail"),
    }
}

/// Why a `tool_calls` value was rejected: the path inside it and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallsError {
    pub field: String,
    pub message: String,
}

/// Reads `tool_calls` in the shapes applications send: `[{name, arguments}]`,
/// OpenAI's `[{type: "function", id, function: {name, arguments}}]`, and the
/// semantic conventions' `tool_call` parts (`{type: "tool_call", id, name,
/// arguments}`).
pub fn parse_tool_calls(v: &Value) -> Result<Vec<ToolCall>, ToolCallsError> {
    let err = |field: String, message: &str| ToolCallsError {
        field,
        message: message.to_string(),
    };
    let Value::Array(items) = v else {
        return Err(err("tool_calls".into(), "expected an array"));
    };
    if items.len() > MAX_CALLS {
        return Err(err(
            "tool_calls".into(),
            &format!("more than {MAX_CALLS} tool calls"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(j, item)| {
            let Value::Object(m) = item else {
                return Err(err(format!("tool_calls[{j}]"), "expected an object"));
            };
            let inner = m.get("function").filter(|f| f.is_object());
            let name = m
                .get("name")
                .or_else(|| inner.and_then(|f| f.get("name")))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| err(format!("tool_calls[{j}].name"), "expected a tool name"))?;
            if name.len() > MAX_NAME {
                return Err(err(
                    format!("tool_calls[{j}].name"),
                    &format!("longer than {MAX_NAME} bytes"),
                ));
            }
            let args = m
                .get("arguments")
                .or_else(|| inner.and_then(|f| f.get("arguments")))
                .filter(|a| !a.is_null());
            let id = m
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= MAX_NAME)
                .map(str::to_string);
            Ok(ToolCall::new(name, args, id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn argument_hash_ignores_key_order_whitespace_and_encoding() {
        let a = ToolCall::new(
            "search",
            Some(&json!({"q": "x", "n": [1, {"b": 2, "a": 1}]})),
            None,
        );
        let b = ToolCall::new(
            "search",
            Some(&json!("{ \"n\": [1, {\"a\":1, \"b\":2}],\n \"q\": \"x\" }")),
            None,
        );
        assert_eq!(a.hash, b.hash);
        assert_eq!(
            a.args.as_deref(),
            Some(r#"{"n":[1,{"a":1,"b":2}],"q":"x"}"#)
        );
        let c = ToolCall::new(
            "search",
            Some(&json!({"q": "y", "n": [1, {"b": 2, "a": 1}]})),
            None,
        );
        assert_ne!(a.hash, c.hash, "different arguments");
        let d = ToolCall::new(
            "lookup",
            Some(&json!({"q": "x", "n": [1, {"b": 2, "a": 1}]})),
            None,
        );
        assert_ne!(a.hash, d.hash, "different tool");
        let none = ToolCall::new("search", None, None);
        assert_ne!(
            none.hash,
            ToolCall::new("search", Some(&json!({})), None).hash
        );
        assert_eq!(none.hash.len(), 16);
    }

    #[test]
    fn shapes_applications_send_are_read_and_bad_ones_named() {
        let v = json!([
            {"name": "lookup_order", "arguments": {"id": 7}},
            {"type": "function", "id": "call_1", "function": {"name": "search", "arguments": "{\"q\":\"a\"}"}},
            {"type": "tool_call", "id": "call_2", "name": "search", "arguments": {"q": "a"}}
        ]);
        let calls = parse_tool_calls(&v).unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[1].name, "search");
        assert_eq!(calls[1].call_id.as_deref(), Some("call_1"));
        assert_eq!(calls[1].hash, calls[2].hash);
        let e = parse_tool_calls(&json!([{"name": "a"}, {"arguments": {}}])).unwrap_err();
        assert_eq!(e.field, "tool_calls[1].name");
        let e = parse_tool_calls(&json!([1])).unwrap_err();
        assert_eq!(e.field, "tool_calls[0]");
        assert!(parse_tool_calls(&json!({"name": "a"})).is_err());
    }
}
