//! Snapshot tests of what people receive: the email (subject, text, HTML),
//! the Slack payload and the webhook payload, for a firing group and a
//! resolve notice. Expected outputs live in `tests/snapshots/`; a template
//! change shows up there in review. `UPDATE_SNAPSHOTS=1 cargo test --test
//! it alerts_render::` rewrites them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use canaryd::alert::evidence::{Example, Field};
use canaryd::alert::message::{self, Input, Message};
use canaryd::alert::render::Renderer;
use canaryd::store::{AlertRow, Annotation, ModelEvent};

const NOW: i64 = 1_763_942_400_000; // 2025-11-24 00:00 UTC

fn alert(
    id: i64,
    rule: &str,
    dim: &str,
    state: &str,
    baseline: f64,
    value: f64,
    summary: &str,
) -> AlertRow {
    AlertRow {
        id,
        rule: rule.into(),
        stream: "support-bot".into(),
        dimension: dim.into(),
        state: state.into(),
        severity: "critical".into(),
        value,
        baseline,
        threshold: 0.3,
        p_value: Some(0.0004),
        samples: 412,
        baseline_samples: 9800,
        summary: summary.into(),
        pending_ms: Some(NOW - 60_000),
        firing_ms: Some(NOW - 30_000),
        resolved_ms: (state == "resolved").then_some(NOW),
        last_eval_ms: NOW,
        last_notified_ms: None,
        resolve_pending: state == "resolved",
        rev: 3,
    }
}

fn firing_message() -> Message {
    firing_message_with(&[])
}

fn firing_message_with(annotations: &[Annotation]) -> Message {
    let firing = vec![
        alert(
            1,
            "judge_score_drop",
            "groundedness",
            "firing",
            4.2213,
            3.7141,
            "groundedness 4.22 → 3.71 (p=0.0004, n=412)",
        ),
        alert(
            2,
            "refusal_rate_shift",
            "",
            "firing",
            0.021,
            0.113,
            "refusal rate 2.1% → 11.3% (p<0.0001, n=412)",
        ),
    ];
    let mut examples = BTreeMap::new();
    examples.insert(
        1,
        vec![Example {
            title: "groundedness score 1.00 · 2025-11-23 23:10 UTC".into(),
            fields: vec![
                Field { label: "input".into(), text: "Can I return shoes after 45 days?".into() },
                Field {
                    label: "output".into(),
                    text: "Yes! <script>alert(1)</script> <!channel> <@U123> <http://evil|click> & our ```policy```".into(),
                },
                Field { label: "judge reasoning".into(), text: "The answer invents a 60-day window; the context says 30 days.".into() },
            ],
        }],
    );
    let events = vec![ModelEvent {
        id: 7,
        at_ms: NOW - 3_600_000,
        scope: "stream:support-bot".into(),
        requested_model: "gpt-4o".into(),
        old_model: Some("gpt-4o-2024-08-06".into()),
        new_model: Some("gpt-4o-2024-11-20".into()),
        old_fingerprint: Some("fp_a".into()),
        new_fingerprint: Some("fp_b".into()),
    }];
    message::build(Input {
        stream: "support-bot",
        firing: &firing,
        resolved: &[],
        examples: &examples,
        model_change: true,
        model_events: &events,
        annotations,
        base_url: Some("https://canaryd.example.com"),
        now_ms: NOW,
        new_ids: &[1, 2],
        max_chars: 400,
    })
}

fn resolved_message() -> Message {
    let resolved = vec![alert(
        1,
        "judge_score_drop",
        "groundedness",
        "resolved",
        4.2213,
        4.1902,
        "groundedness 4.22 → 4.19 (p=0.41, n=398)",
    )];
    message::build(Input {
        stream: "suite:refund policy",
        firing: &[],
        resolved: &resolved,
        examples: &BTreeMap::new(),
        model_change: false,
        model_events: &[],
        annotations: &[],
        base_url: Some("https://canaryd.example.com/"),
        now_ms: NOW,
        new_ids: &[],
        max_chars: 400,
    })
}

/// Compares `actual` with the snapshot file, or rewrites it under `UPDATE_SNAPSHOTS=1`.
fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b);
        panic!(
            "{name} differs from the snapshot (first differing line {:?}); review, then UPDATE_SNAPSHOTS=1 to accept.\n--- actual ---\n{actual}",
            first.map(|i| i + 1)
        );
    }
}

fn check_all(prefix: &str, msg: &Message) {
    let r = Renderer::with_dir(None).unwrap();
    let email = r.email(msg).unwrap();
    snapshot(
        &format!("{prefix}.subject.txt"),
        &format!("{}\n", email.subject),
    );
    snapshot(&format!("{prefix}.email.txt"), &email.text);
    snapshot(&format!("{prefix}.email.html"), &email.html);
    let slack: serde_json::Value = serde_json::from_str(&r.body("slack", msg).unwrap()).unwrap();
    snapshot(
        &format!("{prefix}.slack.json"),
        &format!("{}\n", serde_json::to_string_pretty(&slack).unwrap()),
    );
    let hook: serde_json::Value = serde_json::from_str(&r.body("webhook", msg).unwrap()).unwrap();
    snapshot(
        &format!("{prefix}.webhook.json"),
        &format!("{}\n", serde_json::to_string_pretty(&hook).unwrap()),
    );
}

#[test]
fn firing_group_renders_as_reviewed() {
    let msg = firing_message();
    assert_eq!(
        msg.title,
        "[FIRING:2] support-bot: groundedness 4.22 → 3.71 (+1 more) [model changed]"
    );
    check_all("alert_firing", &msg);
}

/// The change-annotation section in every channel: a deploy 12 minutes
/// before the episode began is cited (its markup escaped per format); one
/// three hours before is not.
#[test]
fn annotations_near_the_start_render_as_reviewed() {
    let start = NOW - 60_000;
    let ann = |id, kind: &str, text: &str, ts_ms| Annotation {
        id,
        stream: "support-bot".into(),
        kind: kind.into(),
        text: text.into(),
        ts_ms,
        source: "cli".into(),
        created_ms: ts_ms,
    };
    let msg = firing_message_with(&[
        ann(1, "prompt", "long before", start - 3 * 3_600_000),
        ann(
            2,
            "deploy",
            "deploy v2.3 <script>x</script> & co",
            start - 12 * 60_000,
        ),
    ]);
    assert_eq!(msg.annotations.len(), 1, "{:?}", msg.annotations);
    assert_eq!(msg.annotations[0].relative, "12 min before the start");
    check_all("alert_annotated", &msg);
    let r = Renderer::with_dir(None).unwrap();
    let email = r.email(&msg).unwrap();
    assert!(email.text.contains("deploy \"deploy v2.3 <script>x</script> & co\" at 2025-11-23 23:47 UTC (12 min before the start)"), "{}", email.text);
    assert!(
        email
            .html
            .contains("deploy v2.3 &lt;script&gt;x&lt;&#x2F;script&gt; &amp; co"),
        "{}",
        email.html
    );
    assert!(!email.html.contains("<script>"));
    let slack = r.body("slack", &msg).unwrap();
    assert!(
        slack.contains("deploy v2.3 &lt;script&gt;x&lt;/script&gt; &amp; co"),
        "{slack}"
    );
    let hook: serde_json::Value = serde_json::from_str(&r.body("webhook", &msg).unwrap()).unwrap();
    assert_eq!(
        hook["annotations"][0]["text"],
        "deploy v2.3 <script>x</script> & co"
    );
    assert!(!email.text.contains("long before") && !slack.contains("long before"));
}

#[test]
fn resolve_notice_renders_as_reviewed() {
    let msg = resolved_message();
    assert_eq!(
        msg.title,
        "[RESOLVED] suite:refund policy: groundedness back to 4.19"
    );
    assert_eq!(
        msg.link.as_deref(),
        Some("https://canaryd.example.com/suites/refund%20policy")
    );
    check_all("alert_resolved", &msg);
}

#[test]
fn escaping_holds_in_every_format() {
    let msg = firing_message();
    let r = Renderer::with_dir(None).unwrap();
    let email = r.email(&msg).unwrap();
    assert!(!email.html.contains("<script>") && email.html.contains("&lt;script&gt;"));
    let slack = r.body("slack", &msg).unwrap();
    for bad in ["<!channel>", "<@U123>", "<http://evil|click>"] {
        assert!(!slack.contains(bad), "{bad}");
    }
}

#[test]
fn override_templates_and_no_env_access() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("email.txt"), "custom: {{ title }}").unwrap();
    let r = Renderer::with_dir(Some(dir.path())).unwrap();
    let email = r.email(&firing_message()).unwrap();
    assert_eq!(
        email.text,
        "custom: [FIRING:2] support-bot: groundedness 4.22 → 3.71 (+1 more) [model changed]"
    );
    assert!(
        email.html.contains("<!DOCTYPE html>"),
        "html falls back to the built-in template"
    );
    std::fs::write(dir.path().join("email.txt"), "{{ get_env(name=\"HOME\") }}").unwrap();
    let r = Renderer::with_dir(Some(dir.path())).unwrap();
    assert!(r.email(&firing_message()).is_err(), "get_env is disabled");
}

/// A score drop attributed to its judge (`judge_drift` firing): the mark
/// travels in the summary, so every channel says "judge changed", and the
/// severity is `info`.
#[test]
fn a_judge_changed_score_drop_renders_as_reviewed() {
    let mut drop = alert(
        5,
        "judge_score_drop",
        "groundedness",
        "firing",
        4.2213,
        2.3,
        &format!(
            "groundedness 4.22 → 2.30 since 2025-11-23T22:00:00Z (n=60, CUSUM 40.1 > 9.1){}",
            canaryd::signals::evaluate::JUDGE_CHANGED
        ),
    );
    drop.severity = "info".into();
    let msg = message::build(Input {
        stream: "support-bot",
        firing: &[drop],
        resolved: &[],
        examples: &BTreeMap::new(),
        model_change: false,
        model_events: &[],
        annotations: &[],
        base_url: Some("https://canaryd.example.com"),
        now_ms: NOW,
        new_ids: &[5],
        max_chars: 400,
    });
    check_all("alert_judge_changed", &msg);
    let r = Renderer::with_dir(None).unwrap();
    let email = r.email(&msg).unwrap();
    for (channel, body) in [
        ("email text", email.text),
        ("email html", email.html),
        ("slack", r.body("slack", &msg).unwrap()),
        ("webhook", r.body("webhook", &msg).unwrap()),
    ] {
        assert!(body.contains("judge changed"), "{channel}: {body}");
    }
}
