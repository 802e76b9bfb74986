//! Detector evaluation cost: every detector for 20 streams over a 7-day
//! baseline plus a 1-day window, first with roll-ups summarising 1,000,000
//! records, then 2,000,000. Roll-ups are per hour, so the time should stay
//! nearly flat as records double.
//!
//! Run: `cargo bench --bench detectors`

use std::time::Instant;

use canaryd::signals::synth::{Gen, count_hours, embedding_hours, score_hours};
use canaryd::signals::{DetectorConfig, evaluate_snapshot};
use canaryd::store::Store;

const HOUR_MS: i64 = 3_600_000;
const STREAMS: usize = 20;
const HOURS: i64 = 192;
const NOW: i64 = 1_772_323_200_000 + HOURS * HOUR_MS;

/// Writes the roll-ups of `records` records spread over 20 streams × 192 h.
async fn fill(store: &Store, records: u64) {
    let per_hour = (records / (STREAMS as u64 * HOURS as u64)) as u32;
    let from = NOW - HOURS * HOUR_MS;
    let canaryd::store::Db::Sqlite(pool) = store.db() else {
        unreachable!()
    };
    let mut tx = pool.begin().await.unwrap();
    for s in 0..STREAMS {
        let stream = format!("stream-{s:02}");
        let mut g = Gen::new(s as u64);
        let (hours, lengths) = count_hours(
            &mut g,
            from,
            NOW,
            per_hour,
            |_| (0.03, 0.01),
            |_| 120.0,
            40.0,
        );
        // Judges score a sample, as in production (about 5 %).
        let scores = score_hours(&mut g, from, NOW, (per_hour / 20).max(1), 3.8, |_| 0.0);
        let emb = embedding_hours(&mut g, from, NOW, per_hour / 10, |_| &[0, 1, 2]);
        for (h, c) in &hours {
            sqlx::query("INSERT INTO rollup_hourly VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&stream)
                .bind(h)
                .bind(c.n as i64)
                .bind(c.refusals as i64)
                .bind(c.truncations as i64)
                .bind(c.tokens.sum)
                .bind(c.tokens.sumsq)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        for (h, bins) in &lengths {
            for (b, n) in bins.iter().enumerate().filter(|(_, n)| **n > 0) {
                sqlx::query("INSERT INTO rollup_length VALUES ($1, $2, $3, $4)")
                    .bind(&stream)
                    .bind(h)
                    .bind(b as i64)
                    .bind(*n as i64)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
        }
        for (h, m) in &scores {
            sqlx::query("INSERT INTO rollup_scores VALUES ($1, 'groundedness', $2, $3, $4, $5)")
                .bind(&stream)
                .bind(h)
                .bind(m.n as i64)
                .bind(m.sum)
                .bind(m.sumsq)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        for (h, e) in &emb {
            let blob: Vec<u8> = e.sum.iter().flat_map(|x| x.to_le_bytes()).collect();
            sqlx::query("INSERT INTO rollup_embedding (stream, hour_ms, n, dims, sum) VALUES ($1, $2, $3, $4, $5)")
                .bind(&stream).bind(h).bind(e.n as i64).bind(e.sum.len() as i64).bind(blob).execute(&mut *tx).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

async fn measure(records: u64) -> (f64, f64, usize) {
    let dir = std::env::temp_dir().join(format!("canaryd-bench-{}-{records}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.join("bench.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    fill(&store, records).await;
    let cfg = DetectorConfig::default();
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let snap = store.detector_snapshot(NOW, &cfg).await.unwrap();
        let findings = evaluate_snapshot(&snap, NOW, &cfg);
        times.push(t.elapsed().as_secs_f64());
        n = findings.len();
    }
    times.sort_by(f64::total_cmp);
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    (times[times.len() / 2], times[times.len() - 1], n)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("detector_snapshot + evaluate_snapshot: 20 streams, 7-day baseline + 24 h window, SQLite");
        for records in [1_000_000u64, 2_000_000] {
            let (median, max, findings) = measure(records).await;
            println!(
                "  {records:>9} records: median {:>7.1} ms, max {:>7.1} ms ({findings} findings)",
                median * 1e3,
                max * 1e3
            );
        }
    });
}
