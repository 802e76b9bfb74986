use std::collections::BTreeMap;

use serde_json::json;

use super::*;

const HOUR_MS: i64 = 3_600_000;
const NOW: i64 = 1_795_437_000_000;

fn result(
    run_id: i64,
    case: &str,
    target: &str,
    outcome: &str,
    agrees: Option<bool>,
) -> CaseResultRow {
    CaseResultRow {
        run_id,
        suite: "facts".into(),
        case_id: case.into(),
        target: target.into(),
        requested_model: format!("{target}-model"),
        response_model: Some(format!("{target}-model-2024")),
        answer: Some(format!("{target} says <b>hi</b>")),
        outcome: outcome.into(),
        verdicts: json!([{"expectation": "contains hi", "pass": outcome == "pass"}]).to_string(),
        agrees_with_pinned: agrees,
        created_ms: NOW - HOUR_MS,
        ..Default::default()
    }
}

fn run(id: i64, started_ms: i64) -> RunRow {
    RunRow {
        id,
        suite: "facts".into(),
        suite_version: 3,
        content_hash: "h".into(),
        trigger: "schedule".into(),
        scheduled_for_ms: None,
        started_ms,
        finished_ms: Some(started_ms + 5000),
        status: "completed".into(),
        owner: "me".into(),
        cases_total: 4,
        passed: 3,
        failed: 1,
        provider_errors: 0,
        note: None,
    }
}

fn count(run_id: i64, target: &str, outcome: &str, n: i64) -> RunTargetCount {
    RunTargetCount {
        run_id,
        target: target.into(),
        outcome: outcome.into(),
        n,
    }
}

#[test]
fn suite_view_puts_pinned_beside_live_and_counts_per_target() {
    let p = Periods::new(NOW, 48, 24, 7);
    let d = SuiteData {
        suite: "facts".into(),
        runs: vec![run(2, NOW - HOUR_MS), run(1, NOW - 2 * HOUR_MS)],
        counts: vec![
            count(1, "live", "pass", 2),
            count(1, "pinned", "pass", 2),
            count(2, "live", "fail", 1),
            count(2, "live", "provider_error", 1),
            count(2, "pinned", "pass", 2),
        ],
        // Live first in storage order: the view must still show pinned first.
        latest_results: vec![
            result(2, "capital", "live", "fail", Some(false)),
            result(2, "capital", "pinned", "pass", None),
            result(2, "math", "live", "provider_error", None),
            result(2, "math", "pinned", "pass", None),
        ],
        events: vec![],
        findings: vec![],
        alerts: None,
    };
    let v = build_suite(&d, &p);
    assert_eq!(v.health.text, "75");
    assert_eq!(v.runs[0].version, 3);
    assert_eq!(
        v.runs[0].targets,
        vec![
            TargetCounts {
                target: "live".into(),
                pass: 0,
                fail: 1,
                provider_error: 1
            },
            TargetCounts {
                target: "pinned".into(),
                pass: 2,
                fail: 0,
                provider_error: 0
            },
        ]
    );
    let latest = v.latest.unwrap();
    assert_eq!(latest.targets, ["pinned", "live"]);
    assert_eq!(latest.cases.len(), 2);
    let capital = &latest.cases[0];
    assert_eq!(capital.cells[0].target, "pinned");
    assert_eq!(capital.cells[1].target, "live");
    assert_eq!(capital.cells[1].agrees, "differs from pinned");
    assert_eq!(capital.cells[1].verdicts, ["✗ · expectation: contains hi"]);
    assert_eq!(capital.cells[0].model, "pinned-model-2024");
    assert!(v.pass_chart.svg.contains("<path"), "{}", v.pass_chart.svg);
    let legend: Vec<&str> = v
        .pass_chart
        .legend
        .iter()
        .map(|l| l.label.as_str())
        .collect();
    assert_eq!(legend, ["pinned", "live"], "live draws over the baseline");
}

#[test]
fn verdicts_of_any_shape_become_text() {
    assert_eq!(verdict_text(&json!("ok")), "ok");
    assert_eq!(
        verdict_text(&json!({"passed": true, "kind": "regex", "detail": 3})),
        "✓ · detail: 3 · kind: regex"
    );
    assert_eq!(verdicts("not json"), ["not json"]);
    assert!(verdicts("[]").is_empty());
}

#[test]
fn inputs_and_contexts_are_unpacked_for_reading() {
    assert_eq!(
        input_messages(Some(r#""plain question""#)),
        [Message {
            role: "input".into(),
            content: "plain question".into()
        }]
    );
    let chat = json!([
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ])
    .to_string();
    let m = input_messages(Some(&chat));
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].role, "system");
    assert_eq!(m[1].content, "a\nb");
    assert_eq!(input_messages(Some("{broken"))[0].content, "{broken");
    assert!(input_messages(None).is_empty());
    let ctx = json!(["first", {"text": "second"}, {"id": 3}]).to_string();
    let c = context_passages(Some(&ctx));
    assert_eq!(c[0], "first");
    assert_eq!(c[1], "second");
    assert!(c[2].contains("\"id\": 3"));
}

#[test]
fn response_view_lists_signals_and_scores() {
    let r = ResponseRow {
        id: 7,
        stream: "chat/support".into(),
        ts_ms: NOW,
        output: "<img src=x onerror=alert(1)>".into(),
        output_tokens: 12,
        refusal: true,
        finish_reason: Some("length".into()),
        ..Default::default()
    };
    let scores = [ScoreDetail {
        judge: "helpful".into(),
        judge_version: 2,
        judge_model: Some("gpt-4o-mini".into()),
        score: Some(1.5),
        reasoning: Some("unhelpful".into()),
        error: None,
        created_ms: NOW,
    }];
    let v = build_response(&r, &scores);
    assert_eq!(v.stream_href, "/streams/chat%2Fsupport");
    let get = |k: &str| v.signals.iter().find(|s| s.0 == k).unwrap().1.clone();
    assert_eq!(get("refusal"), "yes");
    assert_eq!(get("finish reason"), "length");
    assert_eq!(get("output tokens"), "12");
    assert_eq!(get("fingerprint"), "—");
    assert_eq!(v.scores[0].judge, "helpful v2");
    assert_eq!(v.scores[0].score, "1.5");
}

#[test]
fn alerts_show_their_evidence_and_link_their_subject() {
    let a = AlertRow {
        id: 1,
        rule: "canary_regression".into(),
        stream: "suite:facts".into(),
        dimension: String::new(),
        state: "firing".into(),
        severity: "critical".into(),
        value: 0.5,
        baseline: 1.0,
        threshold: 0.2,
        p_value: Some(0.00012),
        samples: 8,
        baseline_samples: 80,
        summary: "pass rate 100% → 50%".into(),
        pending_ms: Some(NOW - 2 * HOUR_MS),
        firing_ms: Some(NOW - HOUR_MS),
        resolved_ms: None,
        last_eval_ms: NOW,
        last_notified_ms: None,
        resolve_pending: false,
        rev: 0,
    };
    let mut resolved = a.clone();
    resolved.id = 2;
    resolved.state = "resolved".into();
    resolved.last_eval_ms = NOW + 1;
    resolved.resolved_ms = Some(NOW);
    let example = Example {
        title: "response 7".into(),
        fields: vec![],
    };
    let examples = BTreeMap::from([(1, vec![example.clone()])]);
    let v = build_alerts(&[resolved, a], &examples, NOW);
    assert_eq!(v[0].state, "firing", "firing before the newer resolved one");
    assert_eq!(v[0].examples, [example]);
    assert!(v[1].examples.is_empty());
    assert_eq!(v[1].since, "resolved 0s ago");
    assert_eq!(v[0].stream_href, "/suites/facts");
    assert_eq!(
        v[0].evidence,
        "current 0.5 vs baseline 1 (threshold 0.2); n=8 vs 80; p=1.20e-4"
    );
    assert_eq!(v[0].since, "firing since 1h ago");
    assert_eq!(subject_href("a b"), "/streams/a%20b");
}
