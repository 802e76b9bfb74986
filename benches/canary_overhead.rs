//! Overhead of the canary runner: a 200-case suite with concurrency 8
//! against `canaryd sim` answering every request in exactly 100 ms.
//!
//! The ideal wall time is 200 × 0.1 s / 8 = 2.5 s; the target is at most
//! 10 % over it (2.75 s). Runs `canaryd run` (the real binary, recording in
//! a fresh SQLite database) three times and reports the run's own duration
//! (started → finished as recorded) and the process wall time, which adds
//! start-up and migrations. Exits 1 when the best run misses the target.
//!
//! `cargo bench --bench canary_overhead` (add `--profile dev` to reuse the
//! debug build instead of compiling a release one).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

const CASES: usize = 200;
const CONCURRENCY: usize = 8;
const LATENCY_MS: f64 = 100.0;

fn main() {
    let bin = env!("CARGO_BIN_EXE_canaryd");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(
        root.join("scenario.yaml"),
        format!(
            "default:\n  latency_ms: {{ mean: {LATENCY_MS}, jitter: 0 }}\n  answers:\n    - match: \"question\"\n      answer: \"The answer is 42.\"\n"
        ),
    )
    .unwrap();
    let mut sim = Command::new(bin)
        .args(["sim", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(root.join("scenario.yaml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start canaryd sim");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line[line.find("http://").expect("sim address")..]
        .trim()
        .to_string();

    std::fs::create_dir_all(root.join("canaries")).unwrap();
    std::fs::write(
        root.join("canaryd.yaml"),
        format!(
            "database: sqlite://canaryd.db\nlog: {{ format: json, level: warn }}\nproviders:\n  sim: {{ base_url: \"{url}/v1\", max_concurrency: 64, max_retries: 0 }}\nmodels:\n  pinned: {{ provider: sim, model: bench-model }}\n"
        ),
    )
    .unwrap();
    let mut suite = format!(
        "suite: bench\nversion: 1\ntargets: [pinned]\nconcurrency: {CONCURRENCY}\ncases:\n"
    );
    for i in 0..CASES {
        suite.push_str(&format!(
            "  - id: c{i}\n    prompt: \"Benchmark question {i}?\"\n    expect: [{{ contains: \"42\" }}, {{ refusal: false }}, {{ max_tokens: 50 }}]\n"
        ));
    }
    std::fs::write(root.join("canaries/bench.yaml"), suite).unwrap();

    let ideal = CASES as f64 * LATENCY_MS / 1000.0 / CONCURRENCY as f64;
    let target = ideal * 1.10;
    let mut best = f64::MAX;
    for attempt in 1..=3 {
        let started = Instant::now();
        let out = Command::new(bin)
            .args(["run", "bench", "--format", "json"])
            .current_dir(root)
            .env_remove("CANARYD_DATABASE_URL")
            .env_remove("CANARYD_CONFIG")
            .output()
            .expect("run canaryd");
        let wall = started.elapsed().as_secs_f64();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(report["passed"], CASES, "every case passes: {report}");
        let run = (report["finished_ms"].as_i64().unwrap() - report["started_ms"].as_i64().unwrap())
            as f64
            / 1000.0;
        best = best.min(run);
        // Latency the client saw per request: what is left is the runner's.
        let lat: Vec<f64> = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["latency_ms"].as_f64())
            .collect();
        let mean_latency = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
        println!(
            "run {attempt}: {CASES} cases, concurrency {CONCURRENCY}, {LATENCY_MS} ms latency: run {run:.3} s, process {wall:.3} s (ideal {ideal:.2} s, target <= {target:.2} s, overhead {:+.1} %); mean request latency seen {mean_latency:.1} ms",
            (run / ideal - 1.0) * 100.0
        );
    }
    let _ = sim.kill();
    let _ = sim.wait();
    if best > target {
        eprintln!("best run {best:.3} s misses the target of {target:.2} s");
        std::process::exit(1);
    }
    println!("best run {best:.3} s: within the target of {target:.2} s");
}
