//! `canaryd demo` end to end: the real binary stages a silent model update
//! and must detect it, record the model change and deliver email and Slack
//! notifications to its capture servers; after the update its agent pair
//! falls into a clarification loop that must fire `tool_call_loop` and call
//! the kill-switch hook, while the same pair's session before the update
//! (answered in one turn) fires nothing.

use std::process::Command;

#[test]
fn demo_detects_the_staged_update_and_captures_notifications() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("demo");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_canaryd"))
        .args(["demo", "--update-after", "20", "--timeout", "150", "--dir"])
        .arg(&dir)
        .output()
        .expect("run canaryd demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "demo took {:.0}s\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);

    // The console tells the user where to look.
    assert!(
        stdout.contains(&format!("scratch directory: {}", dir.display())),
        "{stdout}"
    );
    assert!(stdout.contains("daemon on http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("SILENT MODEL UPDATE"), "{stdout}");
    assert!(stdout.contains("== canaryd demo summary =="), "{stdout}");
    assert!(
        stdout.contains("the silent model update was detected and notified"),
        "{stdout}"
    );

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["detected"], true, "{summary:#}");
    let alerts = summary["alerts_fired"].as_array().unwrap();
    let quality = |a: &&serde_json::Value| {
        matches!(
            a["rule"].as_str(),
            Some("judge_score_drop" | "refusal_rate_shift")
        )
    };
    assert!(
        alerts
            .iter()
            .filter(quality)
            .any(|a| a["stream"] == "support-bot"
                && a["fired_after_update_secs"].as_f64() >= Some(0.0)),
        "a quality alert on support-bot after the update: {summary:#}"
    );
    // The replayed baseline matches the healthy model: nothing fired before the update.
    assert!(
        alerts
            .iter()
            .filter(quality)
            .all(|a| a["fired_after_update_secs"].as_f64() >= Some(0.0)),
        "no quality alert before the update: {summary:#}"
    );
    let events = summary["model_change_events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["scope"] == "stream:support-bot"
            && e["old_model"] == "gpt-4o-2024-08-06"
            && e["new_model"] == "gpt-4o-2024-11-20"),
        "the stream's model change: {summary:#}"
    );

    // The agent pair's clarification loop after the update, stopped from outside.
    assert_eq!(summary["session_loop_stopped"], true, "{summary:#}");
    assert!(
        alerts.iter().any(|a| a["rule"] == "tool_call_loop"
            && a["stream"] == "order-agents"
            && a["dimension"] == "orders-after-update"),
        "{summary:#}"
    );
    assert!(
        !alerts
            .iter()
            .any(|a| a["dimension"] == "orders-before-update"),
        "the session answered in one turn fires nothing: {summary:#}"
    );
    assert!(
        stdout.contains("session orders-before-update answered in 1 turn"),
        "{stdout}"
    );
    assert!(stdout.contains("agent loop detected"), "{stdout}");
    assert!(
        stdout.contains("the agent pair's clarification loop fired tool_call_loop"),
        "{stdout}"
    );

    // The daemon's real delivery code reached the capture servers.
    let files = |sub: &str| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir.join("captured").join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    // The stream's notification (the suite's model change may come first).
    let about_stream = |paths: &[std::path::PathBuf]| -> Option<String> {
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .find(|t| t.contains("support-bot"))
    };
    let mails = files("email");
    let mail = about_stream(&mails).expect("an email about support-bot was captured");
    assert!(
        mail.contains("Subject:") && mail.contains("To: oncall@demo.invalid"),
        "{mail}"
    );
    assert!(
        mail.contains("refusal") || mail.contains("groundedness") || mail.contains("completion"),
        "{mail}"
    );
    assert!(
        stdout.contains("email captured:") && stdout.contains("[FIRING"),
        "{stdout}"
    );
    let slack = files("slack");
    let payload: serde_json::Value =
        serde_json::from_str(&about_stream(&slack).expect("a Slack message about support-bot"))
            .unwrap();
    assert!(
        payload["blocks"].is_array(),
        "Block Kit payload: {payload:#}"
    );
    assert!(
        payload["text"].as_str().unwrap().contains("FIRING"),
        "{payload:#}"
    );
    let hook: Vec<serde_json::Value> = files("hook")
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    assert!(
        hook.iter().any(|h| h["rule"] == "tool_call_loop"
            && h["session_id"] == "orders-after-update"
            && h["stream"] == "order-agents"),
        "the kill-switch hook was called for the loop: {hook:#?}"
    );
    for path in mails.iter().chain(&slack) {
        assert!(
            stdout.contains(&path.display().to_string()),
            "{} listed:\n{stdout}",
            path.display()
        );
    }
}
