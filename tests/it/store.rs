//! The storage interface, run against both backends: SQLite always, and
//! PostgreSQL (mandatory in CI).

use crate::support::TestDb;
use canaryd::store::{CaseResultRow, ModelIdentity, NewRun, ResponseRow, RunTrigger, Store};

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

/// Runs `f` once per backend with a freshly migrated store.
macro_rules! for_each_backend {
    (|$store:ident, $backend:ident| $body:block) => {{
        for db in TestDb::all().await {
            let $backend = db.backend;
            eprintln!("running against {}", $backend);
            let $store = open(&db).await;
            $body
            $store.close().await;
        }
    }};
}

#[tokio::test]
async fn migrations_create_schema_and_are_idempotent() {
    for_each_backend!(|store, backend| {
        store.migrate().await.expect("second migrate is harmless");
        let tables = store.tables().await.unwrap();
        for t in [
            "canary_runs",
            "canary_results",
            "responses",
            "suite_versions",
            "model_events",
            "leases",
        ] {
            assert!(
                tables.iter().any(|x| x == t),
                "{backend}: missing {t} in {tables:?}"
            );
        }
    });
}

#[tokio::test]
async fn scheduled_tick_runs_once_and_results_commit_with_run() {
    for_each_backend!(|store, backend| {
        let v = store
            .upsert_suite_version("s", 1, "h1", "{}", 1000)
            .await
            .unwrap();
        let again = store
            .upsert_suite_version("s", 1, "h1", "{}", 2000)
            .await
            .unwrap();
        assert_eq!(v, again, "{backend}: same content is one version");
        let run = NewRun {
            suite: "s",
            suite_version: 1,
            content_hash: "h1",
            trigger: RunTrigger::Schedule,
            scheduled_for_ms: Some(60_000),
            owner: "a",
            now_ms: 60_001,
        };
        let first = store.start_run(&run).await.unwrap();
        assert!(first.is_some(), "{backend}");
        let second = store
            .start_run(&NewRun {
                owner: "b",
                ..run.clone()
            })
            .await
            .unwrap();
        assert_eq!(second, None, "{backend}: a tick is taken once");
        let manual = NewRun {
            scheduled_for_ms: None,
            trigger: RunTrigger::Manual,
            ..run.clone()
        };
        assert!(store.start_run(&manual).await.unwrap().is_some());
        assert!(
            store.start_run(&manual).await.unwrap().is_some(),
            "{backend}: manual runs never collide"
        );

        let id = first.unwrap();
        let results = vec![
            CaseResultRow {
                suite: "s".into(),
                case_id: "a".into(),
                target: "live".into(),
                requested_model: "m".into(),
                request: "[]".into(),
                outcome: "pass".into(),
                verdicts: "[]".into(),
                agrees_with_pinned: Some(true),
                created_ms: 1,
                ..Default::default()
            },
            CaseResultRow {
                suite: "s".into(),
                case_id: "b".into(),
                target: "live".into(),
                requested_model: "m".into(),
                request: "[]".into(),
                outcome: "provider_error".into(),
                verdicts: "[]".into(),
                error: Some("429".into()),
                created_ms: 1,
                ..Default::default()
            },
        ];
        store
            .finish_run(id, "completed", &results, 70_000)
            .await
            .unwrap();
        let runs = store.recent_runs("s", 10).await.unwrap();
        let r = runs.iter().find(|r| r.id == id).unwrap();
        assert_eq!(
            (r.status.as_str(), r.passed, r.failed, r.provider_errors),
            ("completed", 1, 0, 1),
            "{backend}"
        );
        let stored = store.run_results(id).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(
            stored[0].agrees_with_pinned,
            Some(true),
            "{backend}: bool round-trips"
        );
        assert_eq!(stored[1].error.as_deref(), Some("429"));
    });
}

#[tokio::test]
async fn model_change_is_an_event_only_when_identity_changes() {
    for_each_backend!(|store, backend| {
        let id = |m: &str, fp: Option<&str>| ModelIdentity {
            response_model: Some(m.into()),
            system_fingerprint: fp.map(Into::into),
        };
        assert!(
            store
                .observe_model("suite:s:live", "gpt-4o", &id("gpt-4o-1", Some("fp_a")), 1)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .observe_model("suite:s:live", "gpt-4o", &id("gpt-4o-1", Some("fp_a")), 2)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .observe_model("suite:s:live", "gpt-4o", &id("gpt-4o-1", None), 3)
                .await
                .unwrap()
                .is_none(),
            "{backend}: a missing fingerprint is not a change"
        );
        let ev = store
            .observe_model("suite:s:live", "gpt-4o", &id("gpt-4o-2", Some("fp_b")), 4)
            .await
            .unwrap()
            .expect("change");
        assert_eq!(ev.old_model.as_deref(), Some("gpt-4o-1"));
        assert_eq!(ev.new_fingerprint.as_deref(), Some("fp_b"));
        let evs = store.model_events("suite:s:", 0).await.unwrap();
        assert_eq!(evs.len(), 1, "{backend}");
        assert!(
            store
                .model_events("suite:other", 0)
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[tokio::test]
async fn responses_dedupe_by_id_in_and_across_batches() {
    for_each_backend!(|store, backend| {
        let row = |ext: Option<&str>, ts| ResponseRow {
            ext_id: ext.map(Into::into),
            stream: "bot".into(),
            ts_ms: ts,
            received_ms: ts,
            output: "hi".into(),
            output_tokens: 1,
            refusal: false,
            embedding: Some(vec![0, 0, 128, 63]),
            ..Default::default()
        };
        let out = store
            .insert_responses(&[
                row(Some("a"), 1),
                row(Some("a"), 2),
                row(None, 3),
                row(None, 4),
            ])
            .await
            .unwrap();
        assert_eq!((out.accepted, out.duplicates), (3, 1), "{backend}");
        let out = store
            .insert_responses(&[row(Some("a"), 5), row(Some("b"), 6)])
            .await
            .unwrap();
        assert_eq!((out.accepted, out.duplicates), (1, 1), "{backend}");
        assert_eq!(store.count_responses("bot", 0, 100).await.unwrap(), 4);
        // Large batches are split below SQLite's parameter limit.
        let many: Vec<_> = (0..1200).map(|i| row(None, 10 + i)).collect();
        assert_eq!(
            store.insert_responses(&many).await.unwrap().accepted,
            1200,
            "{backend}"
        );
    });
}

#[tokio::test]
async fn leases_exclude_other_holders_until_expiry() {
    for_each_backend!(|store, backend| {
        assert!(store.try_lease("detectors", "a", 0, 1000).await.unwrap());
        assert!(
            !store.try_lease("detectors", "b", 500, 1000).await.unwrap(),
            "{backend}"
        );
        assert!(
            store.try_lease("detectors", "a", 600, 1000).await.unwrap(),
            "renewal"
        );
        assert!(
            store.try_lease("detectors", "b", 1700, 1000).await.unwrap(),
            "{backend}: expired lease is taken over"
        );
        store.release_lease("detectors", "b").await.unwrap();
        assert!(store.try_lease("detectors", "a", 1701, 1000).await.unwrap());
    });
}

#[tokio::test]
async fn retention_removes_old_raw_data_in_batches_and_keeps_recent() {
    for_each_backend!(|store, backend| {
        let row = |ts| ResponseRow {
            stream: "bot".into(),
            ts_ms: ts,
            received_ms: ts,
            output: "x".into(),
            output_tokens: 1,
            ..Default::default()
        };
        let old: Vec<_> = (0..(canaryd::store::RETENTION_BATCH + 10))
            .map(row)
            .collect();
        store.insert_responses(&old).await.unwrap();
        store.insert_responses(&[row(1_000_000)]).await.unwrap();
        let swept = store.sweep_retention(500_000, 0, 1).await.unwrap();
        assert_eq!(
            swept.responses,
            canaryd::store::RETENTION_BATCH as u64,
            "{backend}: one bounded batch"
        );
        // GenAI log events whose span never came: the old one goes with
        // the raw texts, the recent one keeps waiting.
        let pending = |ext: &str, at| canaryd::store::log_events::LogEvents {
            ext_id: ext.into(),
            output: Some("late".into()),
            received_ms: at,
            ..Default::default()
        };
        let kept = store
            .attach_log_events(
                &[pending("otel:a:1", 1_000), pending("otel:b:2", 1_000_000)],
                None,
            )
            .await
            .unwrap();
        assert_eq!(kept.pending, 2, "{backend}");
        let swept = store.sweep_retention(500_000, 0, 10).await.unwrap();
        assert_eq!(swept.responses, 10, "{backend}");
        assert_eq!(
            swept.log_events, 1,
            "{backend}: the stale pending log event"
        );
        let left = store
            .pending_log_events(&["otel:a:1".into(), "otel:b:2".into()])
            .await
            .unwrap();
        assert_eq!(
            left.iter().map(|e| e.ext_id.as_str()).collect::<Vec<_>>(),
            ["otel:b:2"],
            "{backend}"
        );
        assert_eq!(
            store.count_responses("bot", 0, i64::MAX).await.unwrap(),
            1,
            "{backend}: recent data kept"
        );
    });
}

#[tokio::test]
async fn annotation_retention_removes_old_changes_in_batches_and_keeps_recent() {
    use canaryd::store::Annotation;
    for_each_backend!(|store, backend| {
        // BATCH + 3 changes long ago (one statement: row by row would be
        // the slow part of the test), written like the API's rows.
        let old = canaryd::store::RETENTION_BATCH + 3;
        canaryd::on_db!(store.db(), pool => sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
             INSERT INTO annotations (stream, kind, text, ts_ms, source, created_ms) \
             SELECT 'bot', 'deploy', 'old deploy', i, 'api', i FROM n",
        )
        .bind(old)
        .execute(pool)
        .await
        .map(|_| ()))
        .unwrap();
        // Recent ones, for one stream and for all, and an automatic one
        // recorded long ago about a recent change: the change's time counts.
        for (stream, ts, source, created) in [
            ("bot", 900_000, "cli", 900_000),
            ("*", 950_000, "api", 950_000),
            ("bot", 600_000, "auto", 1),
        ] {
            store
                .add_annotation(&Annotation {
                    id: 0,
                    stream: stream.into(),
                    kind: "model".into(),
                    text: format!("recent {source}"),
                    ts_ms: ts,
                    source: source.into(),
                    created_ms: created,
                })
                .await
                .unwrap();
        }
        let swept = store.sweep_annotations(500_000, 1).await.unwrap();
        assert_eq!(
            swept.annotations,
            canaryd::store::RETENTION_BATCH as u64,
            "{backend}: one bounded batch"
        );
        let swept = store.sweep_annotations(500_000, 10).await.unwrap();
        assert_eq!(swept.annotations, 3, "{backend}: the rest of the old ones");
        let left: Vec<String> = store
            .annotations(None, 0, i64::MAX, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.text)
            .collect();
        assert_eq!(
            left,
            ["recent auto", "recent cli", "recent api"],
            "{backend}: recent changes kept, oldest first"
        );
        let swept = store.sweep_annotations(500_000, 10).await.unwrap();
        assert_eq!(swept.annotations, 0, "{backend}: nothing more to do");
    });
}

#[tokio::test]
async fn alert_side_retention_keeps_what_is_still_needed() {
    use canaryd::store::{AlertChange, AlertCutoffs, AlertRow, NewNotification};
    for_each_backend!(|store, backend| {
        // Health series: BATCH + 5 old points and one recent.
        let health = |t: i64| {
            let store = &store;
            async move {
                let one: std::collections::BTreeMap<String, f64> =
                    [("bot".to_string(), 90.0)].into();
                store.record_health(t, &one).await.unwrap();
            }
        };
        for t in 0..(canaryd::store::RETENTION_BATCH + 5) {
            health(t).await;
        }
        health(1_000_000).await;
        // Alerts: old resolved (goes), old resolved still owing its resolve
        // notice (stays), old but firing (stays), recently resolved (stays).
        let alert = |stream: &str, state: &str, resolved: Option<i64>, owed: bool| AlertChange {
            row: AlertRow {
                id: 0,
                rule: "judge_score_drop".into(),
                stream: stream.into(),
                dimension: String::new(),
                state: state.into(),
                severity: "warning".into(),
                value: 1.0,
                baseline: 2.0,
                threshold: 0.3,
                p_value: None,
                samples: 1,
                baseline_samples: 1,
                summary: "s".into(),
                pending_ms: Some(10),
                firing_ms: Some(10),
                resolved_ms: resolved,
                last_eval_ms: 10,
                last_notified_ms: None,
                resolve_pending: owed,
                rev: 0,
            },
            history: Some((None, state.into(), None)),
            at_ms: 10,
        };
        let ids = store
            .write_alerts(
                &[
                    alert("old", "resolved", Some(100), false),
                    alert("owed", "resolved", Some(100), true),
                    alert("firing", "firing", None, false),
                    alert("recent", "resolved", Some(900_000), false),
                ],
                &[],
            )
            .await
            .unwrap()
            .unwrap();
        // Outbox: old sent (goes), old never delivered (stays), recent sent (stays).
        let note = |title: &str| NewNotification {
            channel: "hook".into(),
            kind: "webhook".into(),
            stream: "old".into(),
            status: "resolved".into(),
            title: title.into(),
            body: "{}".into(),
            alert_ids: vec![ids[0]],
            created_ms: 50,
        };
        store
            .write_alerts(
                &[],
                &[note("sent-old"), note("undelivered"), note("sent-recent")],
            )
            .await
            .unwrap();
        let outbox = store.list_notifications(10).await.unwrap();
        let id_of = |t: &str| outbox.iter().find(|(n, _)| n.title == t).unwrap().0.id;
        store
            .mark_notification_sent(id_of("sent-old"), 1, 200)
            .await
            .unwrap();
        store
            .mark_notification_sent(id_of("sent-recent"), 1, 900_000)
            .await
            .unwrap();

        let cut = AlertCutoffs {
            health_before_ms: 500_000,
            resolved_alerts_before_ms: 500_000,
            sent_notifications_before_ms: 500_000,
        };
        let swept = store.sweep_alert_retention(cut, 1).await.unwrap();
        assert_eq!(
            swept.health_scores,
            canaryd::store::RETENTION_BATCH as u64,
            "{backend}: one bounded batch"
        );
        assert_eq!((swept.alerts, swept.notifications), (1, 1), "{backend}");
        let swept = store.sweep_alert_retention(cut, 10).await.unwrap();
        assert_eq!(swept.health_scores, 5, "{backend}");
        assert_eq!((swept.alerts, swept.notifications), (0, 0), "{backend}");

        assert_eq!(
            store.health_series("bot", 0, i64::MAX).await.unwrap(),
            vec![(1_000_000, 90.0)],
            "{backend}"
        );
        let mut left: Vec<String> = store
            .list_alerts(10)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.stream)
            .collect();
        left.sort();
        assert_eq!(left, ["firing", "owed", "recent"], "{backend}");
        assert!(
            store.alert_history(ids[0]).await.unwrap().is_empty(),
            "{backend}: history went with its alert"
        );
        let mut titles: Vec<String> = store
            .list_notifications(10)
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n.title)
            .collect();
        titles.sort();
        assert_eq!(titles, ["sent-recent", "undelivered"], "{backend}");
    });
}

/// sqlx 0.9.0 leaves Nagle's algorithm on, and a statement larger than one
/// TCP segment then waits ~40 ms for the server's delayed ACK (see
/// `store::nodelay`): the store's PostgreSQL connections must have
/// TCP_NODELAY. (Other tests in this binary may hold admin connections
/// without it, so the check is that the store's connection has it.)
#[tokio::test]
async fn postgres_connections_have_tcp_nodelay() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let port = db
        .url
        .rsplit_once('@')
        .and_then(|(_, hp)| hp.split(['/', '?']).next())
        .and_then(|hp| hp.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(5432);
    let store = open(&db).await;
    store.tables().await.unwrap();
    let flags = canaryd::store::nodelay::tcp_nodelay_to_port(port);
    assert!(
        flags.iter().any(|on| *on),
        "no connection to port {port} has TCP_NODELAY: {flags:?}"
    );
    store.close().await;
}
