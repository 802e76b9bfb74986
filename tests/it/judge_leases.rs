//! No paid judge work done twice: leases renewed while a call is in
//! flight, every claim counted towards `max_attempts`, reservations of dead
//! workers given back, the spend charged as reported, and precomputed
//! scores never judged again.

use std::time::Duration;

use crate::support::canary::{Sim, project};
use crate::support::{TestDaemon, TestDb, wait_until};
use canaryd::ingest::{Record, prepare};
use canaryd::judge::JudgingConfig;
use canaryd::store::{JobPlan, Store};

async fn one_job(store: &Store) {
    let cfg = JudgingConfig {
        sample_rate: 1.0,
        ..Default::default()
    };
    let rec = Record {
        id: Some("lease-1".into()),
        stream: "s".into(),
        output: "ok".into(),
        ..Default::default()
    };
    let mut rows = prepare(&[rec], 1_000, &cfg);
    rows[0].judges = vec!["completion".to_string()];
    let fc = |_: &str| (0, 100);
    let plan = JobPlan {
        floor_cap: &fc,
        now_ms: 1_000,
    };
    assert_eq!(
        store
            .ingest_responses(&rows, Some(&plan))
            .await
            .unwrap()
            .jobs,
        1
    );
}

#[tokio::test]
async fn expired_leases_give_their_reservation_back_and_park_after_max_attempts() {
    for db in TestDb::all().await {
        let b = db.backend;
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        one_job(&store).await;
        let day = 0;
        // Worker A claims (attempt 1), reserves 1,000 tokens, and dies.
        let a = store
            .claim_judge_jobs("a", 2_000, 1_000, 10, 2)
            .await
            .unwrap();
        assert_eq!(a.len(), 1, "{b}");
        assert!(
            store
                .reserve_job_spend(&a[0], "a", 2_000, 1_000, 0.5, 10_000, 10.0)
                .await
                .unwrap()
        );
        assert_eq!(
            store.judge_spend(day + 2_000).await.unwrap(),
            (1_000, 0.5),
            "{b}"
        );
        // A heartbeat keeps the lease: B finds nothing to claim.
        store
            .renew_judge_leases("a", &[a[0].id], 4_000)
            .await
            .unwrap();
        assert!(
            store
                .claim_judge_jobs("b", 3_500, 1_000, 10, 2)
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        // Past the renewed lease, B takes it over (attempt 2) and A's
        // reservation is given back: nothing was reported for it.
        let bj = store
            .claim_judge_jobs("b", 4_001, 1_000, 10, 2)
            .await
            .unwrap();
        assert_eq!((bj.len(), bj[0].attempts), (1, 2), "{b}");
        assert_eq!(store.judge_spend(4_001).await.unwrap(), (0, 0.0), "{b}");
        // A comes back late and settles what it was charged: its reservation
        // is not given back a second time.
        store
            .settle_job_spend(&a[0], "a", 4_100, 300, 0.1)
            .await
            .unwrap();
        assert_eq!(store.judge_spend(4_100).await.unwrap().0, 300, "{b}");
        // B reserves and dies too: with max_attempts 2 the job is parked as
        // failed with its last error, and B's reservation is given back.
        assert!(
            store
                .reserve_job_spend(&bj[0], "b", 4_200, 700, 0.2, 10_000, 10.0)
                .await
                .unwrap()
        );
        assert_eq!(store.judge_spend(4_200).await.unwrap().0, 1_000, "{b}");
        assert!(
            store
                .claim_judge_jobs("c", 9_000, 1_000, 10, 2)
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        assert_eq!(store.judge_spend(9_000).await.unwrap().0, 300, "{b}");
        let counts = store.judge_job_counts().await.unwrap();
        assert_eq!(
            (counts.failed, counts.running, counts.pending),
            (1, 0, 0),
            "{b}"
        );
        let err: (Option<String>, i64) = canaryd::on_db!(store.db(), pool => sqlx::query_as(
            "SELECT last_error, attempts FROM judge_jobs").fetch_one(pool).await.unwrap());
        assert!(
            err.0
                .as_deref()
                .unwrap_or("")
                .contains("lease expired on attempt 2"),
            "{b}: {err:?}"
        );
        assert_eq!(err.1, 2, "{b}: no claim beyond max_attempts");
        store.close().await;
    }
}

#[tokio::test]
async fn a_held_reservation_is_replaced_by_the_reported_cost() {
    let db = TestDb::sqlite().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    one_job(&store).await;
    let j = store
        .claim_judge_jobs("a", 2_000, 60_000, 10, 5)
        .await
        .unwrap();
    assert!(
        store
            .reserve_job_spend(&j[0], "a", 2_000, 5_000, 1.0, 10_000, 10.0)
            .await
            .unwrap()
    );
    // A provider error that reported nothing costs nothing.
    store
        .settle_job_spend(&j[0], "a", 2_500, 0, 0.0)
        .await
        .unwrap();
    assert_eq!(store.judge_spend(2_500).await.unwrap(), (0, 0.0));
    store.close().await;
}

const SLOW_JUDGE: &str = r#"
default:
  answers:
    - match: "capital"
      answer: "Paris is the capital of France."
models:
  judge-mini:
    latency_ms: { mean: 2500, jitter: 0 }
"#;

/// The finding: two replicas, a 2 s lease, a judge answering in 3 s — jobs
/// were reclaimed while their call was in flight, 32 claims each, 156 paid
/// calls for 20 scores. With the heartbeat every job is claimed once.
#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_with_a_lease_shorter_than_the_call_claim_each_job_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let sim = Sim::start(SLOW_JUDGE);
    let dir = project(sim.url(), &[]);
    let cfg_path = dir.path().join("canaryd.yaml");
    let cfg = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("timeout_secs: 2", "timeout_secs: 10");
    std::fs::write(
        &cfg_path,
        format!("{cfg}detectors: {{ every_secs: 0 }}\njudging: {{ sample_rate: 1.0, floor_per_hour: 0, cap_per_hour: 100000, concurrency: 4, lease_secs: 1, max_attempts: 5, canary_interval_secs: 0, daily_budget_tokens: 1000000000, daily_budget_usd: 1000000.0 }}\n"),
    )
    .unwrap();
    {
        let s = Store::connect(&db.url).await.unwrap();
        s.migrate().await.unwrap();
        s.close().await;
    }
    let env = [("CANARYD_DATABASE_URL", db.url.as_str())];
    let a = TestDaemon::start(dir.path(), &[], &env);
    let _b = TestDaemon::start(dir.path(), &[], &env);
    // 6 records; half carry a precomputed groundedness score, which must not
    // be judged again. Each has input and context, so all three judges apply.
    let body: Vec<String> = (0..6)
        .map(|i| {
            let mut r = serde_json::json!({
                "id": format!("slow-{i}"),
                "stream": "support-bot",
                "input": format!("When did order {i} ship?"),
                "context": [format!("Order {i} shipped on Monday.")],
                "output": format!("Order {i} shipped on Monday."),
            });
            if i % 2 == 0 {
                r["scores"] = serde_json::json!({"groundedness": 4.5});
            }
            r.to_string()
        })
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/responses", a.base_url))
        .body(body.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM judge_jobs").await,
        15,
        "6 records × 3 judges, less the 3 precomputed groundedness scores"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM judge_jobs j JOIN responses r ON r.id = j.response_id WHERE j.judge = 'groundedness' AND r.ext_id IN ('slow-0', 'slow-2', 'slow-4')").await,
        0
    );
    wait_until(
        "the jobs to finish",
        Duration::from_secs(60),
        Duration::from_millis(250),
        async || {
            let open =
                count("SELECT COUNT(*) FROM judge_jobs WHERE status IN ('pending', 'running')")
                    .await;
            if open == 0 {
                return Ok(());
            }
            let rows: Vec<(i64, String, i64, Option<i64>)> =
                sqlx::query_as(
                    "SELECT id, status, attempts, lease_expires_ms FROM judge_jobs WHERE status IN ('pending', 'running')",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
            Err(format!(
                "{open} jobs open at {}: {rows:?}",
                chrono::Utc::now().timestamp_millis()
            ))
        },
    )
    .await;
    assert_eq!(
        count("SELECT COUNT(*) FROM judge_jobs WHERE status = 'done'").await,
        15
    );
    assert_eq!(
        count("SELECT COALESCE(MAX(attempts), 0) FROM judge_jobs").await,
        1,
        "a job whose call outlasts the lease is not claimed again while it runs"
    );
    // The day's spend is what the provider reported, nothing more.
    let reported = count("SELECT CAST(SUM(input_tokens + output_tokens) AS BIGINT) FROM judge_scores WHERE source = 'judge'").await;
    let charged = count("SELECT CAST(SUM(tokens) AS BIGINT) FROM judge_spend").await;
    assert_eq!(charged, reported);
}
