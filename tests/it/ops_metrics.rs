//! `/metrics` of the real binary, read with a Prometheus text-format parser:
//! the counters and gauges an operator alerts on move when the daemon works
//! (canary runs and failures, provider errors by kind, ingest counts and
//! latency, judge results, queue depth and spend, detector values, alerts
//! firing, notification failures, reloads).

use std::time::Duration;

use crate::support::canary::Sim;
use crate::support::metrics::{scrape, value};
use crate::support::{TestDaemon, TestDb, wait_until, write_tree};

/// `flaky-model` always answers 503, so every call to it is a provider error.
const SCENARIO: &str = r#"
default:
  answers:
    - match: "capital"
      answer: "Paris is the capital of France."
models:
  flaky-model:
    faults: { http_503: 1.0 }
"#;

fn config(sim_url: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
log: {{ format: json, level: info }}
providers:
  sim: {{ base_url: "{sim_url}/v1", max_retries: 1, backoff_ms: 10, timeout_secs: 2 }}
models:
  pinned: {{ provider: sim, model: gpt-4o-2024-08-06 }}
  flaky:  {{ provider: sim, model: flaky-model }}
  judge:  {{ provider: sim, model: judge-mini, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0 }}
judging: {{ sample_rate: 1.0, floor_per_hour: 0, canary_interval_secs: 0 }}
detectors: {{ every_secs: 1 }}
alerts:
  group_wait: 0s
  retry: {{ attempts: 1 }}
  channels:
    nowhere: {{ webhook: {{ url: "http://127.0.0.1:9/hook" }} }}
"#
    )
}

const SUITE: &str = "suite: m\nversion: 1\nschedule: \"* * * * * *\"\ntargets: [pinned, flaky]\ncases:\n  - id: capital\n    prompt: What is the capital of France?\n    expect: [{ contains: Paris }]\n";

/// (what, metric, labels it must carry, least increase expected).
type Check = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    f64,
);

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_while_the_daemon_works() {
    let sim = Sim::start(SCENARIO);
    let db = TestDb::sqlite().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let judge = std::fs::read_to_string(root.join("judges/completion.yaml")).unwrap();
    let dir = write_tree(&[
        ("canaryd.yaml", &config(sim.url())),
        ("canaries/m.yaml", SUITE),
        ("judges/completion.yaml", &judge),
    ]);
    let daemon = TestDaemon::on_db(dir.path(), &db.url);
    let before = scrape(&daemon.base_url).await;
    assert_eq!(
        value(
            &before,
            "canaryd_ingest_records_total",
            &[("outcome", "accepted")]
        ),
        0.0
    );
    assert_eq!(
        value(&before, "canaryd_reloads_total", &[("outcome", "rejected")]),
        0.0
    );

    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(format!("{}/v1/responses", daemon.base_url))
            .body(body)
            .send()
    };
    let rec = |i: usize| {
        serde_json::json!({"id": format!("r{i}"), "stream": "bot", "input": "Where is my order?",
            "output": format!("Order {i} shipped on Monday."), "finish_reason": "stop"})
    };
    let batch: Vec<_> = (0..5).map(rec).collect();
    assert_eq!(
        post(serde_json::to_string(&batch).unwrap())
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        post(rec(0).to_string()).await.unwrap().status(),
        202,
        "a duplicate"
    );
    assert_eq!(
        post("{\"stream\": \"bot\"}".into()).await.unwrap().status(),
        400
    );
    // The model behind `gpt-4o` changes: a model-change alert, whose
    // notification cannot be delivered (nothing listens on port 9).
    for (i, model) in [(10, "gpt-4o-2024-08-06"), (11, "gpt-4o-2024-11-20")] {
        let mut r = rec(i);
        r["request_model"] = "gpt-4o".into();
        r["response_model"] = model.into();
        assert_eq!(post(r.to_string()).await.unwrap().status(), 202);
    }
    // A broken config file: the reload is refused and counted.
    let cfg_path = dir.path().join("canaryd.yaml");
    let good = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, format!("{good}bogus: 1\n")).unwrap();
    daemon.signal("HUP");

    let checks: Vec<Check> = vec![
        (
            "completed canary runs",
            "canaryd_canary_runs_total",
            vec![("suite", "m"), ("status", "completed")],
            1.0,
        ),
        (
            "provider-error cases",
            "canaryd_canary_case_results_total",
            vec![("target", "flaky"), ("outcome", "provider_error")],
            1.0,
        ),
        (
            "passing cases",
            "canaryd_canary_case_results_total",
            vec![("target", "pinned"), ("outcome", "pass")],
            1.0,
        ),
        (
            "5xx provider attempts",
            "canaryd_provider_errors_total",
            vec![("kind", "server_error")],
            2.0,
        ),
        (
            "accepted records",
            "canaryd_ingest_records_total",
            vec![("outcome", "accepted")],
            7.0,
        ),
        (
            "duplicate records",
            "canaryd_ingest_records_total",
            vec![("outcome", "duplicate")],
            1.0,
        ),
        (
            "rejected requests",
            "canaryd_ingest_records_total",
            vec![("outcome", "rejected")],
            1.0,
        ),
        (
            "ingest latency observations",
            "canaryd_ingest_request_seconds_count",
            vec![],
            3.0,
        ),
        (
            "judge scores",
            "canaryd_judge_scores_total",
            vec![("judge", "completion"), ("outcome", "scored")],
            5.0,
        ),
        (
            "judge tokens today",
            "canaryd_judge_spend_tokens_today",
            vec![],
            1.0,
        ),
        (
            "judge spend today",
            "canaryd_judge_spend_usd_today",
            vec![],
            1e-9,
        ),
        (
            "rejected reloads",
            "canaryd_reloads_total",
            vec![("outcome", "rejected")],
            1.0,
        ),
        (
            "undeliverable notifications",
            "canaryd_notification_failures_total",
            vec![("channel", "nowhere")],
            1.0,
        ),
        ("alerts firing", "canaryd_alerts_firing", vec![], 1.0),
    ];
    let every = Duration::from_millis(500);
    let now = wait_until(
        "the metrics to move",
        Duration::from_secs(30),
        every,
        async || {
            let now = scrape(&daemon.base_url).await;
            let mut short: Vec<String> = checks
                .iter()
                .filter(|(_, name, labels, min)| {
                    value(&now, name, labels) - value(&before, name, labels) < *min
                })
                .map(|(what, name, labels, min)| {
                    format!(
                        "{what}: {name}{labels:?} moved {} (want ≥ {min})",
                        value(&now, name, labels) - value(&before, name, labels)
                    )
                })
                .collect();
            // Gauges: present even when nothing is waiting or firing, and the
            // canary detector's chart of suite `m` once the detectors ran.
            let has = |name: &str, labels: &[(&str, &str)]| {
                now.samples.iter().any(|x| {
                    x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
                })
            };
            for (name, labels) in [
                ("canaryd_judge_queue_depth", vec![("state", "pending")]),
                ("canaryd_alerts_firing", vec![]),
                (
                    "canaryd_detector_value",
                    vec![("rule", "canary_regression"), ("stream", "suite:m")],
                ),
            ] {
                if !has(name, &labels) {
                    short.push(format!("{name}{labels:?} missing"));
                }
            }
            if short.is_empty() {
                Ok(now)
            } else {
                Err(format!(
                    "metrics did not move within 30 s:\n{}\nlog:\n{}",
                    short.join("\n"),
                    daemon.stderr()
                ))
            }
        },
    )
    .await;
    assert!(
        now.docs.contains_key("canaryd_canary_runs_total"),
        "HELP text"
    );
}
