//! The triage section of alerts (issue 18, points 1–2) through the real
//! binary: records ingested by the daemon's API (with `max_tokens` and
//! `labels`), the alert lifecycle on both backends delivering to real SMTP
//! and HTTP receivers, and the status pages of a daemon on the same
//! database. An alert caused by a new prompt version names it and localises
//! the shift to it; a truncation-driven alert shows the token-budget line;
//! the section in every channel is compared with reviewed snapshots
//! (`UPDATE_SNAPSHOTS=1 cargo test --test it triage::` rewrites them).
//! The same causes again with nothing hand-made: the daemon's own detector
//! loop fires the alerts from the ingested records (recent timestamps,
//! detectors on a short window every second), its notifier delivers them,
//! and a deploy annotation recorded near the change start is cited.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::support::alerts::{HttpReceiver, SmtpServer};
use crate::support::{self, TestDb, wait_until, write_tree};
use canaryd::alert::message::{self, Input};
use canaryd::alert::notifier::deliver_due;
use canaryd::alert::process;
use canaryd::alert::render::Renderer;
use canaryd::alert::triage;
use canaryd::signals::{Finding, Rule, Severity, Status};
use canaryd::store::{AlertRow, Store, TriageData, TriageRow};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAEMON: &str = "listen: 127.0.0.1:0\njudges: ./no-judges\ndetectors: { every_secs: 0 }\njudging: { enabled: false }\n";

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339()
}

/// The start of the test's change: a minute ago, on a whole second (the
/// records are recent, so no retention sweep of the daemon touches them).
fn t0() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    (now - MIN) / 1000 * 1000
}

/// Posts `records` to the daemon's ingest API in batches.
async fn ingest(base: &str, records: &[serde_json::Value]) {
    let http = reqwest::Client::new();
    for chunk in records.chunks(250) {
        let r = http
            .post(format!("{base}/v1/responses"))
            .json(&chunk)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(status, 202, "{}", r.text().await.unwrap());
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    id: String,
    ts: i64,
    version: &str,
    route: &str,
    refusal: bool,
    finish: &str,
    tokens: i64,
    max_tokens: i64,
) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "stream": "support-bot",
        "timestamp": rfc3339(ts),
        "prompt_version": version,
        "request_model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_a",
        "input": "Where is my order?",
        "context": ["Order 7 shipped on Monday.", "Refunds take 30 days.", "Support hours are 9-5."],
        "output": if refusal { "I'm sorry, but I can't help with that." } else { "Your order shipped on Monday." },
        "finish_reason": finish,
        "output_tokens": tokens,
        "max_tokens": max_tokens,
        "labels": { "route": route },
    })
}

fn finding(rule: Rule, at: i64, baseline: f64, value: f64) -> Finding {
    Finding {
        rule,
        stream: "support-bot".into(),
        dimension: None,
        status: Status::Firing,
        severity: Severity::Critical,
        at_ms: at,
        value,
        baseline,
        threshold: 0.02,
        p_value: Some(1e-6),
        samples: 1500,
        baseline_samples: 2000,
        summary: format!("{} {baseline} → {value}", rule.as_str()),
        resolve: true,
    }
}

/// Runs the lifecycle from pending at `t0` to a delivered notification on
/// every channel, and returns (mail text, Slack body, webhook JSON).
async fn deliver(store: &Store, f: Finding, t0: i64) -> (String, String, serde_json::Value) {
    let smtp = SmtpServer::start();
    let http = HttpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = support::alerts::config(dir.path(), &smtp, &http, "");
    let cfg = support::alerts::load(dir.path(), &text);
    process(store, &[f], t0, &cfg).await.unwrap();
    let t = t0 + 31_000;
    process(store, &[], t, &cfg).await.unwrap();
    let d = deliver_due(store, &cfg, t).await.unwrap();
    assert_eq!((d.sent, d.failed), (3, 0));
    // Both mail parts are quoted-printable: undo soft breaks and `=3D`.
    let mail = smtp.mails()[0].raw.replace("=\r\n", "").replace("=3D", "=");
    let slack = http.delivered("/slack/T000/B000/XXXXSECRET")[0]
        .body
        .clone();
    let hook = serde_json::from_str(&http.delivered("/hook")[0].body).unwrap();
    (mail, slack, hook)
}

fn lines_of(hook: &serde_json::Value) -> Vec<(String, String)> {
    hook["triage"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    (
                        l["kind"].as_str().unwrap().to_string(),
                        l["text"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Baseline (the day before the window): prompt v12, 1 % refusals. Window:
/// v12 still at 1 %, and v13 — first seen 12 minutes before the alert
/// went pending — at 8 %, 60 % of the window's traffic. Routes alternate
/// across both versions, so only the prompt version carries the shift.
fn new_prompt_records(t0: i64) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let (b0, b1) = (t0 - 26 * HOUR + MIN, t0 - 2 * HOUR - MIN);
    for i in 0..2000i64 {
        let ts = b0 + i * (b1 - b0) / 2000;
        let route = if i % 2 == 0 { "/orders" } else { "/refunds" };
        out.push(record(
            format!("b{i}"),
            ts,
            "v12",
            route,
            i % 100 == 0,
            "stop",
            80,
            1024,
        ));
    }
    for i in 0..600i64 {
        let ts = t0 - 2 * HOUR + i * (2 * HOUR - MIN) / 600;
        let route = if i % 2 == 0 { "/orders" } else { "/refunds" };
        out.push(record(
            format!("w12-{i}"),
            ts,
            "v12",
            route,
            i % 100 == 0,
            "stop",
            80,
            1024,
        ));
    }
    for i in 0..900i64 {
        let ts = t0 - 12 * MIN + i * (12 * MIN - 1000) / 900;
        let route = if i % 2 == 0 { "/orders" } else { "/refunds" };
        out.push(record(
            format!("w13-{i}"),
            ts,
            "v13",
            route,
            i % 25 < 2,
            "stop",
            80,
            1024,
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_prompt_version_is_named_and_the_shift_localised_to_it_everywhere() {
    for db in TestDb::all().await {
        let b = db.backend;
        let t0 = t0();
        let dir = write_tree(&[("canaryd.yaml", DAEMON)]);
        let daemon = support::TestDaemon::on_db(dir.path(), &db.url);
        ingest(&daemon.base_url, &new_prompt_records(t0)).await;
        // Stopped before the lifecycle runs: its own loops would otherwise
        // process the test's alert with their config (no channels).
        drop(daemon);
        let store = Store::connect(&db.url).await.unwrap();
        let stored = store
            .count_responses("support-bot", 0, i64::MAX)
            .await
            .unwrap();
        assert_eq!(stored, 3500, "{b}");

        let (mail, slack, hook) =
            deliver(&store, finding(Rule::RefusalRateShift, t0, 0.01, 0.052), t0).await;
        let lines = lines_of(&hook);
        let kinds: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(
            kinds,
            ["prompt_version", "localised"],
            "{b}: only the lines that say something: {hook}"
        );
        assert_eq!(
            lines[0].1,
            "prompt version: v13 first seen 12 min before the start; 60 % of window traffic; \
             the shift is confined to v13 (refusal rate); mix during v13 60 %, v12 40 % vs before v12 100 %",
            "{b}"
        );
        assert_eq!(
            lines[1].1,
            "refusal rate rose only where prompt_version = v13: 1.0 % → 8.0 % (n=900) \
             (new: against the stream's baseline); elsewhere 1.0 % → 1.0 % (n=600), unchanged",
            "{b}"
        );
        assert_eq!(hook["triage"][1]["rule"], "refusal_rate_shift");
        assert_eq!(hook["version"], 1, "fields added, the payload version kept");
        assert!(mail.contains("TRIAGE"), "{b}: text part: {mail}");
        assert!(
            mail.contains("prompt version: v13 first seen 12 min before the start"),
            "{b}: {mail}"
        );
        assert!(mail.contains("<h3 style"), "{b}: html part");
        assert!(mail.contains(">Triage</h3>"), "{b}: html part: {mail}");
        assert!(slack.contains(":mag: *Triage*"), "{b}: {slack}");
        assert!(
            slack.contains("refusal rate rose only where prompt_version = v13"),
            "{b}: {slack}"
        );

        // The status pages of a daemon on the same database: the alert's
        // triage on the alerts page, the split as small multiples on the
        // stream page with the v13 panel marked.
        let daemon = support::TestDaemon::on_db(dir.path(), &db.url);
        let page = reqwest::get(format!("{}/alerts", daemon.base_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let start = page
            .find(r#"<div class="triage">"#)
            .expect("triage on the alerts page");
        let end = start + page[start..].find("</div>").unwrap() + "</div>".len();
        snapshot(
            "triage_page.alerts.html",
            &format!("{}\n", &page[start..end]),
        );
        let stream = reqwest::get(format!("{}/streams/support-bot", daemon.base_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            stream.contains("<h2>Where the shift is</h2>"),
            "{b}: {stream}"
        );
        assert!(
            stream.contains("<h3>refusal rate by prompt_version</h3>"),
            "{b}: {stream}"
        );
        assert_eq!(
            stream.matches(r#"class="panel localised""#).count(),
            1,
            "{b}: one panel carries the shift: {stream}"
        );
        assert!(
            stream.contains("The shift is confined to prompt_version = v13"),
            "{b}"
        );
        assert!(
            stream.contains("<h3>refusal rate by route</h3>"),
            "{b}: the application's label is a dimension too"
        );
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncation_driven_alert_shows_the_token_budget_line() {
    for db in TestDb::all().await {
        let b = db.backend;
        let t0 = t0();
        let dir = write_tree(&[("canaryd.yaml", DAEMON)]);
        let daemon = support::TestDaemon::on_db(dir.path(), &db.url);
        // The budget was cut from 1024 to 256 tokens with the change: 30 %
        // of the window's answers stop at it.
        let mut records = Vec::new();
        for i in 0..1000i64 {
            let ts = t0 - 26 * HOUR + MIN + i * 20 * HOUR / 1000;
            records.push(record(
                format!("b{i}"),
                ts,
                "v12",
                "/orders",
                false,
                "stop",
                100,
                1024,
            ));
        }
        for i in 0..500i64 {
            let ts = t0 - HOUR + i * (HOUR - MIN) / 500;
            let cut = i % 10 < 3;
            records.push(record(
                format!("w{i}"),
                ts,
                "v12",
                "/orders",
                false,
                if cut { "length" } else { "stop" },
                if cut { 256 } else { 100 },
                256,
            ));
        }
        ingest(&daemon.base_url, &records).await;
        drop(daemon);
        let store = Store::connect(&db.url).await.unwrap();
        let (mail, slack, hook) =
            deliver(&store, finding(Rule::TruncationRate, t0, 0.0, 0.3), t0).await;
        let lines = lines_of(&hook);
        let budget = lines
            .iter()
            .find(|l| l.0 == "token_budget")
            .unwrap_or_else(|| panic!("{b}: no token-budget line: {hook}"));
        assert_eq!(
            budget.1,
            "token budget: finish_reason length in 30 % of the window vs 0 % of the baseline; \
             outputs within 5.0 % of max_tokens: 30 % vs 0 %; max_tokens mostly 256 (baseline 1024)",
            "{b}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.0 != "prompt_version" && l.0 != "retrieval"),
            "{b}: nothing else changed: {lines:?}"
        );
        assert!(
            mail.contains("token budget: finish_reason length in 30 %"),
            "{b}"
        );
        assert!(
            slack.contains("token budget: finish_reason length in 30 %"),
            "{b}"
        );
        store.close().await;
    }
}

/// The daemon's own detectors on a short clock: a two-hour window over a
/// day of baseline, evaluated every second (the mechanism the judge-drift
/// test uses; the records carry their own recent timestamps, so the
/// system clock needs no injection), one webhook channel and a base URL
/// for links.
fn detecting_config(hooks: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
base_url: https://canaryd.example.com
judges: ./no-judges
judging: {{ enabled: false }}
detectors:
  every_secs: 1
  window_hours: 2
  baseline_days: 1
  min_baseline_hours: 3
  weekly: false
  # A short test: a false-alarm budget of a day instead of a year.
  sequential: {{ lookback_hours: 2, arl_hours: 24 }}
alerts:
  group_wait: 1s
  repeat_interval: 1h
  retry: {{ attempts: 2, backoff: 100ms, outbox_delay: 1s, max_delay: 5s }}
  channels:
    team: {{ webhook: {{ url: "{hooks}/team", timeout: 5s }} }}
"#
    )
}

/// One POST of `records` (a batch the writer commits in one transaction,
/// so a detector pass never sees half of the change).
async fn ingest_at_once(base: &str, records: &[serde_json::Value]) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/responses"))
        .json(&records)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 202, "{}", r.text().await.unwrap());
}

/// The first webhook payload for `stream` in which `rule` fires.
async fn fired(hooks: &HttpReceiver, stream: &str, rule: &str) -> serde_json::Value {
    wait_until(
        &format!("{rule} on {stream} notified"),
        std::time::Duration::from_secs(120),
        std::time::Duration::from_millis(300),
        async || {
            let posts = hooks.delivered("/team");
            posts
                .iter()
                .filter_map(|p| serde_json::from_str::<serde_json::Value>(&p.body).ok())
                .find(|v| {
                    v["stream"] == stream
                        && v["firing"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x["rule"] == rule))
                })
                .ok_or_else(|| {
                    format!(
                        "{} posts: {:?}",
                        posts.len(),
                        posts
                            .iter()
                            .map(|p| &p.body[..p.body.len().min(200)])
                            .collect::<Vec<_>>()
                    )
                })
        },
    )
    .await
}

/// The refusal scenario, timed from now: a day of prompt v12 at 1 %
/// refusals, then in the last two hours v12 still at 1 % and v13 — new,
/// from 40 minutes ago — at 10 %. Returns (baseline, window) records.
fn refusal_scenario(now: i64) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let route = |i: i64| if i % 2 == 0 { "/orders" } else { "/refunds" };
    let (b0, b1) = (now - 26 * HOUR, now - 2 * HOUR - MIN);
    let baseline = (0..2400i64)
        .map(|i| {
            let ts = b0 + i * (b1 - b0) / 2400;
            record(
                format!("b{i}"),
                ts,
                "v12",
                route(i),
                i % 100 == 0,
                "stop",
                80,
                1024,
            )
        })
        .collect();
    let mut window: Vec<serde_json::Value> = (0..300i64)
        .map(|i| {
            let ts = now - 2 * HOUR + i * (2 * HOUR - MIN) / 300;
            record(
                format!("w12-{i}"),
                ts,
                "v12",
                route(i),
                i % 100 == 0,
                "stop",
                80,
                1024,
            )
        })
        .collect();
    window.extend((0..600i64).map(|i| {
        let ts = now - 40 * MIN + i * (40 * MIN - 1000) / 600;
        record(
            format!("w13-{i}"),
            ts,
            "v13",
            route(i),
            i % 10 == 0,
            "stop",
            80,
            1024,
        )
    }));
    (baseline, window)
}

fn line_of<'a>(hook: &'a serde_json::Value, kind: &str) -> Option<&'a str> {
    hook["triage"]
        .as_array()?
        .iter()
        .find(|l| l["kind"] == kind)?["text"]
        .as_str()
}

/// Issue 18's "done when", through the daemon's own detectors rather than
/// hand-made findings: records ingested, `refusal_rate_shift` and
/// `truncation_rate` fired by the detector loop, the lifecycle and the
/// notifier of the same process delivering the webhook; the triage of the
/// first names the new prompt version and localises the shift to it, the
/// triage of the second shows the token-budget line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_own_detectors_fire_alerts_whose_triage_names_the_cause() {
    for db in TestDb::all().await {
        let b = db.backend;
        let hooks = HttpReceiver::start().await;
        let dir = write_tree(&[("canaryd.yaml", &detecting_config(&hooks.url))]);
        let daemon = support::TestDaemon::on_db(dir.path(), &db.url);
        let now = chrono::Utc::now().timestamp_millis();
        let (baseline, window) = refusal_scenario(now);
        // Truncation on another stream: the budget cut from 1024 to 256
        // tokens in the last hour, 30 % of the answers stopping at it.
        let on = |mut r: serde_json::Value| {
            r["stream"] = "summaries".into();
            r
        };
        let mut cut_baseline: Vec<serde_json::Value> = (0..1000i64)
            .map(|i| {
                let ts = now - 26 * HOUR + i * 23 * HOUR / 1000;
                on(record(
                    format!("sb{i}"),
                    ts,
                    "v12",
                    "/orders",
                    false,
                    "stop",
                    100,
                    1024,
                ))
            })
            .collect();
        let cut_window: Vec<serde_json::Value> = (0..500i64)
            .map(|i| {
                let ts = now - HOUR + i * (HOUR - MIN) / 500;
                let cut = i % 10 < 3;
                on(record(
                    format!("sw{i}"),
                    ts,
                    "v12",
                    "/orders",
                    false,
                    if cut { "length" } else { "stop" },
                    if cut { 256 } else { 100 },
                    256,
                ))
            })
            .collect();
        cut_baseline.extend(baseline);
        ingest(&daemon.base_url, &cut_baseline).await;
        ingest_at_once(&daemon.base_url, &window).await;
        ingest_at_once(&daemon.base_url, &cut_window).await;

        let hook = fired(&hooks, "support-bot", "refusal_rate_shift").await;
        let prompt = line_of(&hook, "prompt_version")
            .unwrap_or_else(|| panic!("{b}: no prompt-version line: {hook}"));
        assert!(
            prompt.starts_with("prompt version: v13 first seen "),
            "{b}: {prompt}"
        );
        assert!(
            prompt.contains("the shift is confined to v13 (refusal rate)"),
            "{b}: {prompt}"
        );
        let localised =
            line_of(&hook, "localised").unwrap_or_else(|| panic!("{b}: not localised: {hook}"));
        assert!(
            localised.starts_with("refusal rate rose only where prompt_version = v13: "),
            "{b}: {localised}"
        );
        assert!(localised.ends_with(", unchanged"), "{b}: {localised}");
        assert!(
            line_of(&hook, "token_budget").is_none(),
            "{b}: the budget did not change on this stream: {hook}"
        );

        let hook = fired(&hooks, "summaries", "truncation_rate").await;
        let budget = line_of(&hook, "token_budget")
            .unwrap_or_else(|| panic!("{b}: no token-budget line: {hook}"));
        assert!(
            budget.starts_with(
                "token budget: finish_reason length in 30 % of the window vs 0 % of the baseline; \
                 outputs within 5.0 % of max_tokens: 30 % vs 0 %"
            ),
            "{b}: {budget}"
        );
        assert!(
            budget.ends_with("max_tokens mostly 256 (baseline 1024)"),
            "{b}: {budget}"
        );
        assert!(
            line_of(&hook, "prompt_version").is_none(),
            "{b}: one prompt version throughout: {hook}"
        );
        drop(daemon);
    }
}

/// "An annotation near the change start is cited", through the daemon's own
/// detectors: a deploy recorded through the API 45 minutes before the
/// refusals start is cited by the alert the detector loop raises; one six
/// hours earlier and one of another stream are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotation_near_the_change_start_is_cited_by_the_detected_alert() {
    for db in TestDb::all().await {
        let b = db.backend;
        let hooks = HttpReceiver::start().await;
        let dir = write_tree(&[("canaryd.yaml", &detecting_config(&hooks.url))]);
        let daemon = support::TestDaemon::on_db(dir.path(), &db.url);
        let now = chrono::Utc::now().timestamp_millis();
        let (baseline, window) = refusal_scenario(now);
        ingest(&daemon.base_url, &baseline).await;
        // Recorded before the change's records arrive, as a deploy pipeline
        // would: the notification is built as soon as the alert fires.
        let http = reqwest::Client::new();
        for (stream, text, at) in [
            ("support-bot", "deploy prompt v13 <b>&", now - 45 * MIN),
            ("support-bot", "deploy v2.2 (far before)", now - 6 * HOUR),
            ("billing", "deploy billing v9", now - 45 * MIN),
        ] {
            let r = http
                .post(format!("{}/api/v1/annotations", daemon.base_url))
                .json(&serde_json::json!({
                    "stream": stream, "kind": "deploy", "text": text, "at": rfc3339(at),
                }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{b}: {}", r.text().await.unwrap());
        }
        ingest_at_once(&daemon.base_url, &window).await;

        let hook = fired(&hooks, "support-bot", "refusal_rate_shift").await;
        let cited: Vec<(String, String)> = hook["annotations"]
            .as_array()
            .unwrap_or_else(|| panic!("{b}: no annotations cited: {hook}"))
            .iter()
            .map(|a| {
                (
                    a["source"].as_str().unwrap().to_string(),
                    a["text"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            cited.contains(&("api".into(), "deploy prompt v13 <b>&".into())),
            "{b}: the deploy near the start is cited: {cited:?}"
        );
        assert!(
            cited
                .iter()
                .all(|(_, t)| t != "deploy v2.2 (far before)" && t != "deploy billing v9"),
            "{b}: far or other-stream annotations cited: {cited:?}"
        );
        let line = hook["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["source"] == "api")
            .unwrap()["relative"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(line.ends_with("before the start"), "{b}: {line}");
        drop(daemon);
    }
}

/// Compares `actual` with `tests/snapshots/NAME`, or rewrites it under `UPDATE_SNAPSHOTS=1`.
fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from the snapshot; review, then UPDATE_SNAPSHOTS=1 to accept.\n--- actual ---\n{actual}"
    );
}

const NOW: i64 = 1_763_942_400_000; // 2025-11-24 00:00 UTC

/// A fixed triage: a new prompt version (its name hostile, to check each
/// channel's escaping), carrying a refusal shift, and thinner context.
fn fixed_message() -> message::Message {
    let start = NOW - 60_000;
    let row = |ts: i64, version: &str, refusal: bool, passages: i64| TriageRow {
        ts_ms: ts,
        response_model: Some("gpt-4o-2024-08-06".into()),
        prompt_version: Some(version.into()),
        finish_reason: Some("stop".into()),
        output_tokens: 80,
        refusal,
        context_chars: Some(300 * passages),
        passages: Some(passages),
        ..Default::default()
    };
    let (b0, w0, to) = triage::periods(start, NOW);
    let baseline = (0..2000)
        .map(|i| row(b0 + i, "v12", i % 100 == 0, 4))
        .collect();
    let mut window: Vec<TriageRow> = (0..600)
        .map(|i| row(w0 + i, "v12", i % 100 == 0, 4))
        .collect();
    window.extend((0..900).map(|i| row(start - i, "v13 <b>&", i % 25 < 2, 1)));
    let data = TriageData {
        stream: "support-bot".into(),
        baseline_from_ms: b0,
        window_from_ms: w0,
        to_ms: to,
        window,
        baseline,
        first_seen: vec![("v13 <b>&".into(), start - 12 * MIN)],
        ..Default::default()
    };
    let firing = vec![AlertRow {
        id: 2,
        rule: "refusal_rate_shift".into(),
        stream: "support-bot".into(),
        dimension: String::new(),
        state: "firing".into(),
        severity: "critical".into(),
        value: 0.052,
        baseline: 0.01,
        threshold: 0.02,
        p_value: Some(1e-6),
        samples: 1500,
        baseline_samples: 2000,
        summary: "refusal rate 1.0% → 5.2% (p<0.0001, n=1500)".into(),
        pending_ms: Some(start),
        firing_ms: Some(NOW - 30_000),
        resolved_ms: None,
        last_eval_ms: NOW,
        last_notified_ms: None,
        resolve_pending: false,
        rev: 1,
    }];
    let mut msg = message::build(Input {
        stream: "support-bot",
        firing: &firing,
        resolved: &[],
        examples: &BTreeMap::new(),
        model_change: false,
        model_events: &[],
        annotations: &[],
        base_url: Some("https://canaryd.example.com"),
        now_ms: NOW,
        new_ids: &[2],
        max_chars: 400,
    });
    msg.triage = triage::lines(&data, &firing);
    msg
}

#[test]
fn the_triage_section_renders_as_reviewed_in_every_channel() {
    let msg = fixed_message();
    let kinds: Vec<&str> = msg.triage.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["prompt_version", "retrieval", "localised"],
        "{:?}",
        msg.triage
    );
    let r = Renderer::with_dir(None).unwrap();
    let email = r.email(&msg).unwrap();
    snapshot("alert_triage.email.txt", &email.text);
    snapshot("alert_triage.email.html", &email.html);
    assert!(
        email
            .text
            .contains("v13 <b>& first seen 12 min before the start"),
        "{}",
        email.text
    );
    assert!(
        email.html.contains("v13 &lt;b&gt;&amp; first seen"),
        "{}",
        email.html
    );
    assert!(!email.html.contains("<b>&"), "escaped in HTML");
    let slack: serde_json::Value = serde_json::from_str(&r.body("slack", &msg).unwrap()).unwrap();
    snapshot(
        "alert_triage.slack.json",
        &format!("{}\n", serde_json::to_string_pretty(&slack).unwrap()),
    );
    let raw = slack.to_string();
    assert!(raw.contains("v13 &lt;b&gt;&amp; first seen"), "{raw}");
    assert!(!raw.contains("<b>"), "escaped for Slack: {raw}");
    let hook: serde_json::Value = serde_json::from_str(&r.body("webhook", &msg).unwrap()).unwrap();
    snapshot(
        "alert_triage.webhook.json",
        &format!("{}\n", serde_json::to_string_pretty(&hook).unwrap()),
    );
    assert!(
        hook["triage"][0]["text"]
            .as_str()
            .unwrap()
            .contains("v13 <b>& first seen"),
        "raw in JSON: {hook}"
    );
    assert_eq!(hook["triage"][2]["rule"], "refusal_rate_shift");
}

/// A session alert (`tool_call_loop` on a session whose id is hostile) and
/// the triage line naming that session, in every channel: each links the
/// session's page under the base URL, escaped for its channel.
fn session_message(base: Option<&str>) -> message::Message {
    let start = NOW - 60_000;
    let session = "s 1&<x>|y";
    let call = r#"[{"name": "ask_clarification", "arguments": {"q": "which order?"}}]"#;
    let (b0, w0, to) = triage::periods(start, NOW);
    let window: Vec<TriageRow> = (0..12)
        .map(|i| TriageRow {
            ts_ms: start - i * 1000,
            session_id: Some(session.into()),
            tool_calls: Some(call.into()),
            output_tokens: 20,
            ..Default::default()
        })
        .collect();
    let data = TriageData {
        stream: "agents".into(),
        baseline_from_ms: b0,
        window_from_ms: w0,
        to_ms: to,
        window,
        fired_sessions: vec![canaryd::store::FiredSession {
            session_id: session.into(),
            fired: "tool_call_loop".into(),
            calls: 12,
        }],
        ..Default::default()
    };
    let firing = vec![AlertRow {
        id: 3,
        rule: "tool_call_loop".into(),
        stream: "agents".into(),
        dimension: session.into(),
        state: "firing".into(),
        severity: "critical".into(),
        value: 12.0,
        baseline: 0.0,
        threshold: 5.0,
        p_value: None,
        samples: 12,
        baseline_samples: 0,
        summary: "ask_clarification called 12 times with the same arguments".into(),
        pending_ms: Some(start),
        firing_ms: Some(NOW - 30_000),
        resolved_ms: None,
        last_eval_ms: NOW,
        last_notified_ms: None,
        resolve_pending: false,
        rev: 1,
    }];
    let mut msg = message::build(Input {
        stream: "agents",
        firing: &firing,
        resolved: &[],
        examples: &BTreeMap::new(),
        model_change: false,
        model_events: &[],
        annotations: &[],
        base_url: base,
        now_ms: NOW,
        new_ids: &[3],
        max_chars: 400,
    });
    msg.triage = message::link_triage(triage::lines(&data, &firing), base);
    msg
}

#[test]
fn a_session_alert_links_the_session_page_in_every_channel() {
    let msg = session_message(Some("https://canaryd.example.com/"));
    let url = "https://canaryd.example.com/sessions?stream=agents&id=s%201%26%3Cx%3E%7Cy";
    assert_eq!(msg.firing[0].session_link.as_deref(), Some(url));
    let tools = msg
        .triage
        .iter()
        .find(|l| l.kind == "tool_calls")
        .expect("tool line");
    assert_eq!(tools.links.len(), 1, "the session once: {tools:?}");
    assert_eq!(tools.links[0].href, url);

    let r = Renderer::with_dir(None).unwrap();
    let email = r.email(&msg).unwrap();
    snapshot("alert_session.email.txt", &email.text);
    snapshot("alert_session.email.html", &email.html);
    assert!(
        email.text.contains(&format!("Session page: {url}")),
        "{}",
        email.text
    );
    assert!(
        email.text.contains(&format!("session s 1&<x>|y: {url}")),
        "{}",
        email.text
    );
    // HTML: the attribute escaped by the template (`&` as `&amp;`), the
    // session id as text.
    let href = r#"href="https:&#x2F;&#x2F;canaryd.example.com&#x2F;sessions?stream=agents&amp;id=s%201%26%3Cx%3E%7Cy""#;
    assert_eq!(email.html.matches(href).count(), 2, "{}", email.html);
    assert!(
        email.html.contains(">session s 1&amp;&lt;x&gt;|y</a>"),
        "{}",
        email.html
    );
    assert!(!email.html.contains("<x>"), "escaped in HTML");

    let slack: serde_json::Value = serde_json::from_str(&r.body("slack", &msg).unwrap()).unwrap();
    snapshot(
        "alert_session.slack.json",
        &format!("{}\n", serde_json::to_string_pretty(&slack).unwrap()),
    );
    let raw = slack.to_string();
    let slack_url = "https://canaryd.example.com/sessions?stream=agents&amp;id=s%201%26%3Cx%3E%7Cy";
    assert!(
        raw.contains(&format!("<{slack_url}|Open the session>")),
        "{raw}"
    );
    assert!(
        raw.contains(&format!("<{slack_url}|session s 1&amp;&lt;x&gt;|y>")),
        "{raw}"
    );
    assert!(!raw.contains("<x>"), "escaped for Slack: {raw}");

    let hook: serde_json::Value = serde_json::from_str(&r.body("webhook", &msg).unwrap()).unwrap();
    snapshot(
        "alert_session.webhook.json",
        &format!("{}\n", serde_json::to_string_pretty(&hook).unwrap()),
    );
    assert_eq!(hook["firing"][0]["session_link"], url);
    let links = hook["triage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "tool_calls")
        .unwrap()["links"]
        .clone();
    assert_eq!(links[0]["href"], url, "raw in JSON: {hook}");
    assert_eq!(links[0]["text"], "session s 1&<x>|y");
}

#[test]
fn without_a_base_url_no_link_is_made() {
    let msg = session_message(None);
    assert_eq!(msg.firing[0].session_link, None);
    assert!(
        msg.triage.iter().any(|l| l.kind == "tool_calls"),
        "the line is still there: {:?}",
        msg.triage
    );
    assert!(msg.triage.iter().all(|l| l.links.is_empty()));
    let r = Renderer::with_dir(None).unwrap();
    let email = r.email(&msg).unwrap();
    assert!(!email.text.contains("/sessions?"), "{}", email.text);
    assert!(!email.html.contains("/sessions?") && !email.html.contains("&#x2F;sessions?"));
    let slack = r.body("slack", &msg).unwrap();
    assert!(!slack.contains("/sessions?"), "{slack}");
}
