use super::*;
use crate::store::{ModelEvent, TriageRow};

const MIN: i64 = 60_000;
const START: i64 = 1_800_000_000_000;

/// A deterministic 0/1 draw with rate `p` (splitmix64 of the index), so
/// the tests replay exactly and different indices are independent.
fn bernoulli(i: usize, p: f64) -> bool {
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < p
}

fn row(ts: i64, version: &str, refusal: bool) -> TriageRow {
    TriageRow {
        ts_ms: ts,
        response_model: Some("gpt-4o-2024-08-06".into()),
        system_fingerprint: Some("fp_a".into()),
        prompt_version: Some(version.into()),
        finish_reason: Some("stop".into()),
        output_tokens: 120,
        max_tokens: Some(1024),
        refusal,
        context_chars: Some(3000),
        passages: Some(4),
        ..Default::default()
    }
}

fn alert(rule: &str, baseline: f64, value: f64) -> AlertRow {
    AlertRow {
        id: 1,
        rule: rule.into(),
        stream: "support-bot".into(),
        dimension: String::new(),
        state: "firing".into(),
        severity: "warning".into(),
        value,
        baseline,
        threshold: 0.02,
        p_value: Some(1e-6),
        samples: 800,
        baseline_samples: 4000,
        summary: String::new(),
        pending_ms: Some(START),
        firing_ms: Some(START),
        resolved_ms: None,
        last_eval_ms: START,
        last_notified_ms: None,
        resolve_pending: false,
        rev: 0,
    }
}

fn data(window: Vec<TriageRow>, baseline: Vec<TriageRow>) -> TriageData {
    let (b, w, to) = periods(START, START + 10 * MIN);
    TriageData {
        stream: "support-bot".into(),
        baseline_from_ms: b,
        window_from_ms: w,
        to_ms: to,
        window,
        baseline,
        ..Default::default()
    }
}

/// Baseline: v12 only, 1 % refusals. Window: v12 at 1 % and the new v13 at
/// 8 %, first seen 12 minutes before the start.
fn new_version_data(v13_share: f64) -> TriageData {
    let baseline: Vec<TriageRow> = (0..3000)
        .map(|i| row(START - 3 * 3_600_000 - i as i64, "v12", bernoulli(i, 0.01)))
        .collect();
    let window: Vec<TriageRow> = (0..1500)
        .map(|i| {
            let v13 = bernoulli(i + 1_000_000, v13_share);
            let p = if v13 { 0.08 } else { 0.01 };
            row(
                START - i as i64,
                if v13 { "v13" } else { "v12" },
                bernoulli(i + 2_000_000, p),
            )
        })
        .collect();
    let mut d = data(window, baseline);
    d.first_seen = vec![
        ("v13".into(), START - 12 * MIN),
        ("v12".into(), d.baseline_from_ms),
    ];
    d
}

#[test]
fn a_new_prompt_version_is_named_and_the_shift_localised_to_it() {
    let d = new_version_data(0.6);
    let a = alert("refusal_rate_shift", 0.01, 0.05);
    let lines = lines(&d, std::slice::from_ref(&a));
    let prompt = lines
        .iter()
        .find(|l| l.kind == "prompt_version")
        .expect("prompt line");
    assert!(
        prompt
            .text
            .contains("v13 first seen 12 min before the start"),
        "{}",
        prompt.text
    );
    assert!(prompt.text.contains("of window traffic"), "{}", prompt.text);
    assert!(
        prompt.text.contains("the shift is confined to v13"),
        "{}",
        prompt.text
    );
    let loc = lines
        .iter()
        .find(|l| l.kind == "localised")
        .expect("localised line");
    assert!(
        loc.text
            .starts_with("refusal rate rose only where prompt_version = v13: "),
        "{}",
        loc.text
    );
    assert!(loc.text.contains("elsewhere"), "{}", loc.text);
    assert_eq!(loc.rule.as_deref(), Some("refusal_rate_shift"));
    // Nothing else changed: no model, token-budget or retrieval line.
    assert!(
        lines.iter().all(|l| !matches!(
            l.kind.as_str(),
            "model" | "token_budget" | "retrieval" | "tool_calls"
        )),
        "{lines:?}"
    );
    let splits = splits(&d, &a);
    let pv = splits
        .iter()
        .find(|s| s.dimension == "prompt_version")
        .unwrap();
    assert_eq!(pv.localised.as_deref(), Some("v13"));
}

#[test]
fn a_shift_everywhere_is_not_localised() {
    // Both versions' refusals rose alike: nothing is confined to one.
    let baseline: Vec<TriageRow> = (0..3000)
        .map(|i| {
            row(
                START - 3 * 3_600_000,
                if i % 2 == 0 { "v12" } else { "v13" },
                bernoulli(i, 0.01),
            )
        })
        .collect();
    let window: Vec<TriageRow> = (0..1500)
        .map(|i| {
            row(
                START,
                if i % 2 == 0 { "v12" } else { "v13" },
                bernoulli(i + 2_000_000, 0.08),
            )
        })
        .collect();
    let d = data(window, baseline);
    let a = alert("refusal_rate_shift", 0.01, 0.08);
    let lines = lines(&d, std::slice::from_ref(&a));
    assert!(lines.iter().all(|l| l.kind != "localised"), "{lines:?}");
    assert!(
        lines.iter().all(|l| l.kind != "prompt_version"),
        "the mix did not change: {lines:?}"
    );
    assert!(splits(&d, &a).iter().all(|s| s.localised.is_none()));
}

#[test]
fn noise_localises_nothing_and_says_nothing() {
    // Same rates before and after, many small label slices: no line at all.
    let mk = |n: usize, offset: usize, ts: i64| -> Vec<TriageRow> {
        (0..n)
            .map(|i| {
                let mut r = row(
                    ts,
                    if i % 3 == 0 { "v13" } else { "v12" },
                    bernoulli(i * 7 + offset, 0.03),
                );
                r.labels = Some(format!(r#"{{"route": "r{}"}}"#, i % 12));
                r
            })
            .collect()
    };
    let d = data(mk(1500, 5, START), mk(3000, 11, START - 3 * 3_600_000));
    let a = alert("refusal_rate_shift", 0.03, 0.031);
    let lines = lines(&d, &[a]);
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn a_new_version_carrying_almost_all_traffic_is_named_but_not_claimed_confined() {
    // v13 is 99 % of the window: too little else to say "elsewhere unchanged".
    let d = new_version_data(0.99);
    let a = alert("refusal_rate_shift", 0.01, 0.08);
    let lines = lines(&d, &[a]);
    let prompt = lines
        .iter()
        .find(|l| l.kind == "prompt_version")
        .expect("prompt line");
    assert!(!prompt.text.contains("confined"), "{}", prompt.text);
    assert!(lines.iter().all(|l| l.kind != "localised"), "{lines:?}");
}

#[test]
fn truncation_shows_the_token_budget_line() {
    let baseline: Vec<TriageRow> = (0..3000)
        .map(|_| row(START - 3 * 3_600_000, "v12", false))
        .collect();
    let window: Vec<TriageRow> = (0..1000)
        .map(|i| {
            let mut r = row(START, "v12", false);
            r.max_tokens = Some(256);
            if i % 10 < 3 {
                r.finish_reason = Some("length".into());
                r.output_tokens = 256;
            }
            r
        })
        .collect();
    let d = data(window, baseline);
    let a = alert("truncation_rate", 0.0, 0.3);
    let lines = lines(&d, &[a]);
    let t = lines
        .iter()
        .find(|l| l.kind == "token_budget")
        .expect("token line");
    assert!(
        t.text
            .contains("finish_reason length in 30 % of the window vs 0 % of the baseline"),
        "{}",
        t.text
    );
    assert!(
        t.text.contains("max_tokens mostly 256 (baseline 1024)"),
        "{}",
        t.text
    );
    assert!(
        t.text.contains("outputs within 5.0 % of max_tokens: 30 %"),
        "{}",
        t.text
    );
}

#[test]
fn thinner_context_and_a_new_model_get_their_lines() {
    let baseline: Vec<TriageRow> = (0..2000)
        .map(|_| row(START - 3 * 3_600_000, "v12", false))
        .collect();
    let window: Vec<TriageRow> = (0..800)
        .map(|i| {
            let mut r = row(START, "v12", false);
            r.response_model = Some("gpt-4o-2024-11-20".into());
            r.system_fingerprint = Some("fp_b".into());
            if i % 2 == 0 {
                r.context_chars = None;
                r.passages = None;
            } else {
                r.passages = Some(1 + (i % 2) as i64);
                r.context_chars = Some(700 + (i % 5) as i64);
            }
            r
        })
        .collect();
    let mut d = data(window, baseline);
    d.model_events = vec![ModelEvent {
        id: 1,
        at_ms: START - 30 * MIN,
        scope: "stream:support-bot".into(),
        requested_model: "gpt-4o".into(),
        old_model: Some("gpt-4o-2024-08-06".into()),
        new_model: Some("gpt-4o-2024-11-20".into()),
        old_fingerprint: Some("fp_a".into()),
        new_fingerprint: Some("fp_b".into()),
    }];
    let lines = lines(&d, &[alert("length_drift", 120.0, 90.0)]);
    let m = lines
        .iter()
        .find(|l| l.kind == "model")
        .expect("model line");
    assert!(
        m.text.contains("gpt-4o-2024-11-20 (fp_b) 100 %"),
        "{}",
        m.text
    );
    assert!(m.text.contains("30 min before the start"), "{}", m.text);
    let r = lines
        .iter()
        .find(|l| l.kind == "retrieval")
        .expect("retrieval line");
    assert!(
        r.text
            .contains("50 % of window records had context vs 100 % of the baseline"),
        "{}",
        r.text
    );
}

#[test]
fn loops_in_sessions_get_the_tool_line() {
    let call = r#"[{"name": "lookup_order", "arguments": {"id": 7}}]"#;
    let mk = |ts: i64, session: String, tools: bool| TriageRow {
        ts_ms: ts,
        session_id: Some(session),
        tool_calls: tools.then(|| call.to_string()),
        ..Default::default()
    };
    let baseline: Vec<TriageRow> = (0..200)
        .map(|i| mk(START - 3 * 3_600_000, format!("b{i}"), true))
        .collect();
    let mut window: Vec<TriageRow> = (0..100).map(|i| mk(START, format!("w{i}"), true)).collect();
    window.extend((0..9).map(|_| mk(START, "s-17".into(), true)));
    let lines = lines(
        &data(window, baseline),
        &[alert("tool_call_loop", 0.0, 9.0)],
    );
    let t = lines
        .iter()
        .find(|l| l.kind == "tool_calls")
        .expect("tool line");
    assert!(t.text.contains("1 of 101 sessions"), "{}", t.text);
    assert!(
        t.text.contains("lookup_order ×9 in session s-17"),
        "{}",
        t.text
    );
    // The session it names is linked to its page (a path: the pages use it
    // as is, messages put the base URL in front).
    assert_eq!(
        t.links,
        [TriageLink {
            text: "session s-17".into(),
            href: "/sessions?stream=support-bot&id=s-17".into(),
        }]
    );
}

#[test]
fn fired_sessions_are_linked_once_each_with_their_whole_id() {
    let long = format!("s/{}&", "x".repeat(80));
    let mut d = data(Vec::new(), Vec::new());
    d.fired_sessions = [long.as_str(), "s-2", "s-3", "s-4"]
        .iter()
        .map(|s| crate::store::FiredSession {
            session_id: s.to_string(),
            fired: "session_budget".into(),
            calls: 40,
        })
        .collect();
    let lines = lines(&d, &[alert("session_budget", 0.0, 40.0)]);
    let t = lines
        .iter()
        .find(|l| l.kind == "tool_calls")
        .expect("tool line");
    let hrefs: Vec<&str> = t.links.iter().map(|l| l.href.as_str()).collect();
    assert_eq!(
        hrefs,
        [
            format!("/sessions?stream=support-bot&id=s%2F{}%26", "x".repeat(80)).as_str(),
            "/sessions?stream=support-bot&id=s-2",
            "/sessions?stream=support-bot&id=s-3",
        ],
        "the three the line names"
    );
    assert!(t.links[0].text.chars().count() <= "session ".len() + 60);
}

#[test]
fn periods_lead_the_start_and_the_baseline_is_the_day_before() {
    let (b, w, to) = periods(START, START + MIN);
    assert_eq!(w, START - WINDOW_LEAD_MS);
    assert_eq!(b, w - BASELINE_MS);
    assert_eq!(to, START + MIN);
}
