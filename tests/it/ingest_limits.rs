//! What one ingest request may cost, against the real binary: records per
//! request, bytes in flight, one JSON shape for every refusal, one meaning
//! for a body that starts with an array, and OTLP held to the JSON rules
//! (labels, counts, ids) with rejected spans in `partial_success`.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::{Spawned, TestDb, write_tree};
use canaryd::store::Store;

const CONFIG: &str = r#"
listen: 127.0.0.1:0
judges: ./no-judges
detectors: { every_secs: 0 }
ingest:
  max_body_bytes: 20000
  max_records: 5
  max_in_flight_bytes: 20000
  busy_wait_ms: 300
judging: { enabled: false }
"#;

fn start(db: &TestDb) -> (tempfile::TempDir, Spawned) {
    let dir = write_tree(&[("canaryd.yaml", CONFIG)]);
    let daemon = Spawned::start(
        &["serve", "--config", "canaryd.yaml"],
        dir.path(),
        &[("CANARYD_DATABASE_URL", &db.url)],
    );
    (dir, daemon)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn send(
    req: reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: not a JSON body: {text:?}"));
    (status, headers, v)
}

fn records(n: usize, prefix: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"id":"{prefix}{i}","stream":"lim","output":"answer {i}"}}"#))
        .collect()
}

#[tokio::test]
async fn records_bytes_and_encodings_are_limited_with_json_refusals() {
    let db = TestDb::sqlite().await;
    let (_dir, daemon) = start(&db);
    let url = format!("{}/v1/responses", daemon.base_url);
    let http = reqwest::Client::new();

    // More records than ingest.max_records: 413 naming the limit, as an
    // array and as NDJSON; nothing stored.
    let six = records(6, "a");
    for body in [format!("[{}]", six.join(",")), six.join("\n")] {
        let (status, _, v) = send(http.post(&url).body(body)).await;
        assert_eq!(status, 413, "{v}");
        assert_eq!(v["limit"], 5, "{v}");
        assert!(
            v["error"].as_str().unwrap().contains("ingest.max_records"),
            "{v}"
        );
    }
    let (status, _, v) = send(http.post(&url).body(records(5, "b").join("\n"))).await;
    assert_eq!((status, v["accepted"].as_i64()), (202, Some(5)), "{v}");

    // The body limit, plain and inflated from gzip: JSON naming the limit.
    let big = format!(r#"{{"stream":"lim","output":"{}"}}"#, "x".repeat(30_000));
    let (status, _, v) = send(http.post(&url).body(big.clone())).await;
    assert_eq!(status, 413);
    assert_eq!(v["limit"], 20000, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("max_body_bytes"),
        "{v}"
    );
    let (status, _, v) = send(
        http.post(&url)
            .header("content-encoding", "gzip")
            .body(gzip(big.as_bytes())),
    )
    .await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["limit"], 20000, "{v}");

    // Broken gzip: a JSON 400; other encodings: a JSON 415 naming the accepted ones.
    let (status, _, v) = send(
        http.post(&url)
            .header("content-encoding", "gzip")
            .body("not gzip at all"),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].is_string(), "{v}");
    for enc in ["br", "deflate"] {
        let (status, _, v) = send(http.post(&url).header("content-encoding", enc).body("x")).await;
        assert_eq!(status, 415, "{enc}: {v}");
        assert_eq!(
            v["accepted_encodings"],
            serde_json::json!(["gzip", "identity"]),
            "{v}"
        );
    }

    // A body that starts with an array is one array: more after it is an
    // error, as is an array on an NDJSON line.
    let one = &records(1, "c")[0];
    for body in [
        format!("[{one}]\n{one}"),
        format!("[{one}]\n[{one}]"),
        format!("{one}\n[{one}]"),
    ] {
        let (status, _, v) = send(http.post(&url).body(body.clone())).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("one object per line"),
            "{v}"
        );
    }

    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.count_responses("lim", 0, i64::MAX).await.unwrap(), 5);
    store.close().await;
}

#[tokio::test]
async fn a_full_budget_answers_503_with_retry_after_and_frees_up() {
    let db = TestDb::sqlite().await;
    let (_dir, daemon) = start(&db);
    let addr = daemon.base_url.trim_start_matches("http://").to_string();
    // A client that declares a large body and sends it slowly holds the
    // whole budget (20,000 bytes) while its body is read.
    let body = format!("[{}]", records(5, "slow").join(","));
    let padded = format!("{body:<20000}");
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        slow,
        "POST /v1/responses HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        padded.len()
    )
    .unwrap();
    slow.write_all(&padded.as_bytes()[..100]).unwrap();
    slow.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let http = reqwest::Client::new();
    let url = format!("{}/v1/responses", daemon.base_url);
    let small = records(1, "fast").join("");
    let (status, headers, v) = send(http.post(&url).body(small.clone())).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(v["limit"], 20000, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("max_in_flight_bytes"),
        "{v}"
    );

    // The slow request completes, and then there is room again.
    slow.write_all(&padded.as_bytes()[100..]).unwrap();
    let mut answer = [0u8; 12];
    slow.read_exact(&mut answer).unwrap();
    assert_eq!(
        &answer,
        b"HTTP/1.1 202",
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (status, _, v) = send(http.post(&url).body(small)).await;
    assert_eq!(status, 202, "{v}");
}

fn span(trace: &str, span: &str, attrs: &str) -> String {
    format!(
        r#"{{"traceId": "{trace}", "spanId": "{span}", "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000", "attributes": [{attrs}]}}"#
    )
}

fn attr(k: &str, v: &str) -> String {
    format!(r#"{{"key": "{k}", "value": {v}}}"#)
}

#[tokio::test]
async fn otlp_spans_get_the_json_rules_and_never_merge_silently() {
    let db = TestDb::sqlite().await;
    let (_dir, daemon) = start(&db);
    let url = format!("{}/v1/traces", daemon.base_url);
    let completion = |s: &str| attr("gen_ai.completion", &format!(r#"{{"stringValue": "{s}"}}"#));
    let mut spans = Vec::new();
    // Three spans without ids (empty, and all zero): three records.
    for (i, (t, s)) in [
        ("", ""),
        ("", ""),
        ("00000000000000000000000000000000", "0000000000000000"),
    ]
    .iter()
    .enumerate()
    {
        spans.push(span(t, s, &completion(&format!("no id {i}"))));
    }
    // Rejected like the JSON API would: a 1 KB model name, a negative and an
    // absurd token count.
    let long = "m".repeat(1000);
    spans.push(span(
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        &[
            completion("long model"),
            attr(
                "gen_ai.response.model",
                &format!(r#"{{"stringValue": "{long}"}}"#),
            ),
        ]
        .join(","),
    ));
    spans.push(span(
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203332",
        &[
            completion("negative"),
            attr("gen_ai.usage.output_tokens", r#"{"intValue": "-5"}"#),
        ]
        .join(","),
    ));
    spans.push(span(
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203333",
        &[
            completion("absurd"),
            attr(
                "gen_ai.usage.input_tokens",
                r#"{"intValue": "9000000000000000000"}"#,
            ),
        ]
        .join(","),
    ));
    let export = format!(
        r#"{{"resourceSpans": [{{"resource": {{"attributes": [{}]}}, "scopeSpans": [{{"spans": [{}]}}]}}]}}"#,
        attr("service.name", r#"{"stringValue": "otel-lim"}"#),
        spans.join(",")
    );
    let http = reqwest::Client::new();
    let post = || {
        http.post(&url)
            .header("content-type", "application/json")
            .body(export.clone())
    };
    let (status, _, v) = send(post()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["partialSuccess"]["rejectedSpans"], 3, "{v}");
    let msg = v["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        msg.contains("spans[3]") && msg.contains("response_model"),
        "{msg}"
    );

    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(
        store
            .count_responses("otel-lim", 0, i64::MAX)
            .await
            .unwrap(),
        3,
        "three spans without ids are three records"
    );
    // The same export again: the derived ids deduplicate.
    let (status, _, _) = send(post()).await;
    assert_eq!(status, 200);
    assert_eq!(
        store
            .count_responses("otel-lim", 0, i64::MAX)
            .await
            .unwrap(),
        3
    );
    // A 10 KB service.name is refused, not stored as a stream.
    let huge = span(
        "0af7651916cd43dd8448eb211c80319c",
        "c7ad6b7169203331",
        &[
            completion("x"),
            attr("gen_ai.system", r#"{"stringValue": "openai"}"#),
        ]
        .join(","),
    );
    let export = format!(
        r#"{{"resourceSpans": [{{"resource": {{"attributes": [{}]}}, "scopeSpans": [{{"spans": [{huge}]}}]}}]}}"#,
        attr(
            "service.name",
            &format!(r#"{{"stringValue": "{}"}}"#, "s".repeat(10_000))
        )
    );
    let (status, _, v) = send(
        http.post(&url)
            .header("content-type", "application/json")
            .body(export),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["partialSuccess"]["rejectedSpans"], 1, "{v}");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("stream"),
        "{v}"
    );
    store.close().await;
}
