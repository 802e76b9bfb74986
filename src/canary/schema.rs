//! A JSON Schema validator for the subset canary suites need.
//!
//! Why not the `jsonschema` crate: it brings a large dependency tree (regex
//! engines, URL resolution, optional HTTP fetching of remote `$ref`s) for
//! checking the shape of short model answers. This covers the keywords used
//! to describe such answers; any other keyword is rejected when the suite is
//! loaded ([`check_supported`]), so a schema is never silently half-applied.

use serde_json::{Map, Value};

/// Keywords this validator understands. Annotations are accepted and ignored.
const SUPPORTED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    // Annotations only.
    "$schema",
    "$id",
    "title",
    "description",
    "default",
    "examples",
    "format",
];

/// Reports keywords outside the supported subset (with their JSON pointer)
/// and invalid `pattern`s, so a suite author learns at `check` time.
pub fn check_supported(schema: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    walk_check(schema, "", &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn walk_check(schema: &Value, at: &str, problems: &mut Vec<String>) {
    let obj = match schema {
        Value::Bool(_) => return,
        Value::Object(o) => o,
        _ => {
            problems.push(format!(
                "{}: a schema must be an object or a boolean",
                ptr(at)
            ));
            return;
        }
    };
    for (k, v) in obj {
        if !SUPPORTED.contains(&k.as_str()) {
            problems.push(format!(
                "{}: keyword `{k}` is not supported by canaryd's JSON Schema subset",
                ptr(at)
            ));
            continue;
        }
        match k.as_str() {
            "properties" => {
                if let Value::Object(props) = v {
                    for (name, s) in props {
                        walk_check(s, &format!("{at}/properties/{name}"), problems);
                    }
                }
            }
            "items" | "not" => walk_check(v, &format!("{at}/{k}"), problems),
            "additionalProperties" => walk_check(v, &format!("{at}/{k}"), problems),
            "anyOf" | "oneOf" | "allOf" => {
                for (i, s) in v.as_array().into_iter().flatten().enumerate() {
                    walk_check(s, &format!("{at}/{k}/{i}"), problems);
                }
            }
            "pattern" => {
                if let Some(Err(e)) = v.as_str().map(regex::Regex::new) {
                    problems.push(format!("{}: invalid pattern: {e}", ptr(at)));
                }
            }
            _ => {}
        }
    }
}

fn ptr(at: &str) -> &str {
    if at.is_empty() { "/" } else { at }
}

/// Validates `value` against `schema`; returns the first violation found,
/// described with its JSON pointer.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "")
}

fn check(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let s = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{}: no value is allowed here", ptr(at))),
        Value::Object(o) => o,
        _ => return Ok(()),
    };
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
            return Err(format!(
                "{}: expected {}, found {}",
                ptr(at),
                types.join(" or "),
                type_name(value)
            ));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.iter().any(|o| json_eq(o, value))
    {
        return Err(format!(
            "{}: {value} is not one of {}",
            ptr(at),
            Value::Array(options.clone())
        ));
    }
    if let Some(c) = s.get("const")
        && !json_eq(c, value)
    {
        return Err(format!("{}: expected {c}, found {value}", ptr(at)));
    }
    match value {
        Value::Number(n) => check_number(s, n.as_f64().unwrap_or(f64::NAN), at)?,
        Value::String(text) => check_string(s, text, at)?,
        Value::Array(items) => check_array(s, items, at)?,
        Value::Object(obj) => check_object(s, obj, at)?,
        _ => {}
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            check(sub, value, at)?;
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf")
        && !any.iter().any(|sub| check(sub, value, at).is_ok())
    {
        return Err(format!("{}: matches none of anyOf", ptr(at)));
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        let n = one
            .iter()
            .filter(|sub| check(sub, value, at).is_ok())
            .count();
        if n != 1 {
            return Err(format!(
                "{}: matches {n} of oneOf, expected exactly 1",
                ptr(at)
            ));
        }
    }
    if let Some(not) = s.get("not")
        && check(not, value, at).is_ok()
    {
        return Err(format!("{}: matches the `not` schema", ptr(at)));
    }
    Ok(())
}

fn check_number(s: &Map<String, Value>, n: f64, at: &str) -> Result<(), String> {
    let bound = |k: &str| s.get(k).and_then(Value::as_f64);
    let fails = [
        (
            bound("minimum"),
            n < bound("minimum").unwrap_or(f64::MIN),
            "minimum",
        ),
        (
            bound("maximum"),
            n > bound("maximum").unwrap_or(f64::MAX),
            "maximum",
        ),
        (
            bound("exclusiveMinimum"),
            n <= bound("exclusiveMinimum").unwrap_or(f64::MIN),
            "exclusiveMinimum",
        ),
        (
            bound("exclusiveMaximum"),
            n >= bound("exclusiveMaximum").unwrap_or(f64::MAX),
            "exclusiveMaximum",
        ),
    ];
    for (b, failed, name) in fails {
        if let Some(b) = b
            && failed
        {
            return Err(format!("{}: {n} violates {name} {b}", ptr(at)));
        }
    }
    Ok(())
}

fn check_string(s: &Map<String, Value>, text: &str, at: &str) -> Result<(), String> {
    let len = text.chars().count() as u64;
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        return Err(format!(
            "{}: string of {len} characters is shorter than {min}",
            ptr(at)
        ));
    }
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        return Err(format!(
            "{}: string of {len} characters is longer than {max}",
            ptr(at)
        ));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        let re = regex::Regex::new(p).map_err(|e| format!("{}: invalid pattern: {e}", ptr(at)))?;
        if !re.is_match(text) {
            return Err(format!("{}: {text:?} does not match /{p}/", ptr(at)));
        }
    }
    Ok(())
}

fn check_array(s: &Map<String, Value>, items: &[Value], at: &str) -> Result<(), String> {
    let n = items.len() as u64;
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && n < min
    {
        return Err(format!("{}: {n} items, fewer than {min}", ptr(at)));
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && n > max
    {
        return Err(format!("{}: {n} items, more than {max}", ptr(at)));
    }
    if let Some(item_schema) = s.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{at}/{i}"))?;
        }
    }
    Ok(())
}

fn check_object(s: &Map<String, Value>, obj: &Map<String, Value>, at: &str) -> Result<(), String> {
    let n = obj.len() as u64;
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
        && n < min
    {
        return Err(format!("{}: {n} properties, fewer than {min}", ptr(at)));
    }
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
        && n > max
    {
        return Err(format!("{}: {n} properties, more than {max}", ptr(at)));
    }
    for name in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = name.as_str()
            && !obj.contains_key(name)
        {
            return Err(format!("{}: missing required property `{name}`", ptr(at)));
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (k, v) in obj {
        let child = format!("{at}/{k}");
        match props.and_then(|p| p.get(k)) {
            Some(ps) => check(ps, v, &child)?,
            None => match s.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    return Err(format!("{}: property `{k}` is not allowed", ptr(at)));
                }
                Some(extra) => check(extra, v, &child)?,
                None => {}
            },
        }
    }
    Ok(())
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        _ => false,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON equality where 1 and 1.0 are the same number, as JSON Schema says.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refund_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "days": { "type": "integer", "minimum": 1, "maximum": 365 },
                "currency": { "enum": ["EUR", "USD"] },
                "notes": { "type": "array", "items": { "type": "string", "maxLength": 20 } }
            },
            "required": ["days"],
            "additionalProperties": false
        })
    }

    #[test]
    fn accepts_conforming_values() {
        let s = refund_schema();
        validate(&s, &json!({"days": 30})).unwrap();
        validate(
            &s,
            &json!({"days": 30.0, "currency": "EUR", "notes": ["ok"]}),
        )
        .unwrap();
    }

    #[test]
    fn reports_the_violation_with_its_pointer() {
        let s = refund_schema();
        let e = |v| validate(&s, &v).unwrap_err();
        assert!(e(json!({})).contains("missing required property `days`"));
        assert!(e(json!({"days": "30"})).contains("/days: expected integer, found string"));
        assert!(e(json!({"days": 400})).contains("maximum"));
        assert!(e(json!({"days": 3, "extra": 1})).contains("`extra` is not allowed"));
        assert!(e(json!({"days": 3, "notes": ["x", 1]})).contains("/notes/1"));
        assert!(e(json!({"days": 3, "currency": "GBP"})).contains("not one of"));
        assert!(e(json!([1])).contains("expected object"));
    }

    #[test]
    fn combinators_and_patterns() {
        let s = json!({"anyOf": [{"type": "string", "pattern": "^[A-Z]{3}$"}, {"type": "null"}]});
        validate(&s, &json!("EUR")).unwrap();
        validate(&s, &Value::Null).unwrap();
        assert!(validate(&s, &json!("eur")).is_err());
        let one = json!({"oneOf": [{"type": "number"}, {"type": "integer"}]});
        assert!(validate(&one, &json!(3)).is_err(), "3 matches both");
        validate(&one, &json!(3.5)).unwrap();
    }

    #[test]
    fn unsupported_keywords_are_reported_not_ignored() {
        let e = check_supported(&json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}}))
            .unwrap_err();
        assert!(e.contains("/properties/a: keyword `$ref`"), "{e}");
        assert!(check_supported(&json!({"pattern": "("})).is_err());
        check_supported(&refund_schema()).unwrap();
    }
}
