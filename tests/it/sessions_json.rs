//! Agent sessions end to end through the spawned daemon on both backends:
//! a loop of identical tool calls sent as JSON, a session over its token
//! budget, the signed kill-switch hook checked by a loopback receiver, and
//! the sessions that must not fire (a long healthy one with varied calls,
//! a tool legitimately called often with different arguments, a repeated
//! batch that must not count twice).

use std::time::{Duration, Instant};

use crate::support::alerts::HttpReceiver;
use crate::support::{TestDaemon, TestDb, wait_until, write_tree};
use canaryd::alert::hook::{SIGNATURE_HEADER, signature};
use canaryd::store::Store;
use serde_json::{Value, json};

const SECRET: &str = "hook-secret-0123456789";

fn config(receiver: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
judges: ./none
base_url: https://canaryd.example.com
detectors: {{ every_secs: 0 }}
alerts:
  group_wait: 1s
  retry: {{ attempts: 2, backoff: 10ms, outbox_delay: 1s, max_delay: 5s }}
  channels:
    ops:
      webhook: {{ url: "{receiver}/alerts", timeout: 5s }}
sessions:
  every_secs: 1
  budget: {{ max_calls: 500, max_tokens: 100000, max_cost_usd: 0 }}
  streams:
    billing-agent: {{ max_tokens: 5000 }}
  hook:
    url: "{receiver}/kill"
    secret: {{ file: hook-secret }}
"#
    )
}

async fn post(client: &reqwest::Client, base: &str, records: &[Value]) -> Value {
    let body: String = records.iter().map(|r| format!("{r}\n")).collect();
    let r = client
        .post(format!("{base}/v1/responses"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    v
}

fn rec(id: &str, stream: &str, session: &str, agent: &str, tools: Value, tokens: i64) -> Value {
    json!({"id": id, "stream": stream, "session_id": session, "agent": agent, "user_id": "u-7",
           "output": "Working on it.", "input_tokens": tokens / 2, "output_tokens": tokens / 2,
           "tool_calls": tools})
}

#[tokio::test]
async fn json_loop_and_budget_fire_the_signed_hook_and_healthy_sessions_do_not() {
    for db in TestDb::all().await {
        let b = db.backend;
        let receiver = HttpReceiver::start().await;
        let dir = write_tree(&[
            ("canaryd.yaml", &config(&receiver.url)),
            ("hook-secret", &format!("{SECRET}\n")),
        ]);
        let daemon = TestDaemon::on_db(dir.path(), &db.url);
        let base = daemon.url().to_string();
        let client = reqwest::Client::new();

        // Negative cases first, so they have had every pass the loop had.
        let tools = [
            "search",
            "open_page",
            "summarise",
            "lookup_order",
            "send_email",
        ];
        let healthy: Vec<Value> = (0..120)
            .map(|i| {
                rec(
                    &format!("h{i}"),
                    "support-agent",
                    "healthy-1",
                    ["planner", "worker"][i % 2],
                    json!([{"name": tools[i % 5], "arguments": {"step": i}}]),
                    400,
                )
            })
            .collect();
        post(&client, &base, &healthy).await;
        let often: Vec<Value> = (0..60)
            .map(|i| {
                rec(
                    &format!("o{i}"),
                    "support-agent",
                    "search-often",
                    "researcher",
                    json!([{"type": "function", "id": format!("call_{i}"),
                            "function": {"name": "search", "arguments": format!("{{\"q\": \"page {i}\"}}")}}]),
                    300,
                )
            })
            .collect();
        post(&client, &base, &often).await;

        // Four identical calls, then the same four again (duplicates): not a loop yet.
        let same = |i: usize| {
            let args = if i % 2 == 0 {
                json!({"city": "Oslo", "unit": "C"})
            } else {
                json!("{ \"unit\": \"C\",  \"city\": \"Oslo\" }")
            };
            rec(
                &format!("l{i}"),
                "support-agent",
                "loop-1",
                "assistant",
                json!([{"name": "get_weather", "arguments": args}]),
                200,
            )
        };
        let four: Vec<Value> = (0..4).map(same).collect();
        post(&client, &base, &four).await;
        let again = post(&client, &base, &four).await;
        assert_eq!(again["duplicates"], 4, "{b}: {again}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            receiver.delivered("/kill").is_empty(),
            "{b}: four calls (sent twice) are not a loop"
        );

        // The fifth identical call: the hook must be called within 60 s.
        let sent_at = Instant::now();
        post(&client, &base, &[same(4)]).await;
        // A session over its stream's token budget (5,000).
        let spend: Vec<Value> = (0..6)
            .map(|i| {
                rec(
                    &format!("b{i}"),
                    "billing-agent",
                    "budget-1",
                    "biller",
                    json!([{"name": "charge", "arguments": {"n": i}}]),
                    1000,
                )
            })
            .collect();
        post(&client, &base, &spend).await;

        let calls = wait_until(
            &format!("{b}: the hook called for the loop and the budget"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            async || {
                let calls = receiver.delivered("/kill");
                if calls.len() >= 2 {
                    Ok(calls)
                } else {
                    Err(format!("{calls:?}"))
                }
            },
        )
        .await;
        eprintln!(
            "{b}: loop → hook in {:.1} s",
            sent_at.elapsed().as_secs_f64()
        );
        let mut by_rule = std::collections::BTreeMap::new();
        for c in &calls {
            let sig = c
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(SIGNATURE_HEADER))
                .map(|(_, v)| v.clone())
                .expect("signature header");
            assert_eq!(sig, signature(SECRET.as_bytes(), &c.body), "{b}: HMAC");
            assert_ne!(sig, signature(b"other", &c.body));
            let v: Value = serde_json::from_str(&c.body).unwrap();
            by_rule.insert(v["rule"].as_str().unwrap().to_string(), v);
        }
        let l = &by_rule["tool_call_loop"];
        assert_eq!(
            (l["stream"].as_str(), l["session_id"].as_str()),
            (Some("support-agent"), Some("loop-1")),
            "{b}"
        );
        assert!(
            l["summary"]
                .as_str()
                .unwrap()
                .contains("get_weather called 5×"),
            "{b}: {l}"
        );
        assert_eq!(
            l["evidence_url"],
            "https://canaryd.example.com/sessions?stream=support-agent&id=loop-1",
            "{b}: the hook links the session's page"
        );
        let s = &by_rule["session_budget"];
        assert_eq!(s["session_id"], "budget-1", "{b}");
        assert!(
            s["summary"]
                .as_str()
                .unwrap()
                .contains("6000 tokens (max 5000)"),
            "{b}: {s}"
        );

        // The alert reached the ordinary channel with the session timeline.
        let note = wait_until(
            &format!("{b}: the loop alert on the webhook channel"),
            Duration::from_secs(20),
            Duration::from_millis(200),
            async || {
                receiver
                    .delivered("/alerts")
                    .into_iter()
                    .find(|p| p.body.contains("loop-1"))
                    .ok_or_else(|| "none yet".to_string())
            },
        )
        .await;
        assert!(note.body.contains("◀ repeated"), "{b}: {}", note.body);
        assert!(note.body.contains("get_weather"), "{b}");

        // Nothing else fired, and the summaries counted each record once.
        let store = Store::connect(&db.url).await.unwrap();
        let alerts = store
            .alerts_of_streams(&["support-agent".into(), "billing-agent".into()])
            .await
            .unwrap();
        let keys: Vec<(String, String)> = alerts
            .iter()
            .map(|a| (a.rule.clone(), a.dimension.clone()))
            .collect();
        assert_eq!(
            keys.len(),
            2,
            "{b}: only the loop and the budget fire: {keys:?}"
        );
        let loop1 = store
            .session("support-agent", "loop-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((loop1.calls, loop1.tokens), (5, 1000), "{b}");
        assert_eq!(loop1.user_id.as_deref(), Some("u-7"));
        let healthy = store
            .session("support-agent", "healthy-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(healthy.calls, 120, "{b}");
        // The hook is called once per episode, not on every pass.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(receiver.delivered("/kill").len(), 2, "{b}");
        store.close().await;
    }
}

#[tokio::test]
async fn bad_session_fields_are_rejected_with_the_field_named() {
    let db = TestDb::sqlite().await;
    let dir = write_tree(&[("canaryd.yaml", "listen: 127.0.0.1:0\njudges: ./none\n")]);
    let daemon = TestDaemon::on_db(dir.path(), &db.url);
    let client = reqwest::Client::new();
    for (body, field) in [
        (
            json!({"stream": "s", "output": "x", "tool_calls": [{"arguments": {}}]}),
            "tool_calls[0].name",
        ),
        (
            json!({"stream": "s", "output": "x", "cost_usd": -1}),
            "cost_usd",
        ),
        (
            json!({"stream": "s", "output": "x", "cost_usd": "a lot"}),
            "cost_usd",
        ),
        (
            json!({"stream": "s", "output": "x", "agent": "  "}),
            "agent",
        ),
        (
            json!({"stream": "s", "output": "x", "user_id": "u".repeat(600)}),
            "user_id",
        ),
    ] {
        let r = client
            .post(format!("{}/v1/responses", daemon.base_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["field"], field, "{v}");
    }
}
