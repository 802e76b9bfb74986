//! Canary equality testing (issue 17) through the real binary against a
//! real `canaryd sim`: a quiet swap (same name and fingerprint, answers
//! re-worded) is caught by `model_drift` and by none of the verdict checks;
//! the unchanged target is not flagged; `check` refuses a suite whose
//! sampling exceeds its budget, with the position of the key.

use crate::support::canary::{Sim, outcomes, project, run_json};
use crate::support::{TestDb, run_cli};

/// Both targets answer from the same profile (so the same distribution:
/// `vary_answers` draws every answer afresh); the `swap` phase, entered by
/// hand, rewords the live alias only.
const SCENARIO: &str = r#"
seed: 17
default:
  vary_answers: true
  tokens: { mean: 40, sd: 15, min: 10, max: 120 }
phases:
  - name: swap
    models:
      gpt-4o: { reword: 0.5 }
"#;

const SUITE: &str = r#"
suite: eq
version: 1
targets: [pinned, live]
baseline: pinned
defaults: { temperature: 0, max_tokens: 300 }
equality:
  samples: 8
  temperature: 0.7
  reference: { target: pinned }
  budget: { max_calls_per_day: 100000 }
cases:
  - id: refund
    context:
      - "Refunds are accepted within 30 days of delivery."
      - "A refund is paid back to the original card within 5 days."
      - "Items must be unused and in their original box."
    prompt: How many days do I have to ask for a refund?
    expect: [{ contains: "30 days" }]
  - id: shipping
    context:
      - "Standard shipping takes 3 to 5 days."
      - "Express shipping arrives the next day for orders before noon."
      - "Shipping is free on orders above 50 euros."
    prompt: How long does standard shipping take?
    expect: [{ contains: "3 to 5 days" }]
  - id: caching
    prompt: Explain how a cache improves performance.
    expect: [{ min_tokens: 5 }]
  - id: reviews
    prompt: How should a team organise code reviews?
    expect: [{ min_tokens: 5 }]
  - id: skipped
    prompt: Say hello.
    equality: { samples: 0 }
"#;

/// `canaryd status --format json`'s finding of `rule` for `target` of suite `eq`.
fn finding(dir: &std::path::Path, db: &str, rule: &str, target: &str) -> serde_json::Value {
    finding_of(dir, db, "eq", rule, target)
}

fn run_once(dir: &std::path::Path, db: &str) -> serde_json::Value {
    let (code, report, err) = run_json(dir, "eq", &[], db);
    assert_eq!(code, 0, "run failed: {err}\n{report:#}");
    assert!(
        outcomes(&report).iter().all(|(_, _, o)| o == "pass"),
        "every verdict check passes: {report:#}"
    );
    let eq = &report["equality"];
    // 4 cases × 8 samples × 2 targets; `skipped` is left out.
    assert_eq!(eq["calls"], 64, "{eq:#}");
    assert_eq!(eq["tests"].as_array().map(Vec::len), Some(1), "{eq:#}");
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_swap_is_caught_by_model_drift_and_by_no_verdict_check() {
    let sim = Sim::start(SCENARIO);
    for db in TestDb::all().await {
        let dir = project(sim.url(), &[("eq.yaml", SUITE)]);
        sim.set_phase("baseline").await;
        // The unchanged target, a few hourly-like runs: not flagged.
        for _ in 0..4 {
            run_once(dir.path(), &db.url);
        }
        let f = finding(dir.path(), &db.url, "model_drift", "live");
        assert_eq!(f["status"], "ok", "unchanged live is not flagged: {f:#}");
        // pinned is the reference: it has no test of its own.
        let (_, out, _) = run_cli(
            &["status", "--format", "json"],
            dir.path(),
            &[("CANARYD_DATABASE_URL", db.url.as_str())],
        );
        assert!(!out.contains("\"pinned no longer"), "{out}");

        // The quiet swap: same model name and fingerprint, re-worded answers.
        sim.set_phase("swap").await;
        let mut fired_after = None;
        for run in 1..=6 {
            let report = run_once(dir.path(), &db.url);
            for r in report["results"].as_array().unwrap() {
                assert_eq!(r["system_fingerprint"], "fp_sim0000001", "{r:#}");
            }
            let f = finding(dir.path(), &db.url, "model_drift", "live");
            if f["status"] == "firing" {
                fired_after = Some((run, f));
                break;
            }
        }
        let (runs, f) = fired_after.expect("model_drift fires within 6 runs of the swap");
        let summary = f["summary"].as_str().unwrap();
        assert!(
            summary.contains("live no longer answers like pinned")
                && summary.contains("moved most"),
            "{summary}"
        );
        assert!(
            !summary.contains("skipped"),
            "a case left out is not tested: {summary}"
        );
        assert_eq!(f["severity"], "warning");
        // The verdict checks see nothing: every case passed, no regression,
        // no model change (same name, same fingerprint).
        let c = finding(dir.path(), &db.url, "canary_regression", "live");
        assert_eq!(c["status"], "ok", "{c:#}");
        eprintln!(
            "{}: model_drift fired after {runs} run(s): {summary}",
            db.backend
        );
    }
}

#[test]
fn check_refuses_sampling_over_budget_and_bad_keys_with_their_position() {
    let over = SUITE
        .replace("max_calls_per_day: 100000", "max_calls_per_day: 1000")
        .replace(
            "baseline: pinned\n",
            "baseline: pinned\nschedule: \"0 * * * *\"\n",
        );
    let bad = SUITE.replace("samples: 8", "samples: 1").replace(
        "reference: { target: pinned }",
        "reference: { target: pinnned }",
    );
    let dir = project("http://127.0.0.1:9", &[("over.yaml", &over)]);
    let (code, _, err) = run_cli(&["check"], dir.path(), &[]);
    assert_ne!(code, 0, "{err}");
    // 64 calls a run × 24 runs a day = 1536 > 1000, at the budget's key.
    assert!(
        err.contains("over.yaml:12:")
            && err.contains("1536 calls a day")
            && err.contains("max_calls_per_day 1000"),
        "{err}"
    );
    let dir = project("http://127.0.0.1:9", &[("bad.yaml", &bad)]);
    let (code, _, err) = run_cli(&["check"], dir.path(), &[]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("equality.samples: found 1, expected 2 to 100"),
        "{err}"
    );
    assert!(
        err.contains("`pinnned` is not a target of this suite"),
        "{err}"
    );
}

const REAL_SUITE: &str = r#"
suite: eq-real
version: 1
targets: [pinned, live]
baseline: pinned
defaults: { temperature: 0, max_tokens: 40 }
equality:
  samples: 6
  temperature: 0.8
  max_tokens: 32
  reference: { target: pinned }
cases:
  - id: refund
    context: ["Refunds are accepted within 30 days of delivery."]
    prompt: How many days do I have to ask for a refund?
  - id: greeting
    prompt: Write one friendly sentence to greet a new customer.
"#;

/// The real llama.cpp tier: `live` is the same model file, name and
/// fingerprint, restarted with another sampling default (top-k 1: greedy
/// decoding, a configuration change a request does not override). Before it,
/// live and pinned answer alike; after it, `model_drift` fires.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_configuration_change_is_caught_by_model_drift() {
    use crate::support::llama::{self, FINGERPRINT, LlamaServer};
    let Some(py) = llama::python_or_skip("a_real_configuration_change_is_caught_by_model_drift")
    else {
        return;
    };
    let pinned = LlamaServer::start(&py, &[]).await;
    let mut live = LlamaServer::start(&py, &[]).await;
    let cfg = llama::config(&pinned.url, &live.url);
    let dir = crate::support::write_tree(&[
        ("canaryd.yaml", cfg.as_str()),
        ("canaries/eq-real.yaml", REAL_SUITE),
        ("judges/.keep", ""),
    ]);
    let db = TestDb::sqlite().await;
    let run = |dir: &std::path::Path| {
        let (code, report, err) = run_json(dir, "eq-real", &[], &db.url);
        assert_eq!(code, 0, "{err}\n{report:#}");
        assert_eq!(
            report["equality"]["tests"].as_array().map(Vec::len),
            Some(1),
            "{report:#}"
        );
        report
    };
    for _ in 0..2 {
        run(dir.path());
    }
    let before = finding_of(dir.path(), &db.url, "eq-real", "model_drift", "live");
    assert_eq!(before["status"], "ok", "{before:#}");

    let port = live.port;
    live.stop();
    let _live = LlamaServer::start_on(&py, port, &["--top-k", "1"]).await;
    let mut fired = None;
    for n in 1..=3 {
        let report = run(dir.path());
        for r in report["results"].as_array().unwrap() {
            assert_eq!(r["system_fingerprint"], FINGERPRINT, "{r:#}");
        }
        let f = finding_of(dir.path(), &db.url, "eq-real", "model_drift", "live");
        if f["status"] == "firing" {
            fired = Some((n, f));
            break;
        }
    }
    let (n, f) = fired.expect("model_drift fires within 3 runs of the change");
    eprintln!(
        "real model: model_drift fired after {n} run(s): {}",
        f["summary"]
    );
}

/// Like [`finding`], for any suite.
fn finding_of(
    dir: &std::path::Path,
    db: &str,
    suite: &str,
    rule: &str,
    target: &str,
) -> serde_json::Value {
    let (code, out, err) = run_cli(
        &["status", "--format", "json"],
        dir,
        &[("CANARYD_DATABASE_URL", db)],
    );
    assert_eq!(code, 0, "status failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    let stream = format!("suite:{suite}");
    v["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == stream.as_str())
        .and_then(|s| {
            s["detectors"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["rule"] == rule && f["dimension"] == target)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no {rule} finding for {target} in {v:#}"))
}
