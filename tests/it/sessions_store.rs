//! Session state in the store on both backends, with time driven
//! explicitly: counted once per record id, detected by a pass, marked
//! checked, expired after `session_idle` with the alert's resolving
//! finding, bounded work per pass over many distinct sessions, retention.

use canaryd::ingest::{Record, prepare};
use canaryd::judge::JudgingConfig;
use canaryd::sessions::SessionsConfig;
use canaryd::sessions::monitor::run_once;
use canaryd::signals::{Rule, Status};
use canaryd::store::Store;
use serde_json::json;

use crate::support::TestDb;

const T0: i64 = 1_795_000_000_000;
const MIN: i64 = 60_000;

fn call(id: &str, session: &str, ts: i64, args: serde_json::Value) -> Record {
    Record {
        id: Some(id.into()),
        timestamp_ms: Some(ts),
        stream: "agents".into(),
        output: "ok".into(),
        output_tokens: Some(10),
        input_tokens: Some(90),
        session_id: Some(session.into()),
        agent: Some("a".into()),
        tool_calls: Some(json!([{"name": "fetch", "arguments": args}])),
        ..Default::default()
    }
}

#[tokio::test]
async fn counted_once_detected_expired_and_bounded() {
    for db in TestDb::all().await {
        let b = db.backend;
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let judging = JudgingConfig::default();
        let cfg = SessionsConfig {
            max_sessions_per_pass: 500,
            ..Default::default()
        };

        let recs: Vec<Record> = (0..5)
            .map(|i| call(&format!("r{i}"), "s1", T0 + i * 1000, json!({"url": "x"})))
            .collect();
        let rows = prepare(&recs, T0 + 5000, &judging);
        let first = store.insert_responses(&rows).await.unwrap();
        let again = store.insert_responses(&rows).await.unwrap();
        assert_eq!((first.accepted, again.duplicates), (5, 5), "{b}");
        let s = store.session("agents", "s1").await.unwrap().unwrap();
        assert_eq!(
            (s.calls, s.tokens, s.first_ms, s.last_ms),
            (5, 500, T0, T0 + 4000),
            "{b}"
        );

        let found = run_once(&store, T0 + MIN, &cfg).await.unwrap();
        assert_eq!(found.len(), 1, "{b}: {found:?}");
        assert_eq!(
            (found[0].rule, found[0].status),
            (Rule::ToolCallLoop, Status::Firing)
        );
        // Looked at: the next pass has nothing new to say.
        assert!(
            run_once(&store, T0 + 2 * MIN, &cfg)
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        let s = store.session("agents", "s1").await.unwrap().unwrap();
        assert_eq!(s.fired, vec!["tool_call_loop".to_string()]);

        // Many distinct sessions: each pass looks at a bounded number.
        let many: Vec<Record> = (0..3_000)
            .map(|i| {
                call(
                    &format!("m{i}"),
                    &format!("many-{i}"),
                    T0 + 3 * MIN,
                    json!({"i": i}),
                )
            })
            .collect();
        store
            .insert_responses(&prepare(&many, T0 + 3 * MIN, &judging))
            .await
            .unwrap();
        assert_eq!(
            store.dirty_sessions(10_000).await.unwrap().len(),
            3_000,
            "{b}"
        );
        assert!(
            run_once(&store, T0 + 4 * MIN, &cfg)
                .await
                .unwrap()
                .is_empty(),
            "{b}: no loops"
        );
        assert_eq!(
            store.dirty_sessions(10_000).await.unwrap().len(),
            1_000,
            "{b}: 4 × 500 per pass"
        );
        run_once(&store, T0 + 5 * MIN, &cfg).await.unwrap();
        assert!(store.dirty_sessions(10).await.unwrap().is_empty(), "{b}");

        // Idle for session_idle (30 min): expired, the alert resolves, the summary stays.
        let later = T0 + 40 * MIN;
        let found = run_once(&store, later, &cfg).await.unwrap();
        let ends: Vec<_> = found
            .iter()
            .map(|f| (f.rule, f.status, f.dimension.clone()))
            .collect();
        assert_eq!(
            ends,
            vec![(Rule::ToolCallLoop, Status::Ok, Some("s1".to_string()))],
            "{b}"
        );
        let s = store.session("agents", "s1").await.unwrap().unwrap();
        assert_eq!(s.state, "expired", "{b}");
        assert_eq!(store.session_spend().await.unwrap()[0].active, 0, "{b}");
        // A new record reopens it.
        let more = prepare(
            &[call("r9", "s1", later, json!({"url": "y"}))],
            later,
            &judging,
        );
        store.insert_responses(&more).await.unwrap();
        assert_eq!(
            store.session("agents", "s1").await.unwrap().unwrap().state,
            "active"
        );

        // Retention: events after raw_days, expired summaries after rollup_days.
        let n = store.sweep_sessions(T0 + 10 * MIN, 0, 5).await.unwrap();
        assert_eq!(n, 3_005, "{b}: the events before the cutoff");
        assert_eq!(
            store
                .session_events("agents", "s1", 100)
                .await
                .unwrap()
                .len(),
            1,
            "{b}"
        );
        store.close().await;
    }
}
