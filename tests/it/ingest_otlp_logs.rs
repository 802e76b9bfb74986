//! GenAI events sent as OTLP log records (`POST /v1/logs`), JSON and
//! protobuf + gzip, into the spawned daemon on both backends: joined to
//! their span's record whichever arrives first, kept when the span has not
//! arrived, refused without a token, malformed ones counted in
//! `partialSuccess`.

use std::io::Write as _;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::support::{TestDaemon, TestDb, write_tree};
use canaryd::on_db;
use canaryd::store::Store;

const CONFIG: &str =
    "listen: 127.0.0.1:0\njudges: ./none\ningest:\n  tokens: [{ env: OTLP_TEST_TOKEN }]\n";
const TOKEN: &str = "logs-token";

/// The daemon with `config` on `db`, taking the ingest token [`TOKEN`].
fn start(config: &str, db: &TestDb) -> (tempfile::TempDir, TestDaemon) {
    let dir = write_tree(&[("canaryd.yaml", config)]);
    let daemon = TestDaemon::start(
        dir.path(),
        &[],
        &[
            ("CANARYD_DATABASE_URL", &db.url),
            ("OTLP_TEST_TOKEN", TOKEN),
        ],
    );
    (dir, daemon)
}

/// A GenAI span without content (capture off on the span, as when the
/// content goes to events), timed now: a span from years ago would be
/// removed by the daemon's first retention sweep while the test runs.
fn span(trace: &str, span: &str) -> String {
    span_with(
        trace,
        span,
        r#", {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "4"}}"#,
    )
}

/// The same span with `extra` attributes after the request model.
fn span_with(trace: &str, span: &str, extra: &str) -> String {
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let end = start + 1_000_000_000;
    format!(
        r#"{{"resourceSpans": [{{"resource": {{"attributes": [{{"key": "service.name", "value": {{"stringValue": "logs-bot"}}}}]}},
          "scopeSpans": [{{"spans": [{{"traceId": "{trace}", "spanId": "{span}", "name": "chat gpt-4o",
            "startTimeUnixNano": "{start}", "endTimeUnixNano": "{end}",
            "attributes": [{{"key": "gen_ai.operation.name", "value": {{"stringValue": "chat"}}}},
                           {{"key": "gen_ai.request.model", "value": {{"stringValue": "gpt-4o"}}}}{extra}]}}]}}]}}]}}"#
    )
}

fn logs(records: &str) -> String {
    format!(
        r#"{{"resourceLogs": [{{"resource": {{"attributes": [{{"key": "service.name", "value": {{"stringValue": "logs-bot"}}}}]}},
          "scopeLogs": [{{"logRecords": [{records}]}}]}}]}}"#
    )
}

fn evaluation(trace: &str, span: &str, name: &str, score: f64) -> String {
    format!(
        r#"{{"traceId": "{trace}", "spanId": "{span}", "eventName": "gen_ai.evaluation.result",
            "attributes": [{{"key": "gen_ai.evaluation.name", "value": {{"stringValue": "{name}"}}}},
                           {{"key": "gen_ai.evaluation.score.value", "value": {{"doubleValue": {score}}}}},
                           {{"key": "gen_ai.evaluation.explanation", "value": {{"stringValue": "on topic"}}}}]}}"#
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

async fn post_json(url: &str, token: Option<&str>, body: String) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Protobuf + gzip, as the SDK exporters send it.
async fn post_proto(url: &str, bytes: Vec<u8>) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzip(&bytes))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// (input, output) of the record with this id.
async fn record(store: &Store, ext_id: &str) -> Option<(Option<String>, String)> {
    on_db!(store.db(), pool => sqlx::query_as("SELECT input, output FROM responses WHERE ext_id = $1")
        .bind(ext_id).fetch_optional(pool).await.unwrap())
}

/// (judge, score, source) of the record's scores.
async fn scores(store: &Store, ext_id: &str) -> Vec<(String, f64, String)> {
    on_db!(store.db(), pool => sqlx::query_as(
        "SELECT s.judge, s.score, s.source FROM judge_scores s JOIN responses r ON r.id = s.response_id \
         WHERE r.ext_id = $1 ORDER BY s.judge")
        .bind(ext_id).fetch_all(pool).await.unwrap())
}

async fn pending(store: &Store) -> Vec<String> {
    let rows: Vec<(String,)> = on_db!(store.db(), pool => sqlx::query_as(
        "SELECT ext_id FROM otlp_log_events ORDER BY id").fetch_all(pool).await.unwrap());
    rows.into_iter().map(|r| r.0).collect()
}

#[tokio::test]
async fn genai_events_in_otlp_logs_join_their_spans_records() {
    const T1: &str = "0af7651916cd43dd8448eb211c80319c";
    const T2: &str = "1af7651916cd43dd8448eb211c80319c";
    const T3: &str = "2af7651916cd43dd8448eb211c80319c";
    const S: &str = "b7ad6b7169203331";
    for db in TestDb::all().await {
        let b = db.backend;
        let (_dir, daemon) = start(CONFIG, &db);
        let traces = format!("{}/v1/traces", daemon.base_url);
        let url = format!("{}/v1/logs", daemon.base_url);
        let store = Store::connect(&db.url).await.unwrap();

        // Without the ingest token: refused, nothing stored.
        let user = format!(
            r#"{{"traceId": "{T1}", "spanId": "{S}", "eventName": "gen_ai.user.message",
                "body": {{"kvlistValue": {{"values": [{{"key": "content", "value": {{"stringValue": "Where is my order?"}}}}]}}}}}}"#
        );
        let (status, _) = post_json(&url, None, logs(&user)).await;
        assert_eq!(status, 401, "{b}");
        let (status, _) = post_json(&url, Some("wrong"), logs(&user)).await;
        assert_eq!(status, 401, "{b}");
        assert!(pending(&store).await.is_empty(), "{b}");

        // Span first, then its content and evaluation as OTLP/JSON logs.
        let (status, _) = post_json(&traces, Some(TOKEN), span(T1, S)).await;
        assert_eq!(status, 200, "{b}");
        let choice = format!(
            r#"{{"traceId": "{T1}", "spanId": "{S}", "attributes": [{{"key": "event.name", "value": {{"stringValue": "gen_ai.choice"}}}}],
                "body": {{"kvlistValue": {{"values": [{{"key": "message", "value": {{"kvlistValue": {{"values": [{{"key": "content", "value": {{"stringValue": "It shipped."}}}}]}}}}}}]}}}}}}"#
        );
        let (status, answer) = post_json(
            &url,
            Some(TOKEN),
            logs(&format!(
                "{user}, {choice}, {}",
                evaluation(T1, S, "relevance", 0.75)
            )),
        )
        .await;
        assert_eq!(status, 200, "{b}: {answer}");
        assert!(answer["partialSuccess"].is_null(), "{b}: {answer}");
        let id1 = format!("otel:{T1}:{S}");
        let (input, output) = record(&store, &id1).await.expect("span record");
        assert_eq!(output, "It shipped.", "{b}");
        assert!(input.unwrap().contains("Where is my order?"), "{b}");
        assert_eq!(
            scores(&store, &id1).await,
            [("relevance".into(), 0.75, "precomputed".into())],
            "{b}"
        );
        // A retried export neither duplicates the score nor changes content.
        let again = logs(&evaluation(T1, S, "relevance", 0.75));
        assert_eq!(post_json(&url, Some(TOKEN), again).await.0, 200, "{b}");
        assert_eq!(scores(&store, &id1).await.len(), 1, "{b}");

        // Log first, as protobuf + gzip (the newer operation-details event),
        // then its span: the span's record takes the waiting events.
        let details = format!(
            r#"{{"traceId": "{T2}", "spanId": "{S}", "eventName": "gen_ai.client.inference.operation.details",
                "attributes": [
                  {{"key": "gen_ai.input.messages", "value": {{"stringValue": "[{{\"role\":\"user\",\"parts\":[{{\"type\":\"text\",\"content\":\"Cancel it\"}}]}}]"}}}},
                  {{"key": "gen_ai.output.messages", "value": {{"stringValue": "[{{\"role\":\"assistant\",\"parts\":[{{\"type\":\"text\",\"content\":\"Cancelled.\"}}]}}]"}}}}]}}"#
        );
        let req: ExportLogsServiceRequest = serde_json::from_str(&logs(&format!(
            "{details}, {}",
            evaluation(T2, S, "groundedness", 0.5)
        )))
        .unwrap();
        let (status, body) = post_proto(&url, req.encode_to_vec()).await;
        assert_eq!(status, 200, "{b}");
        let answer = ExportLogsServiceResponse::decode(body.as_slice()).unwrap();
        assert!(answer.partial_success.is_none(), "{b}: {answer:?}");
        let id2 = format!("otel:{T2}:{S}");
        assert!(record(&store, &id2).await.is_none(), "{b}");
        assert_eq!(pending(&store).await, std::slice::from_ref(&id2), "{b}");
        let spans: ExportTraceServiceRequest = serde_json::from_str(&span(T2, S)).unwrap();
        assert_eq!(
            post_proto(&traces, spans.encode_to_vec()).await.0,
            200,
            "{b}"
        );
        let (input, output) = record(&store, &id2).await.expect("span record");
        assert_eq!(output, "Cancelled.", "{b}");
        assert!(input.unwrap().contains("Cancel it"), "{b}");
        assert_eq!(
            scores(&store, &id2).await,
            [("groundedness".into(), 0.5, "precomputed".into())],
            "{b}"
        );
        assert!(
            pending(&store).await.is_empty(),
            "{b}: taken events are removed"
        );

        // A span that never arrives: its events are stored, pending, and
        // no record is made of them.
        let orphan = logs(&evaluation(T3, S, "relevance", 0.25));
        assert_eq!(post_json(&url, Some(TOKEN), orphan).await.0, 200, "{b}");
        assert_eq!(pending(&store).await, [format!("otel:{T3}:{S}")], "{b}");
        assert!(
            record(&store, &format!("otel:{T3}:{S}")).await.is_none(),
            "{b}"
        );

        // Malformed: an evaluation with a label and no score, a GenAI event
        // without a span id; counted, and the good one next to them kept.
        let label_only = format!(
            r#"{{"traceId": "{T3}", "spanId": "{S}", "eventName": "gen_ai.evaluation.result",
                "attributes": [{{"key": "gen_ai.evaluation.name", "value": {{"stringValue": "tone"}}}},
                               {{"key": "gen_ai.evaluation.score.label", "value": {{"stringValue": "polite"}}}}]}}"#
        );
        let no_span = r#"{"eventName": "gen_ai.choice", "body": {"stringValue": "lost"}}"#;
        let plain = r#"{"body": {"stringValue": "GET / 200"}}"#;
        let (status, answer) = post_json(
            &url,
            Some(TOKEN),
            logs(&format!(
                "{plain}, {label_only}, {no_span}, {}",
                evaluation(T1, S, "tone", 1.0)
            )),
        )
        .await;
        assert_eq!(status, 200, "{b}: {answer}");
        let partial = &answer["partialSuccess"];
        assert_eq!(partial["rejectedLogRecords"], 2, "{b}: {answer}");
        let message = partial["errorMessage"].as_str().unwrap();
        assert!(
            message.starts_with(
                "resourceLogs[0].scopeLogs[0].logRecords[1]: gen_ai.evaluation.score.value"
            ),
            "{b}: {message}"
        );
        assert_eq!(
            scores(&store, &id1).await.len(),
            2,
            "{b}: the valid one is stored"
        );

        // Not an OTLP logs export at all: a clear 400.
        let (status, answer) = post_json(&url, Some(TOKEN), "not json".into()).await;
        assert_eq!(status, 400, "{b}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("OTLP logs"),
            "{b}"
        );
        store.close().await;
        drop(daemon);
    }
}

/// (refusal, output_tokens) of the record with this id.
async fn signals(store: &Store, ext_id: &str) -> (bool, i64) {
    on_db!(store.db(), pool => sqlx::query_as("SELECT refusal, output_tokens FROM responses WHERE ext_id = $1")
        .bind(ext_id).fetch_one(pool).await.unwrap())
}

/// The roll-ups of a stream next to what its stored records say: hourly
/// (n, refusals, tokens_sum) and the length histogram, each both ways.
async fn rollups_match_records(store: &Store, stream: &str) -> (String, String) {
    let (rolled, counted): ((i64, i64, f64), (i64, i64, f64)) = on_db!(store.db(), pool => (
        sqlx::query_as("SELECT CAST(SUM(n) AS BIGINT), CAST(SUM(refusals) AS BIGINT), CAST(SUM(tokens_sum) AS DOUBLE PRECISION) FROM rollup_hourly WHERE stream = $1")
            .bind(stream).fetch_one(pool).await.unwrap(),
        sqlx::query_as("SELECT COUNT(*), CAST(SUM(CASE WHEN refusal THEN 1 ELSE 0 END) AS BIGINT), CAST(SUM(output_tokens) AS DOUBLE PRECISION) FROM responses WHERE stream = $1")
            .bind(stream).fetch_one(pool).await.unwrap(),
    ));
    type Bins = Vec<(i64, i64)>;
    let bins: (Bins, Bins) = on_db!(store.db(), pool => (
        sqlx::query_as("SELECT bin, CAST(SUM(n) AS BIGINT) FROM rollup_length WHERE stream = $1 GROUP BY bin HAVING SUM(n) <> 0 ORDER BY bin")
            .bind(stream).fetch_all(pool).await.unwrap(),
        sqlx::query_as("SELECT CASE WHEN output_tokens / 25 > 63 THEN 63 ELSE output_tokens / 25 END AS bin, COUNT(*) FROM responses WHERE stream = $1 GROUP BY 1 ORDER BY 1")
            .bind(stream).fetch_all(pool).await.unwrap(),
    ));
    (
        format!("hourly {rolled:?}, bins {:?}", bins.0),
        format!("hourly {counted:?}, bins {:?}", bins.1),
    )
}

/// (judge, reasoning) of the record's scores.
async fn reasons(store: &Store, ext_id: &str) -> Vec<(String, Option<String>)> {
    on_db!(store.db(), pool => sqlx::query_as(
        "SELECT s.judge, s.reasoning FROM judge_scores s JOIN responses r ON r.id = s.response_id \
         WHERE r.ext_id = $1 ORDER BY s.judge")
        .bind(ext_id).fetch_all(pool).await.unwrap())
}

/// A span sent without content or usage (content capture on events only)
/// is stored with an empty output: no refusal, no tokens. Its output
/// arriving later as a log event recomputes both and moves the record in
/// the roll-ups, so a refusal spike carried only by events is seen; an
/// evaluation's explanation becomes the score's reasoning whichever
/// arrives first.
#[tokio::test]
async fn a_late_output_recomputes_its_records_signals_and_explanations_are_kept() {
    const T1: &str = "3af7651916cd43dd8448eb211c80319c";
    const T2: &str = "4af7651916cd43dd8448eb211c80319c";
    const T3: &str = "5af7651916cd43dd8448eb211c80319c";
    const S: &str = "c7ad6b7169203331";
    let refusal = "I'm sorry, but I can't help with that request.";
    let long = "The parcel left our warehouse on Monday and is with the carrier now. ".repeat(8);
    let choice = |trace: &str, text: &str| {
        format!(
            r#"{{"traceId": "{trace}", "spanId": "{S}", "eventName": "gen_ai.choice",
                "body": {{"kvlistValue": {{"values": [{{"key": "message", "value": {{"kvlistValue": {{"values": [{{"key": "content", "value": {{"stringValue": "{text}"}}}}]}}}}}}]}}}}}}"#
        )
    };
    for db in TestDb::all().await {
        let b = db.backend;
        let (_dir, daemon) = start(CONFIG, &db);
        let traces = format!("{}/v1/traces", daemon.base_url);
        let url = format!("{}/v1/logs", daemon.base_url);
        let store = Store::connect(&db.url).await.unwrap();

        // Spans first, empty: counted as 0-token non-refusals.
        for t in [T1, T2] {
            let (status, _) = post_json(&traces, Some(TOKEN), span_with(t, S, "")).await;
            assert_eq!(status, 200, "{b}");
        }
        let (id1, id2) = (format!("otel:{T1}:{S}"), format!("otel:{T2}:{S}"));
        assert_eq!(signals(&store, &id1).await, (false, 0), "{b}");

        // Their outputs as events: a refusal and a long answer.
        let body = logs(&format!(
            "{}, {}, {}",
            choice(T1, refusal),
            choice(T2, &long),
            evaluation(T2, S, "relevance", 0.9)
        ));
        let (status, answer) = post_json(&url, Some(TOKEN), body).await;
        assert_eq!(status, 200, "{b}: {answer}");
        assert!(signals(&store, &id1).await.0, "{b}: the refusal is seen");
        let (refused, tokens) = signals(&store, &id2).await;
        assert!(
            !refused && tokens >= 100,
            "{b}: {tokens} tokens counted from the late output"
        );
        let (rolled, counted) = rollups_match_records(&store, "logs-bot").await;
        assert_eq!(
            rolled, counted,
            "{b}: the roll-ups follow the recomputed records"
        );
        assert_eq!(
            reasons(&store, &id2).await,
            [("relevance".into(), Some("on topic".into()))],
            "{b}"
        );

        // The same events again change nothing (the output is no longer empty).
        let body = logs(&format!("{}, {}", choice(T1, refusal), choice(T2, &long)));
        assert_eq!(post_json(&url, Some(TOKEN), body).await.0, 200, "{b}");
        assert_eq!(
            rollups_match_records(&store, "logs-bot").await.0,
            rolled,
            "{b}"
        );

        // A span with usage keeps its billed count; the text still decides
        // the refusal.
        let usage = r#", {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "7"}}"#;
        assert_eq!(
            post_json(&traces, Some(TOKEN), span_with(T3, S, usage))
                .await
                .0,
            200,
            "{b}"
        );
        let body = logs(&choice(T3, refusal));
        assert_eq!(post_json(&url, Some(TOKEN), body).await.0, 200, "{b}");
        assert_eq!(
            signals(&store, &format!("otel:{T3}:{S}")).await,
            (true, 7),
            "{b}"
        );
        let (rolled, counted) = rollups_match_records(&store, "logs-bot").await;
        assert_eq!(rolled, counted, "{b}");

        // Log first: the explanation waits with its score.
        const T4: &str = "6af7651916cd43dd8448eb211c80319c";
        let body = logs(&evaluation(T4, S, "groundedness", 0.4));
        assert_eq!(post_json(&url, Some(TOKEN), body).await.0, 200, "{b}");
        assert_eq!(
            post_json(&traces, Some(TOKEN), span(T4, S)).await.0,
            200,
            "{b}"
        );
        assert_eq!(
            reasons(&store, &format!("otel:{T4}:{S}")).await,
            [("groundedness".into(), Some("on topic".into()))],
            "{b}"
        );
        store.close().await;
        drop(daemon);
    }
}

/// (judge, source) of the judge scores of a record, once the worker is done.
async fn judged(store: &Store, ext_id: &str) -> Vec<(String, String)> {
    on_db!(store.db(), pool => sqlx::query_as(
        "SELECT s.judge, s.source FROM judge_scores s JOIN responses r ON r.id = s.response_id \
         WHERE r.ext_id = $1 AND s.score IS NOT NULL ORDER BY s.judge")
        .bind(ext_id).fetch_all(pool).await.unwrap())
}

/// At ingest a record with an empty output gets no judge. Its output
/// arriving later as events must not leave it unjudged: it is sampled then,
/// under the same floor and cap, and judged by the real worker through the
/// real provider client (against `canaryd sim`), once.
#[tokio::test]
async fn a_record_whose_output_arrives_late_is_judged() {
    const T: &str = "7af7651916cd43dd8448eb211c80319c";
    const S: &str = "d7ad6b7169203331";
    let sim = crate::support::canary::Sim::start("seed: 1\n");
    let config = format!(
        "listen: 127.0.0.1:0\njudges: {}/judges\ndetectors: {{ every_secs: 0 }}\n\
         ingest:\n  tokens: [{{ env: OTLP_TEST_TOKEN }}]\n\
         providers:\n  sim: {{ base_url: \"{}/v1\", max_retries: 1, backoff_ms: 10 }}\n\
         models:\n  judge: {{ provider: sim, model: judge-model }}\n\
         judging: {{ sample_rate: 1.0, canary_interval_secs: 0 }}\n",
        env!("CARGO_MANIFEST_DIR"),
        sim.proc.base_url
    );
    let user = format!(
        r#"{{"traceId": "{T}", "spanId": "{S}", "eventName": "gen_ai.user.message",
            "body": {{"kvlistValue": {{"values": [{{"key": "content", "value": {{"stringValue": "Where is my order?"}}}}]}}}}}}"#
    );
    let choice = format!(
        r#"{{"traceId": "{T}", "spanId": "{S}", "eventName": "gen_ai.choice",
            "body": {{"kvlistValue": {{"values": [{{"key": "message", "value": {{"kvlistValue": {{"values": [{{"key": "content", "value": {{"stringValue": "Your order shipped on Monday."}}}}]}}}}}}]}}}}}}"#
    );
    for db in TestDb::all().await {
        let b = db.backend;
        let (_dir, daemon) = start(&config, &db);
        let store = Store::connect(&db.url).await.unwrap();
        let traces = format!("{}/v1/traces", daemon.base_url);
        let url = format!("{}/v1/logs", daemon.base_url);
        assert_eq!(
            post_json(&traces, Some(TOKEN), span(T, S)).await.0,
            200,
            "{b}"
        );
        let id = format!("otel:{T}:{S}");
        let jobs = || async {
            let n: (i64,) = on_db!(store.db(), pool => sqlx::query_as(
                "SELECT COUNT(*) FROM judge_jobs j JOIN responses r ON r.id = j.response_id WHERE r.ext_id = $1")
                .bind(&id).fetch_one(pool).await.unwrap());
            n.0
        };
        assert_eq!(jobs().await, 0, "{b}: an empty output is not judged");

        let body = logs(&format!("{user}, {choice}"));
        assert_eq!(
            post_json(&url, Some(TOKEN), body.clone()).await.0,
            200,
            "{b}"
        );
        // completion (it has input now) and consistency; groundedness needs context.
        assert_eq!(jobs().await, 2, "{b}");
        crate::support::wait_until(
            "the late record to be judged",
            std::time::Duration::from_secs(30),
            std::time::Duration::from_millis(100),
            async || {
                let got = judged(&store, &id).await;
                if got.len() == 2 {
                    Ok(got)
                } else {
                    Err(format!("{got:?}"))
                }
            },
        )
        .await;
        assert_eq!(
            judged(&store, &id).await,
            [
                ("completion".to_string(), "judge".to_string()),
                ("consistency".to_string(), "judge".to_string())
            ],
            "{b}"
        );
        // The same events again: the output is no longer empty, no new job.
        assert_eq!(post_json(&url, Some(TOKEN), body).await.0, 200, "{b}");
        assert_eq!(jobs().await, 2, "{b}");
        store.close().await;
        drop(daemon);
    }
}

/// The same events through the official OpenTelemetry Python SDK (Logs API
/// `event_name`, `OTLPLogExporter` to `/v1/logs`, spans by
/// `OTLPSpanExporter`): events exported while their span is open wait for
/// it; events exported after a span without content complete its record,
/// whose refusal is then seen; the evaluation's explanation is its reason.
#[tokio::test]
async fn the_python_sdk_log_exporter_completes_its_spans_records() {
    let Some(py) = crate::support::otel::python_or_skip() else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/otel_logs.py");
    for db in TestDb::all().await {
        let b = db.backend;
        let (_dir, daemon) = start(CONFIG, &db);
        let out = std::process::Command::new(&py)
            .arg(script)
            .arg(&daemon.base_url)
            .arg(TOKEN)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success()
                && !String::from_utf8_lossy(&out.stderr).contains("Failed to export"),
            "{b}: exporter failed: {stdout}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            daemon.stderr()
        );
        let ids: std::collections::BTreeMap<&str, String> = stdout
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?, format!("otel:{}:{}", w.next()?, w.next()?)))
            })
            .collect();
        let store = Store::connect(&db.url).await.unwrap();
        for (order, id) in &ids {
            let (input, output) = record(&store, id)
                .await
                .unwrap_or_else(|| panic!("{b}: {order}: no record {id}"));
            assert!(
                output.contains("can't share personal information"),
                "{b}: {order}: {output}"
            );
            assert!(
                input.unwrap_or_default().contains("home address"),
                "{b}: {order}"
            );
            assert!(
                signals(&store, id).await.0,
                "{b}: {order}: the refusal is seen"
            );
            assert_eq!(
                reasons(&store, id).await,
                [("relevance".into(), Some(format!("declined {order}")))],
                "{b}: {order}"
            );
        }
        assert_eq!(ids.len(), 2, "{b}: {stdout}");
        assert!(pending(&store).await.is_empty(), "{b}: every event joined");
        let (rolled, counted) = rollups_match_records(&store, "py-logs").await;
        assert_eq!(rolled, counted, "{b}");
        store.close().await;
        drop(daemon);
    }
}
