//! The logprob probe against the real llama.cpp server (issue 17): its
//! `logprobs` shape parses, a deterministic server gives the same top-k at
//! every run, and a real change of configuration behind the same name and
//! fingerprint — the chat template, which drops SmolLM2's built-in default
//! system prompt — moves them; `canaryd status` then reports
//! `logprob_shift` for the target while every answer still passes.

use crate::support::canary::{run_json, store};
use crate::support::llama::{self, FINGERPRINT, LlamaServer, MODEL};
use crate::support::{TestDb, run_cli, write_tree};

const HOUR_MS: i64 = 3_600_000;

const SUITE: &str = r#"
suite: fp
version: 1
targets: [live]
defaults: { temperature: 0, max_tokens: 8 }
cases:
  - id: hello
    prompt: "Say hello."
logprob_probe:
  top_logprobs: 5
  prompts:
    - { id: capital, prompt: "What is the capital of France?" }
    - { id: refund, prompt: "Can I return a parcel after 30 days?" }
    - { id: colour, prompt: "Name a colour." }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_sees_a_real_configuration_change_of_the_llama_server() {
    let Some(py) = llama::python_or_skip("the_probe_sees_a_real_configuration_change") else {
        return;
    };
    let mut server = LlamaServer::start(&py, &[]).await;
    let port = server.port;
    let dir = write_tree(&[
        (
            "canaryd.yaml",
            llama::config(&server.url, &server.url).as_str(),
        ),
        ("canaries/fp.yaml", SUITE),
        ("judges/.keep", ""),
    ]);
    let scratch = TestDb::sqlite().await;
    let run = |label: &str| {
        let (code, report, err) = run_json(dir.path(), "fp", &[], &scratch.url);
        assert_eq!(code, 0, "{label}: {err}\n{report:#}");
        let probes = report["logprob_probes"].as_array().unwrap().clone();
        assert_eq!(probes.len(), 3, "{report:#}");
        for p in &probes {
            assert_eq!(p["status"], "ok", "llama.cpp's logprobs parse: {p:#}");
            assert_eq!(p["response_model"], MODEL);
            assert_eq!(p["system_fingerprint"], FINGERPRINT);
            assert!(!p["top_logprobs"].as_array().unwrap().is_empty(), "{p:#}");
        }
        report["run_id"].as_i64().unwrap()
    };
    let before: Vec<i64> = (0..2).map(|_| run("before")).collect();
    // The configuration change: same port, alias and fingerprint.
    server.stop();
    let _server = LlamaServer::start_on(&py, port, &["--chat-template", "chatml"]).await;
    let after: Vec<i64> = (0..2).map(|_| run("after")).collect();

    let now = chrono::Utc::now().timestamp_millis();
    let real = store(&scratch.url)
        .await
        .logprob_history(now + 60_000, 100)
        .await
        .unwrap();
    let top = |run: i64, probe: &str| {
        real.iter()
            .find(|r| r.run_id == run && r.probe_id == probe)
            .and_then(|r| r.top_logprobs.clone())
            .unwrap()
    };
    for probe in ["capital", "refund", "colour"] {
        assert_eq!(
            top(before[0], probe),
            top(before[1], probe),
            "deterministic at temperature 0"
        );
    }
    assert!(
        ["capital", "refund", "colour"]
            .iter()
            .any(|p| top(before[0], p) != top(after[0], p)),
        "the template change moved no logprob"
    );
    eprintln!(
        "capital before: {}\ncapital after:  {}",
        top(before[0], "capital"),
        top(after[0], "capital")
    );

    // Hourly history from those runs: 52 hours like before, 4 like after.
    let db = TestDb::sqlite().await;
    let (code, _, err) = run_cli(&["migrate", "--database", &db.url], dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    let mut rows = Vec::new();
    for i in 0..56usize {
        let src = if i < 52 { before[i % 2] } else { after[i % 2] };
        for r in real.iter().filter(|r| r.run_id == src) {
            let mut r = r.clone();
            r.run_id = 1000 + i as i64;
            r.at_ms = now - (56 - i as i64) * HOUR_MS + HOUR_MS / 2;
            rows.push(r);
        }
    }
    store(&db.url)
        .await
        .insert_logprob_probes(&rows)
        .await
        .unwrap();
    let (code, out, err) = run_cli(
        &["status", "--format", "json"],
        dir.path(),
        &[("CANARYD_DATABASE_URL", db.url.as_str())],
    );
    assert!(code == 0 || code == 1, "{err}");
    let status: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let verdict = status["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["detectors"].as_array().unwrap().iter())
        .find(|d| d["rule"] == "logprob_shift" && d["dimension"] == "live")
        .cloned()
        .unwrap_or_else(|| panic!("no logprob_shift verdict in {status:#}"));
    eprintln!("{verdict:#}");
    assert_eq!(verdict["status"], "firing", "{verdict:#}");
}
