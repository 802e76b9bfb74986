//! A realistic, hostile data set for the status-page tests: two streams (one
//! named like an XSS payload) with a week of baseline roll-ups, a degraded
//! last six hours after a model change, judged responses whose text is
//! HTML, and a canary suite whose live target starts failing.
//!
//! Roll-ups are written with SQL here because in this build nothing else
//! writes them yet (the ingest and judging branches will).
#![allow(dead_code)]

use canaryd::on_db;
use canaryd::store::{CaseResultRow, ModelIdentity, NewRun, ResponseRow, RunTrigger, Store};

pub const HOUR_MS: i64 = 3_600_000;
pub const STREAM: &str = "chat/support v2";
pub const HOSTILE: &str = "<script>alert(1)</script>";
pub const XSS_OUTPUT: &str = "<img src=x onerror=alert(1)>";
pub const SUITE: &str = "facts";
pub const JUDGES: [&str; 2] = ["groundedness", "helpfulness"];

/// What the seeding created, for the assertions.
pub struct Seeded {
    /// A judged response of `STREAM` whose output is `XSS_OUTPUT`.
    pub xss_response: i64,
    /// The lowest-scored response of `STREAM`.
    pub worst_response: i64,
}

fn unit(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes roll-ups for `stream` from eight days ago to now; the last six
/// hours are degraded when `degrade` is set.
async fn rollups(store: &Store, stream: &str, now_ms: i64, degrade: bool) {
    let last = now_ms.div_euclid(HOUR_MS) * HOUR_MS;
    let first = last - 8 * 24 * HOUR_MS;
    on_db!(store.db(), pool => {
        let mut tx = pool.begin().await.unwrap();
        let mut h = first;
        let mut i = 0i64;
        while h <= last {
            let bad = degrade && h > last - 6 * HOUR_MS;
            let wobble = (i % 5) as f64 * 0.04;
            let n = 80 + (i % 7) * 5;
            let refusals = if bad { n / 4 } else { n / 25 + i % 3 };
            let (short, long) = if bad { (n * 6 / 10, n / 10) } else { (n / 10, n * 5 / 10) };
            sqlx::query("INSERT INTO rollup_hourly (stream, hour_ms, n, refusals, truncations, tokens_sum, tokens_sumsq) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(stream).bind(h).bind(n).bind(refusals).bind(i % 2).bind(120.0 * n as f64).bind(20000.0 * n as f64)
                .execute(&mut *tx).await.unwrap();
            for (bin, k) in [(0, short / 2), (1, short - short / 2), (3, n - short - long), (5, long / 2), (6, long - long / 2)] {
                sqlx::query("INSERT INTO rollup_length (stream, hour_ms, bin, n) VALUES ($1, $2, $3, $4)")
                    .bind(stream).bind(h).bind(bin as i64).bind(k).execute(&mut *tx).await.unwrap();
            }
            for (j, judge) in JUDGES.iter().enumerate() {
                let mean = if bad { 3.1 } else { 4.1 + wobble - j as f64 * 0.3 };
                let sd = 0.6;
                let k = 12i64;
                sqlx::query("INSERT INTO rollup_scores (stream, judge, hour_ms, n, sum, sumsq) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(stream).bind(*judge).bind(h).bind(k).bind(mean * k as f64).bind(k as f64 * (sd * sd + mean * mean))
                    .execute(&mut *tx).await.unwrap();
            }
            let angle: f64 = if bad { 0.9 } else { 0.05 * (i % 4) as f64 };
            let v = [angle.cos() * n as f64, angle.sin() * n as f64, 0.1 * n as f64];
            sqlx::query("INSERT INTO rollup_embedding (stream, hour_ms, n, dims, sum) VALUES ($1, $2, $3, $4, $5)")
                .bind(stream).bind(h).bind(n).bind(3i64).bind(unit(&v)).execute(&mut *tx).await.unwrap();
            h += HOUR_MS;
            i += 1;
        }
        tx.commit().await.unwrap();
    });
}

async fn score(
    store: &Store,
    response_id: i64,
    stream: &str,
    ts_ms: i64,
    judge: &str,
    score: f64,
    reasoning: &str,
) {
    on_db!(store.db(), pool => {
        sqlx::query("INSERT INTO judge_scores (response_id, stream, ts_ms, judge, judge_version, judge_model, score, reasoning, source, created_ms) \
                     VALUES ($1, $2, $3, $4, 1, 'gpt-4o-mini', $5, $6, 'judge', $3)")
            .bind(response_id).bind(stream).bind(ts_ms).bind(judge).bind(score).bind(reasoning)
            .execute(pool).await.unwrap();
    });
}

/// Responses (with judge scores) in the current window of `stream`.
async fn responses(store: &Store, stream: &str, now_ms: i64) -> Vec<(i64, String)> {
    let rows: Vec<ResponseRow> = (0..12)
        .map(|i| ResponseRow {
            ext_id: Some(format!("{stream}-{i}")),
            stream: stream.into(),
            ts_ms: now_ms - (i + 1) * 1_800_000,
            received_ms: now_ms,
            request_model: Some("gpt-4o".into()),
            response_model: Some(if i < 6 { "gpt-4o-2024-11-20" } else { "gpt-4o-2024-08-06" }.into()),
            system_fingerprint: Some(format!("fp_{}", if i < 6 { "b" } else { "a" })),
            input: Some(
                serde_json::json!([
                    {"role": "system", "content": "You are the support bot."},
                    {"role": "user", "content": format!("Question {i}: how do I reset my password? <b>now</b>")}
                ])
                .to_string(),
            ),
            context: Some(serde_json::json!(["Passwords are reset from Settings.", {"text": "Support hours: 9-17."}]).to_string()),
            output: if i == 0 { XSS_OUTPUT.into() } else { format!("Answer {i}: open Settings, then Security.") },
            finish_reason: Some(if i == 2 { "length" } else { "stop" }.into()),
            input_tokens: Some(40),
            output_tokens: 20 + i,
            latency_ms: Some(800),
            refusal: i == 3,
            sampled: true,
            ..Default::default()
        })
        .collect();
    store.insert_responses(&rows).await.unwrap();
    let ids: Vec<(i64, String)> = on_db!(store.db(), pool => sqlx::query_as(
        "SELECT id, output FROM responses WHERE stream = $1 ORDER BY ts_ms DESC")
        .bind(stream).fetch_all(pool).await.unwrap());
    for (k, (id, _)) in ids.iter().enumerate() {
        let ts = now_ms - (k as i64 + 1) * 1_800_000;
        let s = if k == 0 {
            1.0
        } else {
            2.0 + (k % 4) as f64 * 0.5
        };
        score(
            store,
            *id,
            stream,
            ts,
            JUDGES[1],
            s,
            "The answer <i>ignores</i> the question & the context.",
        )
        .await;
        score(
            store,
            *id,
            stream,
            ts,
            JUDGES[0],
            4.0,
            "Grounded in passage 1.",
        )
        .await;
    }
    ids
}

/// A suite run every hour for a day; the live target drifts six hours ago.
async fn canary(store: &Store, now_ms: i64) {
    let v = store
        .upsert_suite_version(SUITE, 2, "hash", "{}", now_ms - 48 * HOUR_MS)
        .await
        .unwrap();
    for k in (0..24).rev() {
        let t = now_ms - k * HOUR_MS - 60_000;
        let drifted = k < 6;
        let run = NewRun {
            suite: SUITE,
            suite_version: v.version,
            content_hash: &v.content_hash,
            trigger: RunTrigger::Schedule,
            scheduled_for_ms: Some(t),
            owner: "test",
            now_ms: t,
        };
        let id = store.start_run(&run).await.unwrap().unwrap();
        let mut results = vec![];
        for case in ["capital-of-france", "refund-policy"] {
            for target in ["pinned", "live"] {
                let live_bad = drifted && target == "live" && case == "refund-policy";
                results.push(CaseResultRow {
                    suite: SUITE.into(),
                    case_id: case.into(),
                    target: target.into(),
                    requested_model: if target == "live" { "gpt-4o" } else { "gpt-4o-2024-08-06" }.into(),
                    response_model: Some(if target == "live" && drifted { "gpt-4o-2024-11-20" } else { "gpt-4o-2024-08-06" }.into()),
                    request: "[]".into(),
                    answer: Some(if live_bad { XSS_OUTPUT.to_string() } else { format!("{case}: the expected answer.") }),
                    outcome: if live_bad { "fail" } else { "pass" }.into(),
                    verdicts: serde_json::json!([{"expectation": "contains \"expected\"", "pass": !live_bad}]).to_string(),
                    agrees_with_pinned: (target == "live").then_some(!live_bad),
                    created_ms: t + 1000,
                    ..Default::default()
                });
            }
        }
        store
            .finish_run(id, "completed", &results, t + 2000)
            .await
            .unwrap();
        let model = if drifted {
            "gpt-4o-2024-11-20"
        } else {
            "gpt-4o-2024-08-06"
        };
        let identity = ModelIdentity {
            response_model: Some(model.into()),
            system_fingerprint: None,
        };
        store
            .observe_model(&format!("suite:{SUITE}:live"), "gpt-4o", &identity, t)
            .await
            .unwrap();
    }
}

/// Seeds everything into a migrated store; `now_ms` anchors every time.
pub async fn seed(store: &Store, now_ms: i64) -> Seeded {
    rollups(store, STREAM, now_ms, true).await;
    rollups(store, HOSTILE, now_ms, false).await;
    let ids = responses(store, STREAM, now_ms).await;
    responses(store, HOSTILE, now_ms).await;
    let a = ModelIdentity {
        response_model: Some("gpt-4o-2024-08-06".into()),
        system_fingerprint: Some("fp_a".into()),
    };
    let b = ModelIdentity {
        response_model: Some("gpt-4o-2024-11-20".into()),
        system_fingerprint: Some("fp_b".into()),
    };
    let scope = format!("stream:{STREAM}");
    store
        .observe_model(&scope, "gpt-4o", &a, now_ms - 30 * HOUR_MS)
        .await
        .unwrap();
    store
        .observe_model(&scope, "gpt-4o", &b, now_ms - 6 * HOUR_MS)
        .await
        .unwrap();
    canary(store, now_ms).await;
    let xss = ids
        .iter()
        .find(|(_, o)| o == XSS_OUTPUT)
        .expect("xss response")
        .0;
    Seeded {
        xss_response: xss,
        worst_response: xss,
    }
}

/// A config for `canaryd serve` on the SQLite file at `db_path`.
/// Detectors are off (`every_secs: 0`): the pages must show the seeded data
/// as seeded, not as the daemon's own evaluation would revise it.
pub fn config(db_path: &std::path::Path) -> String {
    format!(
        "database: sqlite://{}\nlisten: 127.0.0.1:0\ndetectors: {{ every_secs: 0 }}\nproviders:\n  sim: {{ base_url: \"http://127.0.0.1:9/v1\" }}\nmodels:\n  pinned: {{ provider: sim, model: gpt-4o-2024-08-06 }}\n  live: {{ provider: sim, model: gpt-4o }}\n",
        db_path.display()
    )
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// When this build has alerting, a firing judge-score alert on `STREAM`
/// (with a hostile summary) and a resolved one on `HOSTILE`. Returns
/// whether the `alerts` table exists.
pub async fn seed_alerts(store: &Store, now_ms: i64) -> bool {
    if !store.has_table("alerts").await.unwrap() {
        return false;
    }
    let rows = [
        (
            "judge_score_drop",
            STREAM,
            JUDGES[1],
            "firing",
            Some(now_ms - HOUR_MS),
            None,
            "helpfulness 4.1 → 3.1 <b>dropped</b>",
        ),
        (
            "refusal_rate_shift",
            HOSTILE,
            "",
            "resolved",
            Some(now_ms - 5 * HOUR_MS),
            Some(now_ms - 2 * HOUR_MS),
            "refusals back to normal",
        ),
    ];
    for (rule, stream, dim, state, firing, resolved, summary) in rows {
        on_db!(store.db(), pool => {
            sqlx::query("INSERT INTO alerts (rule, stream, dimension, state, severity, value, baseline, threshold, p_value, samples, \
                         baseline_samples, summary, pending_ms, firing_ms, resolved_ms, last_eval_ms) \
                         VALUES ($1, $2, $3, $4, 'warning', 3.1, 4.1, 0.3, 0.0001, 72, 2016, $5, $6, $6, $7, $8)")
                .bind(rule).bind(stream).bind(dim).bind(state).bind(summary).bind(firing).bind(resolved).bind(now_ms)
                .execute(pool).await.unwrap();
        });
    }
    true
}
