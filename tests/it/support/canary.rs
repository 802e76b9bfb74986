//! Support for the canary tests: a real `canaryd sim` process, a project
//! directory (config, suites, judges) pointing at it, and readers of what a
//! run stored.
#![allow(dead_code)]

use std::path::Path;

use super::{Spawned, run_cli, write_tree};

/// A running `canaryd sim` with its scenario file.
pub struct Sim {
    pub proc: Spawned,
    _dir: tempfile::TempDir,
}

impl Sim {
    pub fn start(scenario: &str) -> Sim {
        let dir = write_tree(&[("scenario.yaml", scenario)]);
        let path = dir.path().join("scenario.yaml");
        let proc = Spawned::start(
            &[
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--scenario",
                path.to_str().unwrap(),
            ],
            dir.path(),
            &[],
        );
        Sim { proc, _dir: dir }
    }

    pub fn url(&self) -> &str {
        &self.proc.base_url
    }

    /// Switches the simulator to a phase by name (`POST /_sim/phase`).
    pub async fn set_phase(&self, phase: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sim/phase", self.url()))
            .json(&serde_json::json!({ "phase": phase }))
            .send()
            .await
            .expect("sim reachable");
        assert!(r.status().is_success(), "set phase {phase}: {}", r.status());
    }
}

/// The config of a test project: `pinned` and `live` (plus a judge and an
/// embedder) served by the simulator at `sim_url`, with quick retries.
pub fn config(sim_url: &str) -> String {
    format!(
        r#"
database: sqlite://canaryd.db
listen: 127.0.0.1:0
log: {{ format: json, level: info }}
providers:
  sim: {{ base_url: "{sim_url}/v1", max_retries: 2, backoff_ms: 20, timeout_secs: 2, max_concurrency: 16 }}
models:
  pinned:   {{ provider: sim, model: gpt-4o-2024-08-06 }}
  live:     {{ provider: sim, model: gpt-4o }}
  judge:    {{ provider: sim, model: judge-mini }}
  embedder: {{ provider: sim, model: embed-small }}
"#
    )
}

/// A project directory: the config above, the shipped judges, and `suites`
/// (file name, YAML) under `canaries/`.
pub fn project(sim_url: &str, suites: &[(&str, &str)]) -> tempfile::TempDir {
    let cfg = config(sim_url);
    let mut files: Vec<(String, String)> = vec![("canaryd.yaml".into(), cfg)];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for j in ["groundedness", "consistency", "completion"] {
        let text = std::fs::read_to_string(root.join(format!("judges/{j}.yaml"))).unwrap();
        files.push((format!("judges/{j}.yaml"), text));
    }
    for (name, text) in suites {
        files.push((format!("canaries/{name}"), text.to_string()));
    }
    std::fs::create_dir_all(std::env::temp_dir()).unwrap();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = write_tree(&refs);
    std::fs::create_dir_all(dir.path().join("canaries")).unwrap();
    dir
}

/// `canaryd run SUITE --format json` with the database at `db_url`.
/// Returns (exit code, parsed report or Null, stderr).
pub fn run_json(
    dir: &Path,
    suite: &str,
    extra: &[&str],
    db_url: &str,
) -> (i32, serde_json::Value, String) {
    let mut args = vec!["run", suite, "--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run_cli(&args, dir, &[("CANARYD_DATABASE_URL", db_url)]);
    let v = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    (code, v, err)
}

/// The result of `case` on `target` in a JSON report.
pub fn result<'a>(
    report: &'a serde_json::Value,
    case: &str,
    target: &str,
) -> &'a serde_json::Value {
    report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {report}"))
        .iter()
        .find(|r| r["case_id"] == case && r["target"] == target)
        .unwrap_or_else(|| panic!("no result for {case} @ {target} in {report:#}"))
}

/// Outcomes as (case, target, outcome), sorted, for whole-run assertions.
pub fn outcomes(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["case_id"].as_str().unwrap().to_string(),
                r["target"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Opens the database a test used (already migrated by the binary).
pub async fn store(db_url: &str) -> canaryd::store::Store {
    canaryd::store::Store::connect(db_url)
        .await
        .expect("open test database")
}
