//! The ingest write path on both backends: roll-ups maintained in the same
//! transaction, duplicates counted once, precomputed scores stored, judge
//! jobs enqueued within the hourly floor and cap.

use crate::support::TestDb;
use canaryd::ingest::{Record, prepare};
use canaryd::judge::JudgingConfig;
use canaryd::on_db;
use canaryd::store::{JobPlan, Store};

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

fn rec(id: &str, ts_ms: i64, output: &str, tokens: i64) -> Record {
    Record {
        id: Some(id.into()),
        timestamp_ms: Some(ts_ms),
        stream: "bot".into(),
        output: output.into(),
        output_tokens: Some(tokens),
        ..Default::default()
    }
}

async fn scalar(store: &Store, sql: &'static str) -> f64 {
    on_db!(store.db(), pool => {
        let v: (f64,) = sqlx::query_as(sql).fetch_one(pool).await.unwrap();
        v.0
    })
}

#[tokio::test]
async fn rollups_follow_inserts_and_ignore_duplicates() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let b = db.backend;
        let hour = 3_600_000 * 10;
        let mut r1 = rec("a", hour + 5, "I'm sorry, but I can't help with that.", 10);
        r1.scores.insert("groundedness".into(), 4.0);
        r1.embedding = Some(vec![1.0, 0.0]);
        let mut r2 = rec("b", hour + 6, "Sure, here it is.", 30);
        r2.finish_reason = Some("length".into());
        r2.scores.insert("groundedness".into(), 2.0);
        r2.embedding = Some(vec![0.0, 1.0]);
        let r3 = rec("c", hour + 3_600_000, "Next hour.", 2000);
        let cfg = JudgingConfig::default();
        let rows = prepare(&[r1.clone(), r2.clone(), r3, r1.clone()], hour, &cfg);
        let out = store.insert_responses(&rows).await.unwrap();
        assert_eq!((out.accepted, out.duplicates), (3, 1), "{b}");
        // The same records again: all duplicates, roll-ups unchanged.
        let out = store.insert_responses(&rows[..2]).await.unwrap();
        assert_eq!((out.accepted, out.duplicates), (0, 2), "{b}");

        assert_eq!(
            scalar(
                &store,
                "SELECT CAST(SUM(n) AS DOUBLE PRECISION) FROM rollup_hourly"
            )
            .await,
            3.0,
            "{b}"
        );
        let (n, refusals, trunc, sum, sumsq): (i64, i64, i64, f64, f64) = on_db!(store.db(), pool => sqlx::query_as(
            "SELECT n, refusals, truncations, tokens_sum, tokens_sumsq FROM rollup_hourly WHERE stream = 'bot' AND hour_ms = 36000000")
            .fetch_one(pool).await.unwrap());
        assert_eq!(
            (n, refusals, trunc, sum, sumsq),
            (2, 1, 1, 40.0, 1000.0),
            "{b}"
        );
        let bins: Vec<(i64, i64, i64)> = on_db!(store.db(), pool => sqlx::query_as(
            "SELECT hour_ms, bin, n FROM rollup_length ORDER BY hour_ms, bin").fetch_all(pool).await.unwrap());
        assert_eq!(
            bins,
            vec![(hour, 0, 1), (hour, 1, 1), (hour + 3_600_000, 63, 1)],
            "{b}"
        );
        let (sn, ssum, ssq): (i64, f64, f64) = on_db!(store.db(), pool => sqlx::query_as(
            "SELECT n, sum, sumsq FROM rollup_scores WHERE stream = 'bot' AND judge = 'groundedness'").fetch_one(pool).await.unwrap());
        assert_eq!((sn, ssum, ssq), (2, 6.0, 20.0), "{b}");
        let pre: Vec<(String, f64)> = on_db!(store.db(), pool => sqlx::query_as(
            "SELECT source, score FROM judge_scores ORDER BY score").fetch_all(pool).await.unwrap());
        assert_eq!(
            pre,
            vec![("precomputed".into(), 2.0), ("precomputed".into(), 4.0)],
            "{b}"
        );
        let emb: Vec<(i64, i64, Vec<u8>)> = on_db!(store.db(), pool => sqlx::query_as(
            "SELECT n, dims, sum FROM rollup_embedding").fetch_all(pool).await.unwrap());
        assert_eq!(
            emb.len(),
            1,
            "{b}: one partial-sum row per batch and (stream, hour)"
        );
        assert_eq!((emb[0].0, emb[0].1), (2, 2));
        assert_eq!(
            canaryd::store::rollups::f64_from_bytes(&emb[0].2),
            vec![1.0, 1.0]
        );
        store.close().await;
    }
}

#[tokio::test]
async fn sampling_respects_hourly_floor_and_cap() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let b = db.backend;
        // Rate 0: only the floor picks records; rate 1: the cap limits them.
        for (rate, floor, cap, expect_sampled, stream) in
            [(0.0, 3, 100, 3, "low"), (1.0, 0, 7, 7, "high")]
        {
            let cfg = JudgingConfig {
                sample_rate: rate,
                ..Default::default()
            };
            let recs: Vec<Record> = (0..20)
                .map(|i| Record {
                    stream: stream.into(),
                    ..rec(&format!("{stream}{i}"), 1000 + i, "ok", 1)
                })
                .collect();
            let mut rows = prepare(&recs, 5000, &cfg);
            for r in &mut rows {
                r.judges = vec!["completion".to_string(), "consistency".to_string()];
            }
            let fc = move |_: &str| (floor, cap);
            let plan = JobPlan {
                floor_cap: &fc,
                now_ms: 5000,
            };
            // Two batches: the counter carries over between them.
            let first = store
                .ingest_responses(&rows[..10], Some(&plan))
                .await
                .unwrap();
            let second = store
                .ingest_responses(&rows[10..], Some(&plan))
                .await
                .unwrap();
            assert_eq!(first.jobs + second.jobs, 2 * expect_sampled, "{b} {stream}");
            let sampled: (i64,) = on_db!(store.db(), pool => sqlx::query_as(
                "SELECT COUNT(*) FROM responses WHERE sampled AND stream = $1").bind(stream).fetch_one(pool).await.unwrap());
            assert_eq!(
                sampled.0 as u64, expect_sampled,
                "{b} {stream}: sampled flag matches the jobs"
            );
        }
        store.close().await;
    }
}
