//! Spend through the spawned daemon on both backends: per-model prices
//! applied to records without `cost_usd` (a sent cost wins), a stream whose
//! last hour costs far more than its baseline fires `spend_rate` (and a
//! steady stream beside it does not), spend per stream, user and session in
//! `/metrics` and `canaryd status`, and the users' spend over time on the
//! stream page.

use std::time::Duration;

use crate::support::metrics::{scrape, value};
use crate::support::{TestDaemon, TestDb, run_cli, wait_until, write_tree};
use canaryd::store::Store;
use serde_json::json;

const HOUR: i64 = 3_600_000;

const CONFIG: &str = r#"listen: 127.0.0.1:0
judges: ./none
detectors: { every_secs: 0 }
alerts: { group_wait: 1s }
prices:
  gpt-4o: { input_cost_per_mtok: 2.5, output_cost_per_mtok: 10 }
sessions:
  every_secs: 1
  spend_rate: { baseline_days: 2, min_baseline_hours: 24 }
"#;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339()
}

#[tokio::test]
async fn a_spend_spike_fires_and_spend_is_reported() {
    for db in TestDb::all().await {
        let b = db.backend;
        let dir = write_tree(&[("canaryd.yaml", CONFIG)]);
        let daemon = TestDaemon::on_db(dir.path(), &db.url);
        let now = chrono::Utc::now().timestamp_millis();
        let this_hour = now.div_euclid(HOUR) * HOUR;
        // Two days of ~30 calls an hour on two streams, then 8× on "agents"
        // in the last complete hour and the current one (so an hour
        // boundary during the test still sees the spike).
        let mut lines = Vec::new();
        for stream in ["agents", "steady"] {
            for h in 1..=49 {
                let hour = this_hour - h * HOUR;
                let spike = stream == "agents" && h == 1;
                let calls = if spike { 240 } else { 25 + (h % 3) * 5 };
                for i in 0..calls {
                    lines.push(json!({"id": format!("{stream}-{h}-{i}"), "stream": stream,
                        "timestamp": rfc3339(hour + i * 10_000), "response_model": "gpt-4o-2024-08-06",
                        "user_id": format!("user-{}", i % 3), "input_tokens": 800, "output_tokens": 200,
                        "output": "Done."}));
                }
            }
        }
        for i in 0..240 {
            lines.push(json!({"id": format!("agents-now-{i}"), "stream": "agents", "session_id": "s-now",
                "timestamp": rfc3339(this_hour + i * 10), "response_model": "gpt-4o", "user_id": "user-0",
                "input_tokens": 800, "output_tokens": 200, "output": "Done."}));
        }
        // The application's own cost wins over the price.
        lines.push(
            json!({"id": "priced-by-app", "stream": "steady", "session_id": "s-app",
            "response_model": "gpt-4o", "input_tokens": 800, "output_tokens": 200, "cost_usd": 1.25,
            "output": "Done."}),
        );
        let client = reqwest::Client::new();
        for chunk in lines.chunks(2000) {
            let body: String = chunk.iter().map(|l| format!("{l}\n")).collect();
            let r = client
                .post(format!("{}/v1/responses", daemon.url()))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "{b}: {}", r.text().await.unwrap());
        }

        let store = Store::connect(&db.url).await.unwrap();
        // 800 in × $2.5/M + 200 out × $10/M = $0.004 a call.
        let s = store.session("agents", "s-now").await.unwrap().unwrap();
        assert!(
            (s.cost_usd - 240.0 * 0.004).abs() < 1e-9,
            "{b}: {}",
            s.cost_usd
        );
        let app = store.session("steady", "s-app").await.unwrap().unwrap();
        assert_eq!(app.cost_usd, 1.25, "{b}");

        let alerts = wait_until(
            &format!("{b}: spend_rate firing"),
            Duration::from_secs(60),
            Duration::from_millis(300),
            async || {
                let a = store
                    .alerts_of_streams(&["agents".into(), "steady".into()])
                    .await
                    .unwrap();
                if a.iter()
                    .any(|a| a.rule == "spend_rate" && a.state == "firing")
                {
                    Ok(a)
                } else {
                    Err(format!("{a:?}\n{}", daemon.stderr()))
                }
            },
        )
        .await;
        let spend: Vec<_> = alerts.iter().filter(|a| a.rule == "spend_rate").collect();
        assert!(
            spend
                .iter()
                .any(|a| a.stream == "agents" && a.dimension.is_empty() && a.state == "firing"),
            "{b}: {spend:?}\n{}",
            daemon.stderr()
        );
        assert!(
            !spend.iter().any(|a| a.stream == "steady"),
            "{b}: the steady stream must not fire: {spend:?}"
        );
        let agents = spend
            .iter()
            .find(|a| a.stream == "agents" && a.dimension.is_empty())
            .unwrap();
        assert!(
            agents.summary.contains("per hour"),
            "{b}: {}",
            agents.summary
        );

        // /metrics: per stream, per user, per session.
        let scrape = wait_until(
            &format!("{b}: spend in /metrics"),
            Duration::from_secs(20),
            Duration::from_millis(500),
            async || {
                let s = scrape(daemon.url()).await;
                // The gauges are refreshed every few seconds, possibly
                // between two of the batches above: wait for a refresh
                // after the last one (its session), not just any spend.
                let app = value(
                    &s,
                    "canaryd_session_spend_usd",
                    &[("stream", "steady"), ("session", "s-app")],
                );
                if value(&s, "canaryd_spend_usd_24h", &[("stream", "agents")]) > 0.0 && app > 0.0 {
                    Ok(s)
                } else {
                    Err("no spend of the last batch yet".to_string())
                }
            },
        )
        .await;
        assert!(
            value(&scrape, "canaryd_spend_usd_24h", &[("stream", "agents")]) > 0.9,
            "{b}"
        );
        assert!(
            value(
                &scrape,
                "canaryd_user_spend_usd_24h",
                &[("stream", "agents"), ("user", "user-0")]
            ) > 0.0,
            "{b}"
        );
        assert!(
            (value(
                &scrape,
                "canaryd_session_spend_usd",
                &[("stream", "steady"), ("session", "s-app")]
            ) - 1.25)
                .abs()
                < 1e-9,
            "{b}"
        );
        assert_eq!(
            value(&scrape, "canaryd_sessions_active", &[("stream", "agents")]),
            1.0,
            "{b}"
        );

        // canaryd status prints the same spend.
        let (code, out, err) = run_cli(
            &["status"],
            dir.path(),
            &[
                ("CANARYD_DATABASE_URL", &db.url),
                ("CANARYD_CONFIG", "canaryd.yaml"),
            ],
        );
        assert_eq!(code, 0, "{b}: {err}");
        assert!(out.contains("spend (last 24 h)"), "{b}: {out}");
        assert!(out.contains("user user-0"), "{b}: {out}");
        assert!(out.contains("steady / s-app"), "{b}: {out}");

        // The stream page shows the users' spend over time: user-0, who
        // made every call of the spike, is the top spender and has a line.
        let page = client
            .get(format!("{}/streams/agents", daemon.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{b}");
        let html = page.text().await.unwrap();
        let table = html
            .split("<h2>Spend by user</h2>")
            .nth(1)
            .unwrap_or_else(|| panic!("{b}: no spend-by-user table: {html}"));
        let row = |u: &str| {
            table
                .find(&format!(r#"<td class="name">{u}</td>"#))
                .unwrap_or_else(|| panic!("{b}: no row for {u}: {table}"))
        };
        assert!(
            row("user-0") < row("user-1") && row("user-0") < row("user-2"),
            "{b}: user-0 spent the most: {table}"
        );
        let chart = html
            .split("Spend by user")
            .nth(1)
            .expect("the chart's title");
        assert!(
            chart.contains("<svg") && chart.contains("user-0"),
            "{b}: a line for user-0: {chart}"
        );
        store.close().await;
    }
}
