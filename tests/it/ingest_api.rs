//! The ingest API against the real binary (`canaryd serve` spawned, HTTP),
//! on SQLite and PostgreSQL.

use std::io::Write;

use crate::support::{TestDaemon, TestDb, write_tree};
use canaryd::store::Store;

const CONFIG: &str = r#"
listen: 127.0.0.1:0
judges: ./no-judges
ingest:
  tokens: [{ env: CANARYD_TEST_INGEST_TOKEN }]
  max_body_bytes: 20000
judging: { enabled: false }
"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Sends `req`; its status and JSON body (null when the body is not JSON).
async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn json_api_stores_dedupes_rejects_and_authenticates_on_both_backends() {
    for db in TestDb::all().await {
        let b = db.backend;
        let dir = write_tree(&[("canaryd.yaml", CONFIG)]);
        let daemon = TestDaemon::start(
            dir.path(),
            &[],
            &[
                ("CANARYD_DATABASE_URL", &db.url),
                ("CANARYD_TEST_INGEST_TOKEN", "s3cret-token"),
            ],
        );
        let url = format!("{}/v1/responses", daemon.base_url);
        let http = reqwest::Client::new();
        let authed = |body: reqwest::Body| http.post(&url).bearer_auth("s3cret-token").body(body);
        let batch = r#"[
          {"id": "a1", "stream": "support", "output": "Your order shipped.", "request_model": "gpt-4o", "response_model": "gpt-4o-2024-08-06", "timestamp": "2026-11-20T10:00:00Z"},
          {"id": "a2", "stream": "support", "output": "I'm sorry, but I can't help with that.", "context": ["passage"], "input": [{"role": "user", "content": "hi"}]},
          {"id": "a1", "stream": "support", "output": "repeat inside the batch"}
        ]"#;

        // No token, wrong token: refused, nothing stored.
        let r = http.post(&url).body(batch).send().await.unwrap();
        assert_eq!(r.status(), 401, "{b}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let (status, _) = send(http.post(&url).bearer_auth("s3cret-tokeN").body(batch)).await;
        assert_eq!(status, 401, "{b}");

        let (status, v) = send(authed(batch.into())).await;
        assert_eq!(status, 202, "{b}");
        assert_eq!(
            (v["accepted"].as_u64(), v["duplicates"].as_u64()),
            (Some(2), Some(1)),
            "{b}: {v}"
        );

        // NDJSON, gzip-compressed, one id already stored.
        let nd = "{\"id\": \"a2\", \"stream\": \"support\", \"output\": \"again\"}\n{\"id\": \"a3\", \"stream\": \"support\", \"output\": \"new\"}\n";
        let (status, v) = send(
            authed(gzip(nd.as_bytes()).into())
                .header("content-type", "application/x-ndjson")
                .header("content-encoding", "gzip"),
        )
        .await;
        assert_eq!(status, 202, "{b}");
        assert_eq!(
            (v["accepted"].as_u64(), v["duplicates"].as_u64()),
            (Some(1), Some(1)),
            "{b}: {v}"
        );

        // A bad record rejects the whole batch with its index and field.
        let bad = r#"[{"id": "b1", "stream": "support", "output": "fine"},
                      {"id": "b2", "stream": "support", "output": "fine", "latency_ms": "slow"}]"#;
        let (status, v) = send(authed(bad.into())).await;
        assert_eq!(status, 400, "{b}");
        assert_eq!(
            (v["index"].as_u64(), v["field"].as_str()),
            (Some(1), Some("latency_ms")),
            "{b}: {v}"
        );
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("record 1: latency_ms:"),
            "{v}"
        );

        // Over the body limit (after decompression too).
        let big = format!(
            "{{\"stream\": \"s\", \"output\": \"{}\"}}",
            "x".repeat(30_000)
        );
        let (status, _) = send(authed(big.clone().into())).await;
        assert_eq!(status, 413, "{b}");
        let (status, _) =
            send(authed(gzip(big.as_bytes()).into()).header("content-encoding", "gzip")).await;
        assert_eq!(
            status, 413,
            "{b}: a small gzip body that inflates past the limit"
        );

        let store = Store::connect(&db.url).await.unwrap();
        assert_eq!(
            store.count_responses("support", 0, i64::MAX).await.unwrap(),
            3,
            "{b}"
        );
        let refusals: (i64,) = canaryd::on_db!(store.db(), pool => sqlx::query_as(
            "SELECT CAST(SUM(refusals) AS BIGINT) FROM rollup_hourly WHERE stream = 'support'").fetch_one(pool).await.unwrap());
        assert_eq!(refusals.0, 1, "{b}");
        let ev: (i64,) = canaryd::on_db!(store.db(), pool => sqlx::query_as(
            "SELECT COUNT(*) FROM model_identity WHERE scope = 'stream:support'").fetch_one(pool).await.unwrap());
        assert_eq!(ev.0, 1, "{b}: identity recorded");
        assert!(
            !daemon.stderr().contains("s3cret-token"),
            "the token never reaches the logs"
        );
        store.close().await;
        drop(daemon);
    }
}

/// Concurrent requests share transactions (group commit); each must still
/// get its own counts, every record be stored once, and the roll-ups add up
/// exactly. Requests overlap in ids, so some records race for the same id.
#[tokio::test]
async fn concurrent_requests_each_get_their_own_counts_on_both_backends() {
    for db in TestDb::all().await {
        let b = db.backend;
        let dir = write_tree(&[(
            "canaryd.yaml",
            "listen: 127.0.0.1:0\njudges: ./no-judges\njudging: { enabled: false }\n",
        )]);
        let daemon = TestDaemon::on_db(dir.path(), &db.url);
        let url = format!("{}/v1/responses", daemon.base_url);
        let http = reqwest::Client::new();
        // 40 requests of 50 records; request k holds ids k*25 .. k*25+50, so
        // each id after the first 25 is sent twice.
        let requests: Vec<_> = (0..40u64)
            .map(|k| {
                let body: Vec<_> = (k * 25..k * 25 + 50)
                    .map(|i| {
                        serde_json::json!({"id": format!("c{i}"), "stream": "load", "output": "ok",
                        "output_tokens": i % 100, "timestamp": "2026-11-20T10:00:00Z"})
                    })
                    .collect();
                let (http, url) = (http.clone(), url.clone());
                tokio::spawn(async move {
                    let r = http.post(&url).json(&body).send().await.unwrap();
                    assert_eq!(r.status(), 202);
                    let v: serde_json::Value = r.json().await.unwrap();
                    (
                        v["accepted"].as_u64().unwrap(),
                        v["duplicates"].as_u64().unwrap(),
                    )
                })
            })
            .collect();
        let mut accepted = 0;
        for r in requests {
            let (a, d) = r.await.unwrap();
            assert_eq!(a + d, 50, "{b}: each answer counts its own records");
            accepted += a;
        }
        let distinct = 39 * 25 + 50;
        assert_eq!(accepted, distinct, "{b}: every id accepted exactly once");
        let store = Store::connect(&db.url).await.unwrap();
        assert_eq!(
            store.count_responses("load", 0, i64::MAX).await.unwrap(),
            distinct as i64,
            "{b}"
        );
        let n: (i64,) = canaryd::on_db!(store.db(), pool => sqlx::query_as(
            "SELECT CAST(SUM(n) AS BIGINT) FROM rollup_hourly WHERE stream = 'load'").fetch_one(pool).await.unwrap());
        assert_eq!(
            n.0, distinct as i64,
            "{b}: roll-ups count stored records only"
        );
        store.close().await;
        drop(daemon);
    }
}
