//! The generic webhook: a versioned JSON document (see `docs/alerts.md`).
//!
//! Texts are raw (JSON-escaped only): the receiver decides how to show them
//! and must escape them for its own format.

use serde_json::{Value, json};

use super::message::Message;

/// Version of the payload shape; bumped on incompatible changes.
pub const PAYLOAD_VERSION: u32 = 1;

/// The JSON payload for `msg`.
pub fn payload(msg: &Message) -> Value {
    let mut v = json!({ "version": PAYLOAD_VERSION, "source": "canaryd" });
    if let (Value::Object(out), Ok(Value::Object(m))) = (&mut v, serde_json::to_value(msg)) {
        out.extend(m);
    }
    v
}
