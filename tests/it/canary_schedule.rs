//! `canaryd serve` scheduling suites against a real `canaryd sim`: on time,
//! never overlapping itself, hot-reloading edited files, one catch-up run
//! after downtime, and recording runs cut by shutdown as cancelled.

use std::time::Duration;

use crate::support::canary::{Sim, project, store};
use crate::support::{TestDaemon, TestDb, wait_until};
use canaryd::store::{NewRun, RunRow, RunTrigger, Store};

const SCENARIO: &str = r#"
default:
  answers:
    - match: "capital"
      answer: "Paris is the capital of France."
"#;

fn suite(name: &str, version: i64, schedule: &str, extra: &str) -> String {
    format!(
        "suite: {name}\nversion: {version}\nschedule: \"{schedule}\"\ntargets: [pinned]\n{extra}cases:\n  - id: capital\n    prompt: What is the capital of France?\n    expect: [{{ contains: Paris }}]\n"
    )
}

fn serve(dir: &std::path::Path, db: &str) -> TestDaemon {
    TestDaemon::on_db(dir, db)
}

/// Runs of `suite`, oldest first.
async fn runs(s: &Store, suite: &str) -> Vec<RunRow> {
    let mut r = s.recent_runs(suite, 1000).await.unwrap();
    r.reverse();
    r
}

/// Polls until `cond` holds for the runs of `suite`, or panics after `within`.
async fn wait_for(
    s: &Store,
    suite: &str,
    within: Duration,
    what: &str,
    cond: impl Fn(&[RunRow]) -> bool,
) -> Vec<RunRow> {
    wait_until(what, within, Duration::from_millis(200), async || {
        let r = runs(s, suite).await;
        if cond(&r) {
            Ok(r)
        } else {
            Err(format!("runs: {r:#?}"))
        }
    })
    .await
}

fn completed(r: &[RunRow]) -> Vec<&RunRow> {
    r.iter().filter(|r| r.status == "completed").collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_suite_runs_on_time_and_picks_up_edits() {
    let sim = Sim::start(SCENARIO);
    for db in TestDb::all().await {
        let dir = project(
            sim.url(),
            &[("tick.yaml", &suite("tick", 1, "*/2 * * * * *", ""))],
        );
        let mut daemon = serve(dir.path(), &db.url);
        let s = store(&db.url).await;

        // On time: every 2 s, each run for its own tick, started right after it.
        let r = wait_for(
            &s,
            "tick",
            Duration::from_secs(10),
            "two scheduled runs",
            |r| completed(r).len() >= 2,
        )
        .await;
        for run in completed(&r) {
            let tick = run
                .scheduled_for_ms
                .expect("scheduled runs carry their tick");
            assert_eq!(run.trigger, "schedule");
            assert_eq!(tick % 2000, 0, "{run:?}");
            let late = run.started_ms - tick;
            assert!(
                (0..1500).contains(&late),
                "[{}] started {late} ms after its tick",
                db.backend
            );
            assert_eq!((run.passed, run.failed), (1, 0));
        }

        // Edited on disk: the new version runs without a restart.
        let path = dir.path().join("canaries/tick.yaml");
        std::fs::write(
            &path,
            suite("tick", 2, "*/2 * * * * *", "description: edited\n"),
        )
        .unwrap();
        let r = wait_for(
            &s,
            "tick",
            Duration::from_secs(8),
            "a run of version 2",
            |r| {
                r.iter()
                    .any(|r| r.suite_version == 2 && r.status == "completed")
            },
        )
        .await;
        let v2_hash = r
            .iter()
            .rev()
            .find(|r| r.suite_version == 2)
            .unwrap()
            .content_hash
            .clone();
        assert_ne!(v2_hash, r[0].content_hash);

        // Broken on disk: the last good version keeps running, the error is logged.
        std::fs::write(
            &path,
            "suite: tick\nversion: 3\ntargets: [pinned]\ncases: [\n",
        )
        .unwrap();
        let n = r.len();
        let r = wait_for(
            &s,
            "tick",
            Duration::from_secs(8),
            "runs after the file broke",
            |r| r.len() >= n + 2 && r.last().unwrap().status == "completed",
        )
        .await;
        assert!(
            r[n..]
                .iter()
                .all(|r| r.suite_version == 2 && r.content_hash == v2_hash),
            "{r:#?}"
        );
        assert!(
            daemon.stderr().contains("invalid suite file"),
            "{}",
            daemon.stderr()
        );

        // A new file is picked up; a removed one stops.
        std::fs::write(
            dir.path().join("canaries/new.yaml"),
            suite("new", 1, "* * * * * *", ""),
        )
        .unwrap();
        wait_for(
            &s,
            "new",
            Duration::from_secs(8),
            "runs of the added suite",
            |r| !completed(r).is_empty(),
        )
        .await;
        std::fs::remove_file(&path).unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let before = runs(&s, "tick").await.len();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(
            runs(&s, "tick").await.len(),
            before,
            "a removed suite is no longer scheduled"
        );
        assert!(
            daemon.stderr().contains("suite removed"),
            "{}",
            daemon.stderr()
        );

        daemon.signal("TERM");
        assert!(
            daemon
                .wait_exit(Duration::from_secs(20))
                .is_some_and(|s| s.success())
        );
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_run_never_overlaps_itself_and_shutdown_cancels_it() {
    // Every answer takes 2.5 s; the suite is scheduled every second.
    let sim = Sim::start("default:\n  latency_ms: { mean: 2500, jitter: 0 }\n");
    let dir = project(
        sim.url(),
        &[(
            "slow.yaml",
            &suite("slow", 1, "* * * * * *", "timeout_secs: 60\n"),
        )],
    );
    let db = TestDb::sqlite().await;
    let mut daemon = serve(dir.path(), &db.url);
    let s = store(&db.url).await;
    let r = wait_for(
        &s,
        "slow",
        Duration::from_secs(15),
        "two completed slow runs",
        |r| completed(r).len() >= 2,
    )
    .await;
    let done = completed(&r);
    for pair in done.windows(2) {
        assert!(
            pair[1].started_ms >= pair[0].finished_ms.unwrap(),
            "runs overlap: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        r.iter().filter(|r| r.status == "running").count() <= 1,
        "{r:#?}"
    );
    assert!(
        daemon.stderr().contains("tick skipped"),
        "{}",
        daemon.stderr()
    );

    // SIGTERM while a run is in flight: it is recorded as cancelled.
    wait_for(&s, "slow", Duration::from_secs(5), "a run in flight", |r| {
        r.last().is_some_and(|r| r.status == "running")
    })
    .await;
    daemon.signal("TERM");
    assert!(
        daemon
            .wait_exit(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
    let last = runs(&s, "slow").await.pop().unwrap();
    assert_eq!(last.status, "cancelled", "{last:?}");
    assert_eq!(last.note.as_deref(), Some("cancelled by shutdown"));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_catch_up_run_after_downtime() {
    let sim = Sim::start(SCENARIO);
    let dir = project(
        sim.url(),
        &[("hourly.yaml", &suite("hourly", 1, "0 * * * *", ""))],
    );
    let db = TestDb::sqlite().await;
    let hour = 3_600_000;
    let now = chrono::Utc::now().timestamp_millis();
    let current_tick = now - now.rem_euclid(hour);
    {
        // The last replica ran the tick of three hours ago, then went down.
        let s = Store::connect(&db.url).await.unwrap();
        s.migrate().await.unwrap();
        let id = s
            .start_run(&NewRun {
                suite: "hourly",
                suite_version: 1,
                content_hash: "old",
                trigger: RunTrigger::Schedule,
                scheduled_for_ms: Some(current_tick - 3 * hour),
                owner: "gone",
                now_ms: current_tick - 3 * hour,
            })
            .await
            .unwrap()
            .unwrap();
        s.finish_run(id, "completed", &[], current_tick - 3 * hour + 1000)
            .await
            .unwrap();
        // A replica died in the middle of the next tick's run.
        s.start_run(&NewRun {
            suite: "hourly",
            suite_version: 1,
            content_hash: "old",
            trigger: RunTrigger::Schedule,
            scheduled_for_ms: Some(current_tick - 2 * hour),
            owner: "dead",
            now_ms: current_tick - 2 * hour,
        })
        .await
        .unwrap()
        .unwrap();
        s.close().await;
    }
    let s = store(&db.url).await;
    for restart in 0..2 {
        let mut daemon = serve(dir.path(), &db.url);
        if restart == 0 {
            wait_for(
                &s,
                "hourly",
                Duration::from_secs(10),
                "the catch-up run",
                |r| {
                    r.iter()
                        .any(|r| r.trigger == "catchup" && r.status == "completed")
                },
            )
            .await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let r = runs(&s, "hourly").await;
        let catchups: Vec<_> = r.iter().filter(|r| r.trigger == "catchup").collect();
        assert_eq!(
            catchups.len(),
            1,
            "exactly one catch-up, not one per missed tick, not one per restart: {r:#?}"
        );
        let dead = r.iter().find(|r| r.owner == "dead").unwrap();
        assert_eq!(
            dead.status, "abandoned",
            "a run left running by a dead process is closed: {dead:?}"
        );
        let tick = catchups[0].scheduled_for_ms.unwrap();
        assert!(
            tick == current_tick || tick == current_tick + hour,
            "the latest missed tick: {r:#?}"
        );
        daemon.signal("TERM");
        assert!(daemon.wait_exit(Duration::from_secs(20)).is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_never_overlap_one_suite() {
    let sim = Sim::start("default:\n  latency_ms: { mean: 1500, jitter: 0 }\n");
    let dir = project(
        sim.url(),
        &[(
            "slow.yaml",
            &suite("slow", 1, "* * * * * *", "timeout_secs: 30\n"),
        )],
    );
    for db in TestDb::all().await {
        {
            // Migrate once before both replicas start.
            let s = Store::connect(&db.url).await.unwrap();
            s.migrate().await.unwrap();
            s.close().await;
        }
        let mut a = serve(dir.path(), &db.url);
        let mut b = serve(dir.path(), &db.url);
        let s = store(&db.url).await;
        let r = wait_for(
            &s,
            "slow",
            Duration::from_secs(20),
            "three completed runs",
            |r| completed(r).len() >= 3,
        )
        .await;
        let done = completed(&r);
        for pair in done.windows(2) {
            assert!(
                pair[1].started_ms >= pair[0].finished_ms.unwrap(),
                "[{}] runs overlap across replicas: {:?} and {:?}",
                db.backend,
                pair[0],
                pair[1]
            );
        }
        let ticks: std::collections::BTreeSet<_> = r.iter().map(|r| r.scheduled_for_ms).collect();
        assert_eq!(ticks.len(), r.len(), "each tick runs once");
        for d in [&mut a, &mut b] {
            d.signal("TERM");
            assert!(d.wait_exit(Duration::from_secs(20)).is_some());
        }
        s.close().await;
    }
}
