//! The session detectors: pure functions of (a session's summary, its
//! latest events, the settings, `now`) that say whether it is looping or
//! over budget.
//!
//! - `tool_call_loop`: the same (tool, normalised arguments) at least
//!   `repeats` times, a tool call the model requested and the span that
//!   executed it counted once (shared call id); or two agents handing the
//!   session back and forth (A→B→A→B…) for `agent_cycle_turns` turns in a
//!   row with no turn making progress (a tool call not seen before in the
//!   session). A supervisor that delegates real work to a worker makes
//!   progress each round; two agents asking each other for clarification
//!   do not.
//! - `session_budget`: calls, tokens or cost above the stream's budget, or
//!   still receiving records `max_duration` after its first one.
//!
//! Both are deterministic: they fire on what happened, with no p-value.

use std::collections::{HashMap, HashSet};

use super::settings::{BudgetConfig, LoopConfig};
use crate::signals::{Finding, Rule, Severity, Status};
use crate::store::sessions::{SessionEvent, SessionSummary};
use crate::tool_calls::ToolCall;

/// How often each (tool, argument hash) of a session occurred (a call id
/// seen before is not counted again).
pub fn repeat_counts(events: &[SessionEvent]) -> Vec<(&ToolCall, usize)> {
    let mut ids: HashSet<&str> = HashSet::new();
    let mut counts: HashMap<(&str, &str), (usize, &ToolCall)> = HashMap::new();
    for t in events.iter().flat_map(|e| &e.tools) {
        if let Some(id) = &t.call_id
            && !ids.insert(id.as_str())
        {
            continue;
        }
        let slot = counts.entry((&t.name, &t.hash)).or_insert((0, t));
        slot.0 += 1;
    }
    let mut out: Vec<(&ToolCall, usize)> = counts.into_values().map(|(n, t)| (t, n)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.hash.cmp(&b.0.hash)));
    out
}

/// The most repeated (tool, argument hash) of a session and its count.
pub fn most_repeated(events: &[SessionEvent]) -> Option<(&ToolCall, usize)> {
    repeat_counts(events).into_iter().next()
}

/// The longest run of agent turns alternating between two agents with no
/// turn making progress: (agent A, agent B, turns).
pub fn agent_cycle(events: &[SessionEvent]) -> Option<(String, String, usize)> {
    // Turns: maximal runs of events by the same agent; a turn makes
    // progress when it calls a (tool, arguments) new to the session.
    let mut turns: Vec<(&str, bool)> = Vec::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for e in events {
        let progress = e
            .tools
            .iter()
            .filter(|t| seen.insert((&t.name, &t.hash)))
            .count()
            > 0;
        match (e.agent.as_deref(), turns.last_mut()) {
            (Some(a), Some((last, p))) if *last == a => *p |= progress,
            (Some(a), _) => turns.push((a, progress)),
            // An event without an agent (a tool span) belongs to the turn in progress.
            (None, Some((_, p))) => *p |= progress,
            (None, None) => {}
        }
    }
    let mut best: Option<(String, String, usize)> = None;
    let mut run = 0usize;
    for i in 0..turns.len() {
        let (a, progress) = turns[i];
        run = if progress {
            0
        } else if run >= 2 && turns[i - 2].0 == a {
            run + 1
        } else if i >= 1 && !turns[i - 1].1 {
            2
        } else {
            1
        };
        if run >= 2 && best.as_ref().is_none_or(|b| run > b.2) {
            best = Some((turns[i - 1].0.to_string(), a.to_string(), run));
        }
    }
    best
}

/// `tool_call_loop` for one session, or `None` when it is not looping.
pub fn tool_call_loop(
    s: &SessionSummary,
    events: &[SessionEvent],
    cfg: &LoopConfig,
    now_ms: i64,
) -> Option<Finding> {
    let needed = |t: &ToolCall| match t.args {
        Some(_) => cfg.repeats.max(2),
        None => cfg.repeats_without_arguments.max(2),
    };
    if let Some((t, n)) = repeat_counts(events)
        .into_iter()
        .find(|(t, n)| *n >= needed(t))
    {
        let repeats = needed(t);
        return Some(finding(
            Rule::ToolCallLoop,
            s,
            now_ms,
            (n as f64, repeats as f64),
            format!(
                "session {}: tool {} called {n}× with {} (hash {})",
                s.session_id,
                t.name,
                if t.args.is_some() {
                    "the same arguments"
                } else {
                    "no arguments recorded"
                },
                t.hash
            ),
        ));
    }
    let turns = cfg.agent_cycle_turns.max(3);
    let (a, b, n) = agent_cycle(events).filter(|c| c.2 >= turns)?;
    Some(finding(
        Rule::ToolCallLoop,
        s,
        now_ms,
        (n as f64, turns as f64),
        format!(
            "session {}: agents {a} ↔ {b} handed off {n} turns in a row without a new tool call",
            s.session_id
        ),
    ))
}

/// `session_budget` for one session, or `None` when it is within budget.
pub fn session_budget(s: &SessionSummary, b: &BudgetConfig, now_ms: i64) -> Option<Finding> {
    let mut over: Vec<(f64, String)> = Vec::new();
    if b.max_calls > 0 && s.calls as u64 > b.max_calls {
        over.push((
            s.calls as f64 / b.max_calls as f64,
            format!("{} calls (max {})", s.calls, b.max_calls),
        ));
    }
    if b.max_tokens > 0 && s.tokens as u64 > b.max_tokens {
        over.push((
            s.tokens as f64 / b.max_tokens as f64,
            format!("{} tokens (max {})", s.tokens, b.max_tokens),
        ));
    }
    if b.max_cost_usd > 0.0 && s.cost_usd > b.max_cost_usd {
        over.push((
            s.cost_usd / b.max_cost_usd,
            format!("${:.2} (max ${:.2})", s.cost_usd, b.max_cost_usd),
        ));
    }
    if let Some(d) = &b.max_duration {
        let max = i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX);
        let ran = s.last_ms - s.first_ms;
        if max > 0 && ran > max {
            over.push((
                ran as f64 / max as f64,
                format!("active for {} (max {})", human(ran), human(max)),
            ));
        }
    }
    if over.is_empty() {
        return None;
    }
    let worst = over.iter().map(|o| o.0).fold(0.0, f64::max);
    let what: Vec<String> = over.into_iter().map(|o| o.1).collect();
    Some(finding(
        Rule::SessionBudget,
        s,
        now_ms,
        (worst, 1.0),
        format!("session {} over budget: {}", s.session_id, what.join(", ")),
    ))
}

fn human(ms: i64) -> String {
    let m = ms / 60_000;
    if m >= 120 {
        format!("{} h {} min", m / 60, m % 60)
    } else if m >= 1 {
        format!("{m} min")
    } else {
        format!("{} s", ms / 1000)
    }
}

fn finding(
    rule: Rule,
    s: &SessionSummary,
    now_ms: i64,
    (value, threshold): (f64, f64),
    summary: String,
) -> Finding {
    Finding {
        rule,
        stream: s.stream.clone(),
        dimension: Some(s.session_id.clone()),
        status: Status::Firing,
        severity: Severity::Critical,
        at_ms: now_ms,
        value,
        baseline: 0.0,
        threshold,
        p_value: None,
        samples: u64::try_from(s.calls).unwrap_or(0),
        baseline_samples: 0,
        summary,
        resolve: true,
    }
}

/// The finding that resolves a session's alert of `rule` once it expired.
pub fn expired(rule: Rule, s: &SessionSummary, now_ms: i64) -> Finding {
    let mut f = finding(
        rule,
        s,
        now_ms,
        (0.0, 0.0),
        format!("session {} ended (idle)", s.session_id),
    );
    f.status = Status::Ok;
    f.severity = Severity::Info;
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary() -> SessionSummary {
        SessionSummary {
            stream: "agents".into(),
            session_id: "s1".into(),
            first_ms: 0,
            last_ms: 60_000,
            seen_ms: 60_000,
            calls: 10,
            tokens: 1000,
            cost_usd: 0.5,
            user_id: None,
            state: "active".into(),
            version: 1,
            fired: Vec::new(),
        }
    }

    fn ev(agent: Option<&str>, tools: &[(&str, serde_json::Value)]) -> SessionEvent {
        SessionEvent {
            ts_ms: 0,
            kind: "inference".into(),
            agent: agent.map(String::from),
            tools: tools
                .iter()
                .map(|(n, a)| ToolCall::new(n, Some(a), None))
                .collect(),
            tokens: 100,
            cost_usd: 0.001,
        }
    }

    #[test]
    fn the_fifth_identical_call_fires_and_the_fourth_does_not() {
        let cfg = LoopConfig::default();
        let mut events: Vec<SessionEvent> = (0..4)
            .map(|i| {
                ev(
                    None,
                    &[
                        ("get_weather", json!({"city": "Oslo", "unit": "C"})),
                        ("note", json!({"i": i})),
                    ],
                )
            })
            .collect();
        assert_eq!(tool_call_loop(&summary(), &events, &cfg, 1), None);
        // Key order differs: still the same call.
        events.push(ev(
            None,
            &[("get_weather", json!({"unit": "C", "city": "Oslo"}))],
        ));
        let f = tool_call_loop(&summary(), &events, &cfg, 1).expect("loop");
        assert_eq!(
            (f.rule, f.value, f.status),
            (Rule::ToolCallLoop, 5.0, Status::Firing)
        );
        assert_eq!(f.dimension.as_deref(), Some("s1"));
        assert!(f.summary.contains("get_weather called 5×"), "{}", f.summary);
    }

    #[test]
    fn calls_without_recorded_arguments_need_more_repeats() {
        let cfg = LoopConfig::default();
        let bare = |n: usize| -> Vec<SessionEvent> {
            (0..n)
                .map(|_| SessionEvent {
                    tools: vec![ToolCall::new("check_status", None, None)],
                    ..ev(None, &[])
                })
                .collect()
        };
        assert_eq!(tool_call_loop(&summary(), &bare(14), &cfg, 1), None);
        let f = tool_call_loop(&summary(), &bare(15), &cfg, 1).expect("loop");
        assert!(f.summary.contains("no arguments recorded"), "{}", f.summary);
        assert_eq!(f.threshold, 15.0);
    }

    #[test]
    fn a_requested_call_and_its_execution_count_once() {
        let mut events = Vec::new();
        for i in 0..4 {
            let id = Some(format!("call_{i}"));
            let mut req = ev(Some("a"), &[]);
            req.tools = vec![ToolCall::new(
                "search",
                Some(&json!({"q": "x"})),
                id.clone(),
            )];
            let mut exec = ev(None, &[]);
            exec.kind = "tool".into();
            exec.tools = vec![ToolCall::new("search", Some(&json!({"q": "x"})), id)];
            events.extend([req, exec]);
        }
        assert_eq!(most_repeated(&events).unwrap().1, 4);
        assert_eq!(
            tool_call_loop(&summary(), &events, &LoopConfig::default(), 1),
            None
        );
    }

    #[test]
    fn a_long_healthy_session_with_varied_calls_does_not_fire() {
        let tools = [
            "search",
            "open_page",
            "summarise",
            "lookup_order",
            "send_email",
        ];
        let events: Vec<SessionEvent> = (0..300)
            .map(|i| {
                ev(
                    Some(["planner", "worker"][i % 2]),
                    &[(
                        tools[i % tools.len()],
                        json!({"step": i, "query": format!("q{}", i / 3)}),
                    )],
                )
            })
            .collect();
        assert_eq!(
            tool_call_loop(&summary(), &events, &LoopConfig::default(), 1),
            None
        );
        // The same tool 300 times with different arguments is not a loop either.
        let events: Vec<SessionEvent> = (0..300)
            .map(|i| ev(None, &[("search", json!({"q": format!("page {i}")}))]))
            .collect();
        assert_eq!(
            tool_call_loop(&summary(), &events, &LoopConfig::default(), 1),
            None
        );
    }

    #[test]
    fn a_clarification_ping_pong_fires_at_n_turns() {
        let cfg = LoopConfig::default();
        let mut events: Vec<SessionEvent> = vec![ev(Some("a"), &[("fetch", json!({"id": 1}))])];
        for i in 0..4 {
            events.push(ev(Some(["b", "a"][i % 2]), &[]));
        }
        // a(progress) b a b a: four turns without progress.
        assert_eq!(agent_cycle(&events).map(|c| c.2), Some(4));
        assert_eq!(tool_call_loop(&summary(), &events, &cfg, 1), None);
        events.push(ev(Some("b"), &[]));
        let f = tool_call_loop(&summary(), &events, &cfg, 1).expect("cycle");
        assert!(
            f.summary.contains("a ↔ b handed off 5 turns"),
            "{}",
            f.summary
        );
        // Consecutive events of one agent are one turn.
        let mut dup = events.clone();
        dup.push(ev(Some("b"), &[]));
        assert_eq!(agent_cycle(&dup).map(|c| c.2), Some(5));
    }

    #[test]
    fn a_supervisor_delegating_real_work_is_not_a_cycle() {
        let mut events = Vec::new();
        for i in 0..40 {
            events.push(ev(Some("supervisor"), &[]));
            events.push(ev(
                Some("worker"),
                &[("run_query", json!({"sql": format!("q{i}")}))],
            ));
        }
        assert_eq!(
            tool_call_loop(&summary(), &events, &LoopConfig::default(), 1),
            None
        );
        // Three agents taking turns are not a two-agent cycle.
        let events: Vec<SessionEvent> = (0..30)
            .map(|i| ev(Some(["x", "y", "z"][i % 3]), &[]))
            .collect();
        assert!(agent_cycle(&events).is_none_or(|c| c.2 < 3));
    }

    #[test]
    fn budgets_fire_above_the_limit_only() {
        let b = BudgetConfig {
            max_calls: 10,
            max_tokens: 1000,
            max_cost_usd: 1.0,
            max_duration: Some(crate::duration::HumanDuration(
                std::time::Duration::from_secs(120),
            )),
        };
        assert_eq!(
            session_budget(&summary(), &b, 1),
            None,
            "at the limit is within budget"
        );
        let mut s = summary();
        s.tokens = 5000;
        let f = session_budget(&s, &b, 1).expect("over");
        assert_eq!((f.rule, f.value), (Rule::SessionBudget, 5.0));
        assert!(
            f.summary.contains("5000 tokens (max 1000)"),
            "{}",
            f.summary
        );
        let mut s = summary();
        s.last_ms = 10 * 60_000;
        assert!(
            session_budget(&s, &b, 1)
                .unwrap()
                .summary
                .contains("active for 10 min")
        );
        let unlimited = BudgetConfig {
            max_calls: 0,
            max_tokens: 0,
            max_cost_usd: 0.0,
            max_duration: None,
        };
        s.calls = 1_000_000;
        assert_eq!(session_budget(&s, &unlimited, 1), None);
    }
}
