//! Agent sessions sent as OTLP spans by the official OpenTelemetry Python
//! SDK (`invoke_agent`, `chat`, `execute_tool`), into the spawned daemon on
//! both backends: an A↔B clarification loop and a tool repeated without
//! recorded arguments fire `tool_call_loop`; a research session calling
//! tools often with different arguments does not.

use std::process::Command;
use std::time::Duration;

use crate::support::{TestDaemon, TestDb, otel, wait_until, write_tree};
use canaryd::store::Store;

const CONFIG: &str = "listen: 127.0.0.1:0\njudges: ./none\ndetectors: { every_secs: 0 }\nalerts: { group_wait: 1s }\nsessions: { every_secs: 1 }\n";

#[tokio::test]
async fn sdk_agent_spans_make_sessions_and_the_ping_pong_is_caught() {
    let Some(py) = otel::python_or_skip() else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/otel_agents.py");
    for db in TestDb::all().await {
        let b = db.backend;
        let dir = write_tree(&[("canaryd.yaml", CONFIG)]);
        let daemon = TestDaemon::on_db(dir.path(), &db.url);
        let out = Command::new(&py)
            .arg(script)
            .arg(format!("{}/v1/traces", daemon.url()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{b}: exporter failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            daemon.stderr()
        );
        let store = Store::connect(&db.url).await.unwrap();
        let firing = wait_until(
            &format!("{b}: two session alerts firing"),
            Duration::from_secs(60),
            Duration::from_millis(300),
            async || {
                let alerts = store
                    .alerts_of_streams(&["agent-app".into()])
                    .await
                    .unwrap();
                let firing: Vec<_> = alerts.into_iter().filter(|a| a.state == "firing").collect();
                if firing.len() >= 2 {
                    Ok(firing)
                } else {
                    Err(format!("{firing:?}"))
                }
            },
        )
        .await;
        let mut got: Vec<(String, String, String)> = firing
            .iter()
            .map(|a| (a.rule.clone(), a.dimension.clone(), a.summary.clone()))
            .collect();
        got.sort();
        assert_eq!(got.len(), 2, "{b}: {got:?}\n{}", daemon.stderr());
        assert_eq!(got[0].1, "conv-pingpong", "{b}: {got:?}");
        assert!(
            got[0].2.contains("↔") && got[0].2.contains("8 turns"),
            "{b}: {got:?}"
        );
        assert_eq!(got[1].1, "conv-status", "{b}: {got:?}");
        assert!(
            got[1]
                .2
                .contains("check_status called 16× with no arguments recorded"),
            "{b}: {got:?}"
        );

        // The spans made sessions: model calls and executed tools counted,
        // a tool's request and execution (shared call id) in one timeline.
        let research = store
            .session("agent-app", "conv-research")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(research.calls, 30 + 30 + 10, "{b}: chats + executed tools");
        assert_eq!(
            research.tokens,
            30 * 150,
            "{b}: tokens from the chat spans only"
        );
        let events = store
            .session_events("agent-app", "conv-status", 500)
            .await
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.kind == "agent" && e.agent.as_deref() == Some("deployer"))
        );
        assert_eq!(
            canaryd::sessions::detect::most_repeated(&events).map(|(t, n)| (t.name.as_str(), n)),
            Some(("check_status", 16)),
            "{b}"
        );
        // Agent and tool spans are not responses: only the 8 + 16 + 30 chats are.
        let n = store
            .count_responses("agent-app", 0, i64::MAX)
            .await
            .unwrap();
        assert_eq!(n, 54, "{b}");
        store.close().await;
    }
}
