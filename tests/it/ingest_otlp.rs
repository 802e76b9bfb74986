//! OTLP traces from the official OpenTelemetry Python SDK exporter
//! (`opentelemetry-exporter-otlp-proto-http`, protobuf + gzip) and an
//! OTLP/JSON export, into the spawned daemon on both backends.
//!
//! The SDK is installed into a venv under the target directory when it is
//! missing. Without network that is impossible: the test then fails when
//! `CI=true` and is skipped loudly otherwise.

use std::process::Command;

use crate::support::{self, TestDaemon, TestDb, write_tree};
use canaryd::on_db;
use canaryd::store::Store;

/// stream, output, request_model, response_model, output_tokens, refusal, finish_reason
type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    bool,
    Option<String>,
);

const CONFIG: &str =
    "listen: 127.0.0.1:0\njudges: ./none\ningest:\n  tokens: [{ env: OTLP_TEST_TOKEN }]\n";

#[tokio::test]
async fn official_python_exporter_and_otlp_json_land_as_records() {
    let Some(py) = support::or_skip(
        "the OpenTelemetry Python SDK",
        support::otel::python_with_sdk(),
    ) else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/otel_export.py");
    for db in TestDb::all().await {
        let b = db.backend;
        let dir = write_tree(&[("canaryd.yaml", CONFIG)]);
        let daemon = TestDaemon::start(
            dir.path(),
            &[],
            &[
                ("CANARYD_DATABASE_URL", &db.url),
                ("OTLP_TEST_TOKEN", "otel-token"),
            ],
        );
        let endpoint = format!("{}/v1/traces", daemon.base_url);
        let out = Command::new(&py)
            .arg(script)
            .arg(&endpoint)
            .arg("otel-token")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{b}: exporter failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            daemon.stderr()
        );
        // A wrong token is refused.
        let out = Command::new(&py)
            .arg(script)
            .arg(&endpoint)
            .arg("wrong")
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{b}: unauthenticated export must fail"
        );

        // OTLP/JSON, answered in JSON.
        let json = r#"{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-bot"}}]},
          "scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                           {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "3"}},
                           {"key": "gen_ai.completion", "value": {"stringValue": "Hello there"}}]}]}]}]}"#;
        let r = reqwest::Client::new()
            .post(&endpoint)
            .bearer_auth("otel-token")
            .header("content-type", "application/json")
            .body(json)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );

        let store = Store::connect(&db.url).await.unwrap();
        let rows: Vec<Row> = on_db!(store.db(), pool => sqlx::query_as(
            "SELECT stream, output, request_model, response_model, output_tokens, refusal, finish_reason FROM responses ORDER BY stream, output")
            .fetch_all(pool).await.unwrap());
        assert_eq!(
            rows.len(),
            3,
            "{b}: two GenAI spans from the SDK (the HTTP span ignored) and one JSON span: {rows:?}"
        );
        assert_eq!(rows[0].0, "json-bot");
        assert_eq!(rows[0].4, 3);
        let refusal = rows
            .iter()
            .find(|r| r.1.starts_with("I'm sorry"))
            .expect("old-style span");
        assert!(refusal.5 && refusal.0 == "otel-bot", "{b}: {refusal:?}");
        let chat = rows
            .iter()
            .find(|r| r.1 == "It shipped on Monday.")
            .expect("semconv span");
        assert_eq!(
            (chat.3.as_deref(), chat.4, chat.6.as_deref()),
            (Some("gpt-4o-2024-08-06"), 7, Some("stop")),
            "{b}"
        );
        store.close().await;
        drop(daemon);
    }
}
