//! The session page's view model: a session's summary and its timeline
//! (time, agent, kind, tool calls with argument hashes and arguments when
//! recorded, tokens, estimated cost), with the most repeated (tool,
//! arguments) pair highlighted — what `tool_call_loop` counts. A pure
//! function of the stored summary and events; all strings are plain text
//! for the autoescaping template.

use serde::Serialize;

use super::detail::subject_href;
use super::fmt::fmt_time;
use crate::sessions::detect::most_repeated;
use crate::store::sessions::{SessionEvent, SessionSummary};

/// Most events the page shows (the latest ones).
pub const PAGE_EVENTS: usize = 500;

/// Link to a session's page (built in one place for the pages, the alerts
/// and the kill-switch hook's `evidence_url`).

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolView {
    pub name: String,
    pub hash: String,
    pub args: Option<String>,
    /// The session's most repeated (tool, arguments) pair.
    pub repeated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub time: String,
    pub agent: String,
    pub kind: String,
    pub tools: Vec<ToolView>,
    pub tokens: i64,
    pub cost: String,
    /// One of its tool calls is the repeated pair.
    pub repeated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    pub stream: String,
    pub stream_href: String,
    pub session_id: String,
    pub state: String,
    pub user: Option<String>,
    pub calls: i64,
    pub tokens: i64,
    pub cost: String,
    pub first: String,
    pub last: String,
    pub fired: Vec<String>,
    /// `lookup_order #1a2b… × 7`, when some pair occurs at least twice.
    pub repeated: Option<String>,
    pub events: Vec<EventView>,
    /// Events not shown: the page shows the latest [`PAGE_EVENTS`].
    pub older: i64,
}

/// The page of `s` from its latest `events` (oldest first).
pub fn build_session(s: &SessionSummary, events: &[SessionEvent]) -> SessionView {
    let top = most_repeated(events).filter(|(_, n)| *n >= 2);
    let pair = top.map(|(t, _)| (t.name.clone(), t.hash.clone()));
    let is_pair = |name: &str, hash: &str| {
        pair.as_ref()
            .is_some_and(|(n, h)| n.as_str() == name && h.as_str() == hash)
    };
    let events_view = events
        .iter()
        .map(|e| {
            let tools: Vec<ToolView> = e
                .tools
                .iter()
                .map(|t| ToolView {
                    name: t.name.clone(),
                    hash: t.hash.clone(),
                    args: t.args.clone(),
                    repeated: is_pair(&t.name, &t.hash),
                })
                .collect();
            EventView {
                time: fmt_time_s(e.ts_ms),
                agent: e.agent.clone().unwrap_or_else(|| "-".into()),
                kind: e.kind.clone(),
                repeated: tools.iter().any(|t| t.repeated),
                tools,
                tokens: e.tokens,
                cost: format!("${:.4}", e.cost_usd),
            }
        })
        .collect();
    // Events counted in the summary but not shown (inference calls and
    // executed tools count as calls; agent spans do not).
    let shown_calls = events.iter().filter(|e| e.kind != "agent").count() as i64;
    SessionView {
        stream: s.stream.clone(),
        stream_href: subject_href(&s.stream),
        session_id: s.session_id.clone(),
        state: s.state.clone(),
        user: s.user_id.clone(),
        calls: s.calls,
        tokens: s.tokens,
        cost: format!("${:.4}", s.cost_usd),
        first: fmt_time(s.first_ms),
        last: fmt_time(s.last_ms),
        fired: s.fired.clone(),
        repeated: top.map(|(t, n)| format!("{} #{} × {n}", t.name, t.hash)),
        events: events_view,
        older: (s.calls - shown_calls).max(0),
    }
}

/// `2026-12-02 03:04:05`: a timeline needs seconds.
fn fmt_time_s(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::hook::session_path;
    use crate::tool_calls::ToolCall;

    fn ev(ts: i64, agent: &str, tool: Option<(&str, &str)>) -> SessionEvent {
        SessionEvent {
            ts_ms: ts,
            kind: "inference".into(),
            agent: Some(agent.into()),
            tools: tool
                .map(|(n, a)| {
                    vec![ToolCall::new(
                        n,
                        Some(&serde_json::Value::String(a.into())),
                        None,
                    )]
                })
                .unwrap_or_default(),
            tokens: 100,
            cost_usd: 0.0125,
        }
    }

    fn summary(calls: i64) -> SessionSummary {
        SessionSummary {
            stream: "agents/eu".into(),
            session_id: "s 1&x".into(),
            first_ms: 0,
            last_ms: 4000,
            seen_ms: 4000,
            calls,
            tokens: 500,
            cost_usd: 0.0625,
            user_id: Some("u".into()),
            state: "active".into(),
            version: 3,
            fired: vec!["tool_call_loop".into()],
        }
    }

    #[test]
    fn marks_the_repeated_pair_and_encodes_the_link() {
        let events = vec![
            ev(0, "planner", Some(("search", r#"{"q":"a"}"#))),
            ev(1000, "planner", Some(("search", r#"{ "q" : "b" }"#))),
            ev(2000, "worker", Some(("search", r#"{"q": "b"}"#))),
            ev(3000, "worker", None),
            ev(4000, "planner", Some(("search", r#"{"q":"b"}"#))),
        ];
        let v = build_session(&summary(8), &events);
        let marked: Vec<bool> = v.events.iter().map(|e| e.repeated).collect();
        assert_eq!(marked, vec![false, true, true, false, true]);
        assert_eq!(v.events[1].tools[0].args.as_deref(), Some(r#"{"q":"b"}"#));
        assert!(v.repeated.as_deref().unwrap().ends_with("× 3"), "{v:?}");
        assert_eq!(v.events[0].time, "1970-01-01 00:00:00");
        assert_eq!(v.events[0].cost, "$0.0125");
        assert_eq!(v.older, 3, "8 calls, 5 shown");
        assert_eq!(
            session_path("agents/eu", "s 1&x"),
            "/sessions?stream=agents%2Feu&id=s%201%26x"
        );
    }

    #[test]
    fn nothing_is_marked_when_no_pair_repeats() {
        let events = vec![
            ev(0, "a", Some(("search", "1"))),
            ev(1, "a", Some(("search", "2"))),
        ];
        let v = build_session(&summary(2), &events);
        assert!(v.events.iter().all(|e| !e.repeated));
        assert_eq!(v.repeated, None);
        assert_eq!(v.older, 0);
    }
}
