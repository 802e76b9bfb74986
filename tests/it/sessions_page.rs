//! The session page through the real binary on both backends: a looping
//! session's timeline with the repeated call highlighted and its
//! arguments escaped, linked from the alerts page, behind the page login;
//! and the stream page's spend chart.

use std::time::Duration;

use crate::support::{TestDaemon, TestDb, wait_until, write_tree};
use canaryd::store::Store;
use serde_json::{Value, json};

const API: &str = "page-api-t0ken";
const INGEST: &str = "page-ingest-t0ken";

const CONFIG: &str = r#"listen: 127.0.0.1:0
judges: ./none
detectors: { every_secs: 0 }
ingest:
  tokens: [{ file: ingest-token }]
api:
  tokens: [{ file: api-token }]
alerts:
  group_wait: 1s
sessions:
  every_secs: 1
"#;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn call(i: usize, session: &str, args: Value) -> Value {
    let agent = ["planner", "worker"][i % 2];
    json!({"id": format!("{session}-{i}"), "stream": "agents/eu", "session_id": session,
           "agent": agent, "user_id": "u-1",
           "output": "Checking.", "input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01,
           "tool_calls": [{"name": "lookup_order", "arguments": args}]})
}

#[tokio::test]
async fn a_looping_session_has_a_page_with_its_timeline() {
    for db in TestDb::all().await {
        let b = db.backend;
        let dir = write_tree(&[
            ("canaryd.yaml", CONFIG),
            ("api-token", &format!("{API}\n")),
            ("ingest-token", &format!("{INGEST}\n")),
        ]);
        let daemon = TestDaemon::on_db(dir.path(), &db.url);
        let base = daemon.url().to_string();
        let http = client();

        // Two varied calls, then the same call six times: a loop.
        let mut records: Vec<Value> = (0..2)
            .map(|i| call(i, "loop <1>", json!({"order": i})))
            .collect();
        records.extend(
            (2..8).map(|i| call(i, "loop <1>", json!({"order": "<script>alert(1)</script>"}))),
        );
        let body: String = records.iter().map(|r| format!("{r}\n")).collect();
        let r = http
            .post(format!("{base}/v1/responses"))
            .bearer_auth(INGEST)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{b}");

        let store = Store::connect(&db.url).await.unwrap();
        wait_until(
            &format!("{b}: the loop alert"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            async || {
                let alerts = store.list_alerts(10).await.map_err(|e| e.to_string())?;
                match alerts.iter().any(|a| a.rule == "tool_call_loop") {
                    true => Ok(()),
                    false => Err(format!("{alerts:?}")),
                }
            },
        )
        .await;

        let page = format!("{base}/sessions?stream=agents%2Feu&id=loop%20%3C1%3E");
        // Behind the page login: a browser without credentials is sent to it.
        let r = http.get(&page).send().await.unwrap();
        assert_eq!(r.status(), 303, "{b}");
        assert!(r.text().await.unwrap().is_empty(), "{b}");
        let r = http.get(&page).bearer_auth(INGEST).send().await.unwrap();
        assert_eq!(r.status(), 401, "{b}: an ingest token does not open pages");

        let r = http.get(&page).bearer_auth(API).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let html = r.text().await.unwrap();
        assert!(html.contains("Session loop &lt;1&gt;"), "{b}: {html}");
        assert_eq!(
            html.matches("<tr class=\"repeated\">").count(),
            6,
            "{b}: the six identical calls are highlighted, the two varied ones not: {html}"
        );
        assert_eq!(html.matches("class=\"repeated-call\"").count(), 6, "{b}");
        assert!(html.contains("lookup_order"), "{b}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
                && !html.contains("<script>"),
            "{b}: arguments are shown escaped: {html}"
        );
        assert!(html.contains("planner") && html.contains("worker"), "{b}");
        assert!(
            html.contains("$0.0100") && html.contains("$0.0800"),
            "{b}: per call and total"
        );
        assert!(html.contains("tool_call_loop"), "{b}: what fired");

        // The alerts page links it.
        let r = http
            .get(format!("{base}/alerts"))
            .bearer_auth(API)
            .send()
            .await
            .unwrap();
        let alerts = r.text().await.unwrap();
        assert!(
            alerts.contains("href=\"&#x2F;sessions?stream=agents%2Feu&amp;id=loop%20%3C1%3E\""),
            "{b}: {alerts}"
        );
        // So does the alert's triage line that names the session.
        let triage = alerts
            .find(r#"<div class="triage">"#)
            .map(|i| &alerts[i..])
            .unwrap_or_else(|| panic!("{b}: no triage on the alerts page: {alerts}"));
        let triage = &triage[..triage.find("</div>").unwrap()];
        assert!(
            triage.contains(
                "<a href=\"&#x2F;sessions?stream=agents%2Feu&amp;id=loop%20%3C1%3E\">session loop &lt;1&gt;</a>"
            ),
            "{b}: {triage}"
        );

        // The stream page shows spend over time.
        let r = http
            .get(format!("{base}/streams/agents%2Feu"))
            .bearer_auth(API)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let stream = r.text().await.unwrap();
        assert!(
            stream.contains("Estimated cost per hour")
                && stream.contains("8 calls, 960 tokens, $0.08 in the period."),
            "{b}: {stream}"
        );

        // An unknown session is a 404 page.
        let r = http
            .get(format!("{base}/sessions?stream=agents%2Feu&id=nope"))
            .bearer_auth(API)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{b}");
        store.close().await;
    }
}
