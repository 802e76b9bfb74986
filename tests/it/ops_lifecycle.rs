//! A day in production for the real binary: `canaryd serve` against a real
//! `canaryd sim`, reloaded with SIGHUP (a suite that needs a model only the
//! new config defines, a broken suite, a broken config) and stopped with
//! SIGTERM in the middle of a slow canary run, with every stored row checked.

use std::time::Duration;

use crate::support::canary::{Sim, config, store};
use crate::support::{TestDaemon, TestDb, wait_until, write_tree};
use canaryd::store::{RunRow, Store};

/// `slow-model` takes 1.5 s per answer (under the 2 s provider timeout);
/// every other model answers at once.
const SCENARIO: &str = r#"
default:
  answers:
    - match: "capital"
      answer: "Paris is the capital of France."
models:
  slow-model:
    latency_ms: { mean: 1500, jitter: 0 }
"#;

fn suite(version: i64, targets: &str) -> String {
    format!(
        "suite: life\nversion: {version}\nschedule: \"*/2 * * * * *\"\ntargets: [{targets}]\ntimeout_secs: 60\ncases:\n  - id: capital\n    prompt: What is the capital of France?\n    expect: [{{ contains: Paris }}]\n  - id: capital-again\n    prompt: Which city is the capital of France?\n    expect: [{{ contains: Paris }}]\n"
    )
}

async fn runs(s: &Store) -> Vec<RunRow> {
    let mut r = s.recent_runs("life", 1000).await.unwrap();
    r.reverse();
    r
}

async fn wait_for(s: &Store, within: Duration, what: &str, cond: impl Fn(&[RunRow]) -> bool) {
    wait_until(what, within, Duration::from_millis(200), async || {
        let r = runs(s).await;
        if cond(&r) {
            Ok(())
        } else {
            Err(format!("runs: {r:#?}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_valid_versions_keeps_old_on_errors_and_sigterm_leaves_clean_rows() {
    let sim = Sim::start(SCENARIO);
    for db in TestDb::all().await {
        let base_config = config(sim.url());
        let dir = write_tree(&[
            ("canaryd.yaml", &base_config),
            ("canaries/life.yaml", &suite(1, "pinned")),
        ]);
        let suite_path = dir.path().join("canaries/life.yaml");
        let config_path = dir.path().join("canaryd.yaml");
        let mut daemon = TestDaemon::on_db(dir.path(), &db.url);
        let s = store(&db.url).await;
        wait_for(&s, Duration::from_secs(10), "a completed v1 run", |r| {
            r.iter()
                .any(|r| r.status == "completed" && r.suite_version == 1)
        })
        .await;

        // Version 2 targets `slow`, a model the running config does not
        // define: the directory watch rejects it and version 1 keeps running.
        std::fs::write(&suite_path, suite(2, "pinned, slow")).unwrap();
        daemon.wait_log("invalid suite file", Duration::from_secs(5));
        let n = runs(&s).await.len();
        wait_for(&s, Duration::from_secs(8), "v1 runs after the edit", |r| {
            r.len() > n
        })
        .await;
        assert!(
            runs(&s).await.iter().all(|r| r.suite_version == 1),
            "v2 ran before its model existed"
        );

        // The config gains `slow`; SIGHUP applies it and rescans at once.
        // The listen address changes too: that one waits for a restart.
        let with_slow =
            format!("{base_config}  slow:     {{ provider: sim, model: slow-model }}\n")
                .replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:1");
        std::fs::write(&config_path, &with_slow).unwrap();
        daemon.signal("HUP");
        let log = daemon.wait_log(
            "configuration, judges and suites reloaded",
            Duration::from_secs(5),
        );
        assert!(
            log.contains("`listen` changed in the config; it applies at restart"),
            "{log}"
        );
        let health = reqwest::get(format!("{}/healthz", daemon.base_url))
            .await
            .unwrap();
        assert!(health.status().is_success(), "still serving on its address");
        wait_for(&s, Duration::from_secs(15), "a completed v2 run", |r| {
            r.iter()
                .any(|r| r.status == "completed" && r.suite_version == 2)
        })
        .await;
        let v2 = runs(&s)
            .await
            .into_iter()
            .rev()
            .find(|r| r.suite_version == 2)
            .unwrap();
        let results = s.run_results(v2.id).await.unwrap();
        assert!(
            results
                .iter()
                .any(|r| r.target == "slow" && r.outcome == "pass"),
            "[{}] v2 ran its new target: {results:#?}",
            db.backend
        );

        // A broken suite: the reload is refused with file:line:column and
        // version 2 keeps running.
        std::fs::write(&suite_path, "suite: life\nversion: 3\ncases: [\n").unwrap();
        daemon.signal("HUP");
        let log = daemon.wait_log("reload rejected: ", Duration::from_secs(5));
        let line = log
            .lines()
            .find(|l| l.contains("reload rejected: ") && l.contains("canaries/life.yaml:"))
            .unwrap_or_else(|| panic!("the broken suite is not named:\n{log}"));
        let after = &line[line.find("life.yaml:").unwrap() + "life.yaml:".len()..];
        let position: Vec<&str> = after.splitn(3, ':').collect();
        assert!(
            position[0].parse::<u32>().is_ok() && position[1].parse::<u32>().is_ok(),
            "line and column after the path: {line}"
        );
        // A broken config is refused too; the running version is unaffected.
        std::fs::write(&config_path, format!("{with_slow}detectorz: {{}}\n")).unwrap();
        daemon.signal("HUP");
        let log = daemon.wait_log("detectorz", Duration::from_secs(5));
        assert!(
            log.lines()
                .any(|l| l.contains("reload rejected: ") && l.contains("canaryd.yaml:")),
            "the broken config is named:\n{log}"
        );
        let n = runs(&s).await.len();
        wait_for(&s, Duration::from_secs(12), "two more runs", |r| {
            r.len() >= n + 2 && r.last().is_some_and(|r| r.status != "running")
        })
        .await;
        let all = runs(&s).await;
        assert!(
            all[n..].iter().all(|r| r.suite_version == 2),
            "the last good version keeps running: {all:#?}"
        );

        // SIGTERM while `slow` is answering: exit 0, nothing half-written.
        wait_for(&s, Duration::from_secs(8), "a run in flight", |r| {
            r.last().is_some_and(|r| r.status == "running")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        daemon.signal("TERM");
        let status = daemon
            .wait_exit(Duration::from_secs(30))
            .expect("exits after SIGTERM");
        assert!(status.success(), "{status:?}\n{}", daemon.stderr());
        let all = runs(&s).await;
        let last = all.last().unwrap();
        assert!(
            last.status == "cancelled" || last.status == "completed",
            "{last:?}"
        );
        for r in &all {
            assert_ne!(r.status, "running", "a run left running: {r:?}");
            assert!(r.finished_ms.is_some(), "{r:?}");
            let stored = s.run_results(r.id).await.unwrap();
            match r.status.as_str() {
                "completed" => {
                    assert_eq!(stored.len() as i64, r.cases_total, "{r:?}");
                    assert_eq!(r.passed + r.failed + r.provider_errors, r.cases_total);
                }
                "cancelled" => assert!(stored.is_empty(), "cancelled run kept results: {r:?}"),
                other => panic!("unexpected status {other}: {r:?}"),
            }
        }
        s.close().await;
    }
}
