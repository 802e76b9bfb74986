//! The binary as a user runs it: `check`, `migrate`, `serve`, `--version`.

use crate::support::{TestDaemon, TestDb, run_cli, write_tree};

const CONFIG: &str = r#"
database: sqlite://canaryd.db
listen: 127.0.0.1:0
providers:
  sim: { base_url: "http://127.0.0.1:9/v1" }
models:
  pinned: { provider: sim, model: gpt-4o-2024-08-06 }
  live:   { provider: sim, model: gpt-4o }
  judge:  { provider: sim, model: gpt-4o-mini }
"#;

const GOOD_SUITE: &str = r#"
suite: good
version: 1
targets: [pinned, live]
cases:
  - id: a
    prompt: hello
    expect: [{ contains: "hi" }]
"#;

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_cli(&["--version"], dir.path(), &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("canaryd "), "{out}");
    let (code, out, _) = run_cli(&["--help"], dir.path(), &[]);
    assert_eq!(code, 0);
    for cmd in [
        "serve", "check", "migrate", "run", "sim", "backtest", "status", "demo",
    ] {
        assert!(out.contains(cmd), "--help lists {cmd}: {out}");
    }
}

#[test]
fn check_accepts_the_shipped_examples() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for config in [
        "canaryd.example.yaml",
        "canaryd.sim.yaml",
        "deploy/canaryd.yaml",
    ] {
        // `check` reads every secret `serve` reads: give them.
        let creds = write_tree(&[
            ("openai-api-key", "k"),
            ("ingest-token", "i"),
            ("api-token", "a"),
        ]);
        let creds_dir = creds.path().to_str().unwrap();
        let (code, _, err) = run_cli(
            &["check", "--config", config],
            root,
            &[
                ("OPENAI_API_KEY", "k"),
                ("CREDENTIALS_DIRECTORY", creds_dir),
            ],
        );
        let err = err.replace("/etc/canaryd/", "");
        if config.starts_with("deploy/") {
            // Its directories live under /etc/canaryd on a real host: only the
            // config itself is checked here.
            assert!(!err.contains("canaryd.yaml:"), "{config}:\n{err}");
            continue;
        }
        assert_eq!(code, 0, "shipped {config} must be valid:\n{err}");
        assert!(err.contains("0 errors"), "{err}");
    }
}

#[test]
fn check_reports_each_broken_file_with_position_and_keeps_going() {
    let dir = write_tree(&[
        ("canaryd.yaml", CONFIG),
        ("canaries/good.yaml", GOOD_SUITE),
        // A YAML syntax error: an unclosed flow sequence.
        (
            "canaries/syntax.yaml",
            "suite: syntax\nversion: 1\ntargets: [pinned, live\ncases: []\n",
        ),
        // A wrong type: version is a string.
        (
            "canaries/wrongtype.yaml",
            "suite: wrongtype\nversion: three\ntargets: [pinned]\ncases:\n  - id: a\n    prompt: x\n",
        ),
        // An unknown key with a close known one.
        (
            "canaries/unknown.yaml",
            "suite: unknown\nversion: 1\ntargets: [pinned]\nshedule: \"* * * * *\"\ncases:\n  - id: a\n    prompt: x\n",
        ),
        // Identity: results are recorded under (name, version).
        (
            "canaries/identity.yaml",
            "suite: \" \"\nversion: 0\ntargets: [pinned]\ncases:\n  - id: a\n    prompt: x\n",
        ),
        (
            "judges/identity.yaml",
            "name: \"\"\nversion: -1\nmodel: judge\nprompt: \"{{ output }}\"\n",
        ),
        // Semantic problems, all reported: bad target, bad cron, bad regex.
        (
            "canaries/semantic.yaml",
            "suite: semantic\nversion: 1\nschedule: \"61 * * * *\"\ntargets: [pinned, livee]\ncases:\n  - id: a\n    prompt: x\n    expect:\n      - regex: \"(\"\n",
        ),
    ]);
    let (code, _, err) = run_cli(&["check"], dir.path(), &[]);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let for_file = |name: &str| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| l.contains(&format!("canaries/{name}.yaml:")))
            .collect()
    };
    let syntax = for_file("syntax");
    assert_eq!(syntax.len(), 1, "{err}");
    assert!(
        syntax[0].contains("syntax.yaml:3:") || syntax[0].contains("syntax.yaml:4:"),
        "{err}"
    );
    let wrong = for_file("wrongtype");
    assert_eq!(wrong.len(), 1, "{err}");
    assert!(
        wrong[0].contains(
            "wrongtype.yaml:2:10: error: version: found three, expected a whole number (i64)"
        ),
        "{err}"
    );
    let unknown = for_file("unknown");
    assert_eq!(unknown.len(), 1, "{err}");
    assert!(unknown[0].contains("unknown.yaml:4:1:"), "{err}");
    assert!(unknown[0].contains("did you mean `schedule`"), "{err}");
    let identity = for_file("identity");
    assert!(
        identity.len() == 2
            && identity[0].contains("identity.yaml:1:8:")
            && identity[0].contains("suite name must not be empty")
            && identity[1].contains("identity.yaml:2:10:")
            && identity[1].contains("version must be a positive integer"),
        "{err}"
    );
    let judge: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("judges/identity.yaml:"))
        .collect();
    assert!(
        judge.len() == 2
            && judge[0].contains("judge name must not be empty")
            && judge[1].contains("version must be a positive integer"),
        "{err}"
    );
    let semantic = for_file("semantic");
    assert_eq!(semantic.len(), 3, "{err}");
    assert!(
        semantic.iter().any(|l| l.contains("did you mean `live`")),
        "{err}"
    );
    assert!(semantic.iter().any(|l| l.contains("cron")), "{err}");
    assert!(semantic.iter().any(|l| l.contains("regex")), "{err}");
    assert!(
        for_file("good").is_empty(),
        "a good file next to broken ones is fine: {err}"
    );
    // Every diagnostic line has path:line:column.
    for l in lines.iter().filter(|l| l.contains(".yaml:")) {
        let after = l.split(".yaml:").nth(1).unwrap();
        let mut parts = after.split(':');
        assert!(parts.next().unwrap().parse::<u32>().is_ok(), "{l}");
        assert!(parts.next().unwrap().parse::<u32>().is_ok(), "{l}");
    }
}

#[test]
fn check_rejects_secrets_in_yaml_without_echoing_them() {
    let dir = write_tree(&[(
        "canaryd.yaml",
        "providers:\n  openai:\n    base_url: https://api.openai.com/v1\n    api_key: sk-very-secret\n",
    )]);
    let (code, out, err) = run_cli(&["check"], dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("canaryd.yaml:4:"), "{err}");
    assert!(!err.contains("sk-very-secret") && !out.contains("sk-very-secret"));
}

#[tokio::test]
async fn migrate_creates_schema_twice_on_both_backends() {
    let dir = write_tree(&[("canaryd.yaml", CONFIG)]);
    for db in TestDb::all().await {
        for _ in 0..2 {
            let (code, out, err) = run_cli(
                &["migrate"],
                dir.path(),
                &[("CANARYD_DATABASE_URL", &db.url)],
            );
            assert_eq!(code, 0, "{}: {err}", db.backend);
            assert!(out.contains("current schema"), "{out}");
        }
        let store = canaryd::store::Store::connect(&db.url).await.unwrap();
        assert!(
            store
                .tables()
                .await
                .unwrap()
                .iter()
                .any(|t| t == "canary_runs"),
            "{}",
            db.backend
        );
        store.close().await;
    }
    // The default from the config file: a SQLite file next to it.
    let (code, _, err) = run_cli(&["migrate"], dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("canaryd.db").exists());
}

#[test]
fn serve_answers_health_checks() {
    let dir = write_tree(&[("canaryd.yaml", CONFIG)]);
    let app = TestDaemon::start(dir.path(), &[], &[]);
    let body = reqwest::blocking_get(&format!("{}/healthz", app.base_url));
    assert_eq!(body.trim(), "ok");
    let ready = reqwest::blocking_get(&format!("{}/readyz", app.base_url));
    assert_eq!(ready.trim(), "ready");
    let metrics = reqwest::blocking_get(&format!("{}/metrics", app.base_url));
    assert!(
        metrics.contains("# TYPE canaryd_provider_errors_total counter"),
        "{metrics}"
    );
}

mod reqwest {
    /// Tiny blocking GET over a fresh runtime, to keep the test synchronous.
    pub fn blocking_get(url: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { ::reqwest::get(url).await.unwrap().text().await.unwrap() })
    }
}

#[test]
fn sighup_validates_and_keeps_running_and_sigterm_exits_zero() {
    let dir = write_tree(&[("canaryd.yaml", CONFIG), ("canaries/good.yaml", GOOD_SUITE)]);
    let mut app = TestDaemon::start(dir.path(), &[], &[]);
    // Break a suite, then reload: the error is logged, the daemon stays up
    // (a broken suite keeps its last good version; it does not block the
    // reload of the config).
    std::fs::write(dir.path().join("canaries/broken.yaml"), "suite: [\n").unwrap();
    app.signal("HUP");
    let log = app.wait_log(
        "suite kept at its last good version",
        std::time::Duration::from_secs(10),
    );
    assert!(log.contains("broken.yaml:"), "{log}");
    // A broken config is refused.
    std::fs::write(
        dir.path().join("canaryd.yaml"),
        format!("{CONFIG}detectorz: {{}}\n"),
    )
    .unwrap();
    app.signal("HUP");
    let log = app.wait_log("reload rejected", std::time::Duration::from_secs(10));
    assert!(log.contains("detectorz"), "{log}");
    let body = reqwest::blocking_get(&format!("{}/healthz", app.base_url));
    assert_eq!(body.trim(), "ok", "still serving after SIGHUP");
    app.signal("TERM");
    let status = app
        .wait_exit(std::time::Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", app.stderr());
}
