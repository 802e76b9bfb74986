//! The judge queue and spend budget at the storage level, on both backends.

use crate::support::TestDb;
use canaryd::ingest::{Record, prepare};
use canaryd::judge::JudgingConfig;
use canaryd::store::{JobPlan, JudgeOutcome, Store};

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

#[tokio::test]
async fn claims_are_exclusive_leases_and_expired_leases_are_reclaimed() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let b = db.backend;
        let cfg = JudgingConfig {
            sample_rate: 1.0,
            ..Default::default()
        };
        let recs: Vec<Record> = (0..4)
            .map(|i| Record {
                id: Some(format!("q{i}")),
                stream: "s".into(),
                output: "ok".into(),
                ..Default::default()
            })
            .collect();
        let mut rows = prepare(&recs, 1_000, &cfg);
        for r in &mut rows {
            r.judges = vec!["completion".to_string()];
        }
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
            4,
            "{b}"
        );

        let a = store.claim_judge_jobs("a", 2_000, 1_000, 3).await.unwrap();
        let bjobs = store.claim_judge_jobs("b", 2_000, 1_000, 3).await.unwrap();
        assert_eq!(
            (a.len(), bjobs.len()),
            (3, 1),
            "{b}: each job is taken once"
        );
        assert!(
            store
                .claim_judge_jobs("c", 2_500, 1_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // b finishes; a dies. After a's lease expires, c takes a's jobs over.
        let out = JudgeOutcome {
            judge_version: 1,
            score: Some(4.0),
            ..Default::default()
        };
        assert!(
            store
                .finish_judge_job(&bjobs[0], "b", &out, "done", 2_100)
                .await
                .unwrap()
        );
        let c = store.claim_judge_jobs("c", 3_001, 1_000, 10).await.unwrap();
        assert_eq!(c.len(), 3, "{b}: expired leases are reclaimed");
        assert!(c.iter().all(|j| j.attempts == 2));
        // The dead worker coming back cannot finish (or score) a job it lost.
        assert!(
            !store
                .finish_judge_job(&a[0], "a", &out, "done", 3_100)
                .await
                .unwrap(),
            "{b}"
        );
        for j in &c {
            assert!(
                store
                    .finish_judge_job(j, "c", &out, "done", 3_200)
                    .await
                    .unwrap()
            );
        }
        let counts = store.judge_job_counts().await.unwrap();
        assert_eq!(
            (counts.done, counts.pending, counts.running),
            (4, 0, 0),
            "{b}"
        );
        store.close().await;
    }
}

#[tokio::test]
async fn the_daily_budget_is_never_exceeded() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let b = db.backend;
        let day = 86_400_000 * 20_000;
        let mut granted = 0;
        for _ in 0..10 {
            if store
                .reserve_judge_spend(day + 5, 300, 0.01, 1_000, 1.0)
                .await
                .unwrap()
            {
                granted += 1;
            }
        }
        assert_eq!(granted, 3, "{b}: 3 × 300 tokens fit in 1,000");
        assert_eq!(store.judge_spend(day + 9).await.unwrap().0, 900);
        // The USD budget binds too.
        assert!(
            !store
                .reserve_judge_spend(day + 5, 1, 2.0, 1_000, 1.0)
                .await
                .unwrap(),
            "{b}"
        );
        // Correcting to actual usage frees room; a new day starts empty.
        store.adjust_judge_spend(day + 5, -200, 0.0).await.unwrap();
        assert!(
            store
                .reserve_judge_spend(day + 5, 300, 0.01, 1_000, 1.0)
                .await
                .unwrap(),
            "{b}"
        );
        assert!(
            store
                .reserve_judge_spend(day + 86_400_000, 1_000, 0.5, 1_000, 1.0)
                .await
                .unwrap(),
            "{b}"
        );
        store.close().await;
    }
}
