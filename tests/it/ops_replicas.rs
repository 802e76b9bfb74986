//! Two `canaryd serve` replicas on one PostgreSQL database: every scheduled
//! tick of every suite runs exactly once, every judge job is scored exactly
//! once, and a replica killed with SIGKILL in the middle of judging loses no
//! job (its leases expire and the survivor takes the work over).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::canary::{Sim, project};
use crate::support::{TestDaemon, TestDb, wait_until};
use sqlx::PgPool;

/// Judge calls take 250 ms, so the jobs keep two replicas (4 calls each in
/// flight) busy for at least 8 s: long enough to kill one mid-work.
const SCENARIO: &str = r#"
default:
  answers:
    - match: "capital"
      answer: "Paris is the capital of France."
models:
  judge-mini:
    latency_ms: { mean: 250, jitter: 0 }
"#;

/// Every record judged, short leases so a dead replica's jobs come back fast.
const JUDGING: &str = "judging: { sample_rate: 1.0, floor_per_hour: 0, cap_per_hour: 100000, concurrency: 4, lease_secs: 3, canary_interval_secs: 0, daily_budget_tokens: 1000000000, daily_budget_usd: 1000000.0 }\n";

const TICK_MS: i64 = 2000;
const RECORDS: usize = 90;
/// Every record has input and context, so all three shipped judges apply.
const JOBS: i64 = 3 * RECORDS as i64;

fn suite(name: &str) -> String {
    format!(
        "suite: {name}\nversion: 1\nschedule: \"*/2 * * * * *\"\ntargets: [pinned]\ntimeout_secs: 10\ncases:\n  - id: capital\n    prompt: What is the capital of France?\n    expect: [{{ contains: Paris }}]\n"
    )
}

fn records(n: usize) -> String {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("rec-{i}"),
                "stream": "support-bot",
                "input": format!("When did order {i} ship?"),
                "context": [format!("Order {i} shipped on Monday.")],
                "output": format!("Order {i} shipped on Monday."),
                "finish_reason": "stop",
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Scheduled ticks per suite, with how many runs each got.
async fn ticks(pool: &PgPool) -> BTreeMap<String, BTreeMap<i64, i64>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT suite, scheduled_for_ms, COUNT(*) FROM canary_runs WHERE trigger = 'schedule' GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    for (suite, tick, n) in rows {
        out.entry(suite).or_default().insert(tick, n);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_ticks_and_judge_jobs_and_survive_a_sigkill() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let sim = Sim::start(SCENARIO);
    let dir = project(
        sim.url(),
        &[("a.yaml", &suite("a")), ("b.yaml", &suite("b"))],
    );
    let cfg_path = dir.path().join("canaryd.yaml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, format!("{cfg}{JUDGING}")).unwrap();
    {
        let s = canaryd::store::Store::connect(&db.url).await.unwrap();
        s.migrate().await.unwrap();
        s.close().await;
    }
    let env = [("CANARYD_DATABASE_URL", db.url.as_str())];
    let a = TestDaemon::start(dir.path(), &[], &env);
    let mut b = TestDaemon::start(dir.path(), &[], &env);
    let pool = PgPool::connect(&db.url).await.unwrap();
    let started = chrono::Utc::now().timestamp_millis();

    // 90 records × 3 judges (every record has input and context).
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/responses", a.base_url))
        .body(records(RECORDS))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let jobs = count(&pool, "SELECT COUNT(*) FROM judge_jobs").await;
    assert_eq!(jobs, JOBS, "one job per (record, judge)");

    // SIGKILL B while it holds claimed jobs, between two ticks (runs take
    // milliseconds, so it holds no suite lease that would pause a suite).
    // Only jobs claimed in the last 100 ms count: a judge call takes 250 ms,
    // so they are still held when the signal lands, even when other tests
    // load the machine and starting `kill` takes tens of milliseconds.
    let b_owner = format!("%:{}:%", b.child.id());
    let lease_ms = 3000;
    let every = Duration::from_millis(20);
    wait_until(
        "replica B to claim jobs",
        Duration::from_secs(20),
        every,
        async || {
            let now = chrono::Utc::now().timestamp_millis();
            let mid_tick = (now.rem_euclid(TICK_MS) - TICK_MS / 2).abs() < 300;
            let held: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM judge_jobs WHERE status = 'running' AND lease_owner LIKE $1 AND lease_expires_ms > $2",
            )
            .bind(&b_owner)
            .bind(now + lease_ms - 100)
            .fetch_one(&pool)
            .await
            .unwrap();
            if held > 0 && mid_tick && now - started > 2 * TICK_MS {
                Ok(())
            } else {
                Err(format!("replica B never claimed jobs ({held} held)"))
            }
        },
    )
    .await;
    b.signal("KILL");
    let killed_at = chrono::Utc::now().timestamp_millis();
    assert!(b.wait_exit(Duration::from_secs(5)).is_some());
    let orphaned = count(
        &pool,
        &format!(
            "SELECT COUNT(*) FROM judge_jobs WHERE status = 'running' AND lease_owner LIKE '{b_owner}'"
        ),
    )
    .await;

    // Every job is eventually done by the survivor, within a bounded time.
    let every = Duration::from_millis(250);
    let drained_after_ms = wait_until(
        "the jobs to drain",
        Duration::from_secs(40),
        every,
        async || {
            let open = count(
                &pool,
                "SELECT COUNT(*) FROM judge_jobs WHERE status IN ('pending', 'running')",
            )
            .await;
            if open == 0 {
                Ok(chrono::Utc::now().timestamp_millis() - killed_at)
            } else {
                Err(format!(
                    "{open} judge jobs still open 40 s after the kill; survivor log:\n{}",
                    a.stderr()
                ))
            }
        },
    )
    .await;
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM judge_jobs WHERE status = 'done'"
        )
        .await,
        JOBS,
        "every job scored (none failed or skipped)"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM judge_scores WHERE source = 'judge' AND score IS NOT NULL"
        )
        .await,
        JOBS,
        "one score per job"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM (SELECT response_id, judge FROM judge_scores WHERE source = 'judge' GROUP BY 1, 2 HAVING COUNT(*) > 1) d"
        )
        .await,
        0
    );
    assert!(orphaned > 0, "B was killed holding jobs");
    let reclaimed = count(&pool, "SELECT COUNT(*) FROM judge_jobs WHERE attempts > 1").await;
    assert!(
        reclaimed >= orphaned,
        "the {orphaned} jobs B held were claimed again ({reclaimed} retried)"
    );
    let by_a = count(
        &pool,
        &format!(
            "SELECT COUNT(*) FROM judge_jobs WHERE lease_owner LIKE '%:{}:%'",
            a.child.id()
        ),
    )
    .await;
    eprintln!(
        "jobs: {JOBS}, held by B at SIGKILL: {orphaned}, finished by A: {by_a}, all done {drained_after_ms} ms after the kill"
    );

    // A few more ticks after the kill, then the tick table.
    tokio::time::sleep(Duration::from_millis(3 * TICK_MS as u64)).await;
    let end = chrono::Utc::now().timestamp_millis() - TICK_MS;
    let per_suite = ticks(&pool).await;
    for name in ["a", "b"] {
        let t = per_suite
            .get(name)
            .unwrap_or_else(|| panic!("suite {name} never ran: {per_suite:?}"));
        assert!(
            t.values().all(|&n| n == 1),
            "{name}: a tick ran twice: {t:?}"
        );
        // Every tick from the first one after both started to the last one
        // checked ran, before and after the kill.
        let first = t.keys().copied().find(|&k| k > started + TICK_MS).unwrap();
        let expected: Vec<i64> = (0..)
            .map(|i| first + i * TICK_MS)
            .take_while(|&k| k <= end)
            .collect();
        let missing: Vec<_> = expected.iter().filter(|k| !t.contains_key(k)).collect();
        assert!(
            missing.is_empty(),
            "{name}: ticks {missing:?} did not run (kill at {killed_at}); ran {t:?}"
        );
        assert!(
            expected.iter().filter(|&&k| k > killed_at).count() >= 2,
            "{name}: the survivor ran ticks after the kill"
        );
        eprintln!(
            "suite {name}: {} consecutive ticks, each run once",
            expected.len()
        );
    }
    pool.close().await;
    drop(a);
}
