//! Agent sessions: runaway loops and sessions over budget, caught while
//! they run.
//!
//! Records name their session (`session_id`, OTLP `gen_ai.conversation.id`,
//! the trace id as a fallback) and may carry the agent and its tool calls.
//! The ingest transaction stores one event per new record of a session and
//! keeps the session's summary (calls, tokens, cost, first/last time) up to
//! date, marking it *dirty* (`store/sessions.rs`). Every `every_secs` the
//! replica holding the `sessions` lease reads the dirty summaries and the
//! latest events of each, runs the pure detectors (`detect.rs`), and feeds
//! their findings to the ordinary alert lifecycle; idle sessions expire with
//! their summary kept, and their alerts resolve (`monitor.rs`). State lives
//! in the database, so the daemon's memory does not grow with the number of
//! sessions and a restarted or replacement replica carries on.

pub mod detect;
pub mod hook;
pub mod monitor;
pub mod settings;
pub mod tools;

pub use detect::{SessionEvent, SessionSummary};
pub use settings::SessionsConfig;
pub use tools::{ToolCall, parse_tool_calls};
