//! The logprob probe end to end (issue 17): the real binary asks the
//! simulator for next-token logprobs, stores them, and the daemon's
//! detector finds a quiet swap (same name, fingerprint and passing answers,
//! shifted logprobs) that no verdict check sees; a provider without
//! logprobs is reported as unsupported; `check` prints what suites cost.

use std::time::Duration;

use crate::support::canary::{Sim, outcomes, project, run_json, store};
use crate::support::{TestDaemon, TestDb, run_cli, wait_until};

const HOUR_MS: i64 = 3_600_000;

/// `pinned` and `live` answer the same, scripted so that no phase re-words
/// them; the `swap` phase shifts `live`'s logprobs (sd 0.3 nats) and changes
/// nothing else. Per-request jitter as batched serving gives.
const SCENARIO: &str = r#"
seed: 11
default:
  logprob_noise: 0.02
  answers:
    - { match: "capital of France", answer: "Paris is the capital of France." }
    - { match: "refund after 30 days", answer: "No, refunds are accepted within 30 days of delivery." }
    - { match: "hello", answer: "Hello! How can I help you today?" }
    - { match: "ask for a refund", answer: "You have 30 days from delivery to ask for a refund." }
phases:
  - name: swap
    models:
      gpt-4o: { logprob_shift: 0.3 }
"#;

const SUITE: &str = r#"
suite: quiet
version: 1
targets: [pinned, live]
defaults: { temperature: 0, max_tokens: 200 }
cases:
  - id: refund-window
    prompt: "How many days do I have to ask for a refund?"
    context: ["Refunds are accepted within 30 days of delivery."]
    expect:
      - contains: "30 days"
logprob_probe:
  top_logprobs: 5
  prompts:
    - { id: capital, prompt: "The capital of France is" }
    - { id: refund, prompt: "Can I get a refund after 30 days?" }
    - { id: greet, prompt: "Say hello to a customer." }
"#;

fn probes(report: &serde_json::Value) -> Vec<(String, String)> {
    report["logprob_probes"]
        .as_array()
        .unwrap_or_else(|| panic!("no logprob_probes in {report:#}"))
        .iter()
        .map(|p| {
            (
                p["target"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_swap_is_found_by_the_logprob_probe_and_not_by_verdicts() {
    let sim = Sim::start(SCENARIO);
    let dir = project(sim.url(), &[("quiet.yaml", SUITE)]);
    let scratch = TestDb::sqlite().await;
    let mut runs = 0;
    // 52 runs like before the swap, then 4 after it, each with its own
    // per-request noise.
    for (phase, n) in [("baseline", 52), ("swap", 4)] {
        sim.set_phase(phase).await;
        for _ in 0..n {
            let (code, report, err) = run_json(dir.path(), "quiet", &[], &scratch.url);
            runs += 1;
            assert_eq!(code, 0, "{err}");
            // Every verdict passes, before and after the swap, and the
            // provider reports the same identity: only the probe can see it.
            for (case, target, outcome) in outcomes(&report) {
                assert_eq!(outcome, "pass", "{case} @ {target} in phase {phase}");
            }
            assert!(
                report["model_events"].as_array().unwrap().is_empty(),
                "{report:#}"
            );
            let p = probes(&report);
            assert_eq!(p.len(), 6, "3 probes × 2 targets: {p:?}");
            assert!(p.iter().all(|(_, s)| s == "ok"), "{p:?}");
        }
    }
    // The real probes, as the binary stored them.
    let now = chrono::Utc::now().timestamp_millis();
    let real = store(&scratch.url)
        .await
        .logprob_history(now + 60_000, 100)
        .await
        .unwrap();
    assert_eq!(real.len(), runs * 6);
    let run_ids: std::collections::BTreeSet<i64> = real.iter().map(|r| r.run_id).collect();
    let ids: Vec<i64> = run_ids.into_iter().collect();
    assert_eq!(ids.len(), 56);
    let (before, after) = ids.split_at(52);
    for t in ["pinned", "live"] {
        let of = |run: i64| {
            let mut v: Vec<_> = real
                .iter()
                .filter(|r| r.run_id == run && r.target == t)
                .map(|r| (r.probe_id.clone(), r.prompt_hash.clone()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            of(before[0]),
            of(after[0]),
            "the swap sent the same requests"
        );
    }

    // The same runs as two days of hourly history: the daemon's clock is the
    // wall clock, so the runs are laid out behind it, an hour apart.
    for db in TestDb::all().await {
        let (code, _, err) = run_cli(&["migrate", "--database", &db.url], dir.path(), &[]);
        assert_eq!(code, 0, "{err}");
        let s = store(&db.url).await;
        let mut rows = Vec::new();
        let hours: Vec<(i64, i64)> = ids
            .iter()
            .enumerate()
            .map(|(i, src)| (*src, now - (56 - i as i64) * HOUR_MS + HOUR_MS / 2))
            .collect();
        for (i, (src, at)) in hours.iter().enumerate() {
            for r in real.iter().filter(|r| r.run_id == *src) {
                let mut r = r.clone();
                r.run_id = 1000 + i as i64;
                r.at_ms = *at;
                rows.push(r);
            }
        }
        s.insert_logprob_probes(&rows).await.unwrap();
        std::fs::write(
            dir.path().join("canaryd.yaml"),
            format!(
                "{}detectors: {{ every_secs: 1 }}\n",
                crate::support::canary::config(sim.url())
            ),
        )
        .unwrap();
        let daemon = TestDaemon::on_db(dir.path(), &db.url);
        let alert = wait_until(
            &format!("a logprob_shift alert on live ({})", db.backend),
            Duration::from_secs(60),
            Duration::from_millis(200),
            async || {
                let alerts = s.list_alerts(50).await.map_err(|e| e.to_string())?;
                alerts
                    .iter()
                    .find(|a| a.rule == "logprob_shift")
                    .cloned()
                    .ok_or_else(|| format!("{alerts:?}"))
            },
        )
        .await;
        assert_eq!(alert.stream, "suite:quiet");
        assert_eq!(alert.dimension, "live", "{alert:?}");
        assert!(alert.summary.contains("before ["), "{}", alert.summary);
        // The unchanged target is evaluated, and steady.
        let findings = wait_until(
            "findings for both targets",
            Duration::from_secs(30),
            Duration::from_millis(200),
            async || {
                let f = s.latest_findings().await.map_err(|e| e.to_string())?;
                let mine: Vec<_> = f
                    .into_iter()
                    .filter(|f| f.rule == canaryd::signals::Rule::LogprobShift)
                    .collect();
                if mine.len() == 2 {
                    Ok(mine)
                } else {
                    Err(format!("{mine:?}"))
                }
            },
        )
        .await;
        let pinned = findings
            .iter()
            .find(|f| f.dimension.as_deref() == Some("pinned"))
            .unwrap();
        assert_eq!(
            pinned.status,
            canaryd::signals::Status::Ok,
            "{}",
            pinned.summary
        );
        let alerts = s.list_alerts(50).await.unwrap();
        assert!(alerts.iter().all(|a| a.dimension != "pinned"), "{alerts:?}");
        drop(daemon);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_without_logprobs_is_reported_as_unsupported() {
    let sim = Sim::start("seed: 2\ndefault: { logprobs: false }\n");
    let dir = project(sim.url(), &[("quiet.yaml", SUITE)]);
    let db = TestDb::sqlite().await;
    let (code, report, err) = run_json(dir.path(), "quiet", &[], &db.url);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["provider_errors"], 0, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    let p = probes(&report);
    assert_eq!(p.len(), 6);
    assert!(p.iter().all(|(_, s)| s == "unsupported"), "{p:?}");
    let (code, out, err) = run_cli(
        &["run", "quiet"],
        dir.path(),
        &[("CANARYD_DATABASE_URL", db.url.as_str())],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("live: 0 recorded, 3 logprobs unsupported by the provider"),
        "{out}"
    );
    assert!(out.contains("0 provider errors"), "{out}");
    // Stored as unsupported, which the detector reports as such.
    let now = chrono::Utc::now().timestamp_millis();
    let snap = store(&db.url)
        .await
        .logprob_snapshot(now + 60_000)
        .await
        .unwrap();
    let obs = &snap["quiet"];
    assert!(obs.iter().all(|o| o.status == "unsupported"), "{obs:?}");
    let w = canaryd::signals::window::Windows::new(
        now + 60_000,
        &canaryd::signals::DetectorConfig::default(),
    );
    let v = canaryd::signals::logprob_shift::logprob_shift("quiet", obs, &w);
    assert!(v.iter().all(|v| v.finding.summary.contains("unsupported")
        && v.finding.status == canaryd::signals::Status::InsufficientData));
}

#[test]
fn check_prints_what_each_suite_costs_per_day() {
    let dir = project("http://127.0.0.1:9", &[]);
    let scheduled = SUITE.replace(
        "targets: [pinned, live]",
        "schedule: \"0 * * * *\"\ntargets: [pinned, live]",
    ) + "  targets: [live]\n";
    std::fs::write(dir.path().join("canaries/quiet.yaml"), scheduled).unwrap();
    let cfg = crate::support::canary::config("http://127.0.0.1:9").replace(
        "live:     { provider: sim, model: gpt-4o }",
        "live:     { provider: sim, model: gpt-4o, input_cost_per_mtok: 2.5, output_cost_per_mtok: 10 }",
    );
    std::fs::write(dir.path().join("canaryd.yaml"), cfg).unwrap();
    let (code, out, err) = run_cli(&["check"], dir.path(), &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    // 1 case × 2 targets + 3 probes on live, 24 runs a day.
    assert!(
        out.contains("suite quiet: 24 runs/day, 120 calls/day"),
        "{out}"
    );
    assert!(out.contains("logprob_probe  live"), "{out}");
    assert!(out.contains("3 calls/run = 72 calls/day"), "{out}");
    // Priced from live's prices: cases ≤ 200 output tokens, probes 1.
    assert!(out.contains("/day\n") && out.contains(", $"), "{out}");
}
