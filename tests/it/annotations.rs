//! Change annotations through the real binary: the API (with and without a
//! token, refusing bad input with a clear JSON error), `canaryd annotate`,
//! and an alert that cites the annotations near the start of its change in
//! every channel — and not the ones far from it or of another stream.

use crate::support::alerts::truncation_finding as finding;
use crate::support::alerts::{HttpReceiver, SmtpServer};
use crate::support::{self, Spawned, TestDb, run_cli, write_tree};
use canaryd::alert::notifier::deliver_due;
use canaryd::alert::process;
use canaryd::signals::Status;
use canaryd::store::Store;

const API: &str = "annot-api-t0ken";
const CONFIG: &str = r#"
listen: 127.0.0.1:0
judges: ./no-judges
detectors: { every_secs: 0 }
api:
  tokens: [{ env: ANNOT_TEST_API }]
judging: { enabled: false }
"#;

/// 2025-11-13T02:13:20Z
const T0: i64 = 1_763_000_000_000;
const MIN: i64 = 60_000;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339()
}

#[tokio::test]
async fn api_round_trip_needs_a_token_and_refuses_bad_input_clearly() {
    let db = TestDb::sqlite().await;
    let dir = write_tree(&[("canaryd.yaml", CONFIG)]);
    let daemon = Spawned::start(
        &["serve", "--config", "canaryd.yaml"],
        dir.path(),
        &[("CANARYD_DATABASE_URL", &db.url), ("ANNOT_TEST_API", API)],
    );
    let base = format!("{}/api/v1/annotations", daemon.base_url);
    let http = reqwest::Client::new();
    let good = serde_json::json!({
        "stream": "support-bot", "kind": "deploy", "text": "deploy v2.3 (abc123)",
        "at": rfc3339(T0),
    });

    // Without a token, or with a wrong one: refused, nothing stored.
    let r = http.post(&base).json(&good).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(&base).send().await.unwrap();
    assert_eq!(r.status(), 401, "reading annotations needs a token too");
    let r = http
        .post(&base)
        .bearer_auth("wrong")
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // With the token: stored at the given time, listed back.
    let r = http
        .post(&base)
        .bearer_auth(API)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    assert_eq!(created["ts_ms"], T0);
    let r = http
        .post(&base)
        .bearer_auth(API)
        .json(&serde_json::json!({"stream": "*", "kind": "index", "text": "index refresh"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "at defaults to now");
    let r = http
        .post(&base)
        .bearer_auth(API)
        .json(&serde_json::json!({"stream": "other", "kind": "prompt", "text": "v14"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let list: serde_json::Value = http
        .get(format!("{base}?stream=support-bot"))
        .bearer_auth(API)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = list["annotations"].as_array().unwrap();
    let texts: Vec<&str> = rows.iter().map(|a| a["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        ["deploy v2.3 (abc123)", "index refresh"],
        "the stream's own and the all-streams one, oldest first: {list}"
    );
    assert_eq!(rows[0]["kind"], "deploy");
    assert_eq!(rows[0]["source"], "api");
    assert_eq!(rows[0]["stream"], "support-bot");
    assert_eq!(rows[0]["ts_ms"], T0);
    let all: serde_json::Value = http
        .get(&base)
        .bearer_auth(API)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["annotations"].as_array().unwrap().len(), 3, "{all}");

    // Bad input: a JSON error that names the field; nothing stored.
    let refused = |body: serde_json::Value| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(&base)
                .bearer_auth(API)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.expect("errors are JSON");
            (status, v["error"].as_str().unwrap_or_default().to_string())
        }
    };
    let (s, e) = refused(serde_json::json!({"stream": "s", "kind": "release", "text": "x"})).await;
    assert_eq!(s, 422);
    assert!(
        e.contains("kind must be one of deploy, prompt, index, tool, model")
            && e.contains("release"),
        "{e}"
    );
    let (s, e) =
        refused(serde_json::json!({"stream": "s", "kind": "deploy", "text": "a".repeat(1025)}))
            .await;
    assert_eq!(s, 422);
    assert!(
        e.contains("1025 bytes") && e.contains("at most 1024"),
        "{e}"
    );
    let (s, e) = refused(serde_json::json!({"stream": "s", "kind": "deploy"})).await;
    assert_eq!(s, 422);
    assert!(e.contains("text"), "names the missing field: {e}");
    let (s, e) = refused(
        serde_json::json!({"stream": "s", "kind": "deploy", "text": "x", "at": "yesterday"}),
    )
    .await;
    assert_eq!(s, 422);
    assert!(e.contains("RFC 3339"), "{e}");
    let r = http
        .post(&base)
        .bearer_auth(API)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.expect("a body that is not JSON gets JSON");
    assert!(v["error"].as_str().unwrap().contains("expected"), "{v}");

    let all: serde_json::Value = http
        .get(&base)
        .bearer_auth(API)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["annotations"].as_array().unwrap().len(), 3, "{all}");
}

#[tokio::test]
async fn annotate_stores_and_an_alert_near_it_cites_it_in_every_channel() {
    for db in TestDb::all().await {
        eprintln!("running against {}", db.backend);
        let cli_dir = write_tree(&[("canaryd.yaml", "listen: 127.0.0.1:0\n")]);
        let env = [("CANARYD_DATABASE_URL", db.url.as_str())];
        let annotate = |stream: &str, kind: &str, text: &str, at: i64| {
            run_cli(
                &[
                    "annotate",
                    "--stream",
                    stream,
                    "--kind",
                    kind,
                    "--text",
                    text,
                    "--at",
                    &rfc3339(at),
                ],
                cli_dir.path(),
                &env,
            )
        };
        let (code, out, err) = annotate("support-bot", "deploy", "deploy v2.3 <b>", T0 - 12 * MIN);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("annotation 1 added at "), "{out}");
        assert_eq!(annotate("*", "index", "reindex kb", T0 - 30 * MIN).0, 0);
        assert_eq!(
            annotate("support-bot", "prompt", "long ago", T0 - 180 * MIN).0,
            0
        );
        assert_eq!(annotate("other-bot", "tool", "not ours", T0 - 5 * MIN).0, 0);

        // Refused with a clear message, nothing stored.
        let (code, _, err) = annotate("support-bot", "deploy", &"a".repeat(1025), T0);
        assert_eq!(code, 2);
        assert!(err.contains("--text is 1025 bytes; at most 1024"), "{err}");
        let (code, _, err) = annotate("support-bot", "release", "x", T0);
        assert_ne!(code, 0);
        assert!(err.contains("release") && err.contains("deploy"), "{err}");

        let store = Store::connect(&db.url).await.unwrap();
        let stored = store.annotations(None, 0, i64::MAX, 100).await.unwrap();
        assert_eq!(stored.len(), 4, "{stored:?}");
        assert_eq!(
            (
                stored[2].source.as_str(),
                stored[2].kind.as_str(),
                stored[2].ts_ms
            ),
            ("cli", "deploy", T0 - 12 * MIN)
        );

        // The alert goes pending at T0 and fires after group_wait (30 s).
        let smtp = SmtpServer::start();
        let http = HttpReceiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let text = support::alerts::config(dir.path(), &smtp, &http, "");
        let cfg = support::alerts::load(dir.path(), &text);
        process(&store, &[finding(Status::Firing, T0)], T0, &cfg)
            .await
            .unwrap();
        let t = T0 + 31_000;
        process(&store, &[], t, &cfg).await.unwrap();
        let d = deliver_due(&store, &cfg, t).await.unwrap();
        assert_eq!((d.sent, d.failed), (3, 0));

        let hook: serde_json::Value =
            serde_json::from_str(&http.delivered("/hook")[0].body).unwrap();
        let cited = hook["annotations"].as_array().expect("annotations cited");
        let texts: Vec<&str> = cited.iter().map(|a| a["text"].as_str().unwrap()).collect();
        assert_eq!(
            texts,
            ["deploy v2.3 <b>", "reindex kb"],
            "near ones only, latest first; not 3 h before, not another stream's: {hook}"
        );
        assert_eq!(cited[0]["relative"], "12 min before the start");
        assert_eq!(cited[0]["kind"], "deploy");
        assert_eq!(cited[1]["stream"], "*");

        let slack = &http.delivered("/slack/T000/B000/XXXXSECRET")[0].body;
        assert!(slack.contains("Recorded changes near the start"), "{slack}");
        assert!(
            slack.contains("deploy \\\"deploy v2.3 &lt;b&gt;\\\" at ")
                && slack.contains("(12 min before the start)"),
            "escaped for Slack: {slack}"
        );
        assert!(
            !slack.contains("long ago") && !slack.contains("not ours"),
            "{slack}"
        );

        // Both parts are quoted-printable: undo soft breaks and `=3D`.
        let mail = smtp.mails()[0].raw.replace("=\r\n", "").replace("=3D", "=");
        assert!(mail.contains("RECORDED CHANGES near the start:"), "{mail}");
        assert!(
            mail.contains("deploy \"deploy v2.3 <b>\" at "),
            "text part: {mail}"
        );
        assert!(
            mail.contains("Recorded changes near the start")
                && mail.contains("deploy &quot;deploy v2.3 &lt;b&gt;&quot; at "),
            "html part, escaped: {mail}"
        );
        store.close().await;
    }
}

/// The stream page lists the stream's annotations (and the all-streams
/// ones, not another stream's) and draws them on its charts, escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_page_lists_and_draws_annotations() {
    use crate::support::web_data::{self, STREAM};
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("canaryd.db");
    let db_url = format!("sqlite://{}", db_path.display());
    let store = Store::connect(&db_url).await.unwrap();
    store.migrate().await.unwrap();
    let now = web_data::now_ms();
    web_data::seed(&store, now).await;
    store.close().await;
    let cfg = write_tree(&[("canaryd.yaml", &web_data::config(&db_path))]);
    let env = [("CANARYD_DATABASE_URL", db_url.as_str())];
    for (stream, kind, text) in [
        (STREAM, "deploy", "v2.3 <script>alert(1)</script>"),
        ("*", "index", "kb reindex"),
        ("other-bot", "tool", "not on this page"),
    ] {
        let (code, _, err) = run_cli(
            &[
                "annotate", "--stream", stream, "--kind", kind, "--text", text, "--at", "2h",
            ],
            cfg.path(),
            &env,
        );
        assert_eq!(code, 0, "{err}");
    }
    let app = support::TestDaemon::start(cfg.path(), &[], &[]);
    let url = format!(
        "{}/streams/{}",
        app.base_url,
        canaryd::web::fmt::enc(STREAM)
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("<h2>Recorded changes</h2>"), "{body}");
    assert!(
        body.contains("v2.3 &lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
        "listed, escaped: {body}"
    );
    assert!(
        body.contains("kb reindex") && body.contains("(all streams)"),
        "{body}"
    );
    assert!(!body.contains("not on this page"), "{body}");
    assert!(!body.contains("<script>alert(1)"), "{body}");
    assert!(
        body.matches(r#"class="marker annotation""#).count() >= 2 * 3,
        "two annotations on each line chart: {body}"
    );
    assert!(
        body.contains("<title>deploy: v2.3 &lt;script&gt;alert(1)&lt;/script&gt;</title>"),
        "marker text escaped: {body}"
    );
}

/// A model change seen in ingested traffic becomes an annotation by itself
/// (source `auto`, kind `model`), listed by the API; the first sighting of
/// a model is no change and records nothing.
#[tokio::test]
async fn a_model_change_in_traffic_becomes_an_annotation() {
    for db in TestDb::all().await {
        let b = db.backend;
        let dir = write_tree(&[(
            "canaryd.yaml",
            "listen: 127.0.0.1:0\njudges: ./no-judges\ndetectors: { every_secs: 0 }\njudging: { enabled: false }\n",
        )]);
        let daemon = support::TestDaemon::on_db(dir.path(), &db.url);
        let http = reqwest::Client::new();
        let ingest = |id: &str, model: &str, ts: &str| {
            let body = format!(
                r#"[{{"id": "{id}", "stream": "support", "output": "ok", "request_model": "gpt-4o", "response_model": "{model}", "timestamp": "{ts}"}}]"#
            );
            http.post(format!("{}/v1/responses", daemon.base_url))
                .body(body)
                .send()
        };
        let list = || async {
            let v: serde_json::Value = http
                .get(format!(
                    "{}/api/v1/annotations?stream=support",
                    daemon.base_url
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["annotations"].as_array().unwrap().clone()
        };
        let r = ingest("m1", "gpt-4o-2024-08-06", "2026-11-20T10:00:00Z")
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{b}");
        assert!(
            list().await.is_empty(),
            "{b}: a first sighting is no change"
        );
        let r = ingest("m2", "gpt-4o-2024-11-20", "2026-11-20T11:00:00Z")
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{b}");
        let rows = list().await;
        assert_eq!(rows.len(), 1, "{b}: {rows:?}");
        assert_eq!(rows[0]["source"], "auto");
        assert_eq!(rows[0]["kind"], "model");
        assert_eq!(rows[0]["stream"], "support");
        assert_eq!(
            rows[0]["text"],
            "gpt-4o: gpt-4o-2024-08-06 → gpt-4o-2024-11-20 (seen in the answers)"
        );
        assert_eq!(
            rows[0]["ts_ms"], 1_795_172_400_000_i64,
            "{b}: the answer's time"
        );
    }
}

/// The daemon's retention sweep applies `retention.annotation_days`: an
/// annotation of a change older than that is gone after the first sweep
/// (run at start), a younger one stays.
#[tokio::test]
async fn the_daemon_drops_annotations_older_than_annotation_days() {
    const DAY: i64 = 86_400_000;
    for db in TestDb::all().await {
        let b = db.backend;
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        for (text, at) in [
            ("ten days ago", now - 10 * DAY),
            ("three days ago", now - 3 * DAY),
        ] {
            store
                .add_annotation(&canaryd::store::Annotation {
                    id: 0,
                    stream: "support-bot".into(),
                    kind: "deploy".into(),
                    text: text.into(),
                    ts_ms: at,
                    source: "api".into(),
                    created_ms: at,
                })
                .await
                .unwrap();
        }
        let dir = write_tree(&[(
            "canaryd.yaml",
            "listen: 127.0.0.1:0\njudges: ./no-judges\ndetectors: { every_secs: 0 }\n\
             judging: { enabled: false }\nretention: { annotation_days: 7 }\n",
        )]);
        let daemon = support::TestDaemon::on_db(dir.path(), &db.url);
        let left = crate::support::wait_until(
            &format!("{b}: the old annotation swept"),
            std::time::Duration::from_secs(30),
            std::time::Duration::from_millis(200),
            async || {
                let texts: Vec<String> = store
                    .annotations(None, 0, i64::MAX, 10)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|a| a.text)
                    .collect();
                if texts.len() == 1 {
                    Ok(texts)
                } else {
                    Err(format!("{texts:?}"))
                }
            },
        )
        .await;
        assert_eq!(left, ["three days ago"], "{b}");
        drop(daemon);
        store.close().await;
    }
}
