//! Evidence queries against rows inserted here, on SQLite and PostgreSQL:
//! worst judge scores with reasoning, failing canary cases with the pinned
//! answer next to the live one, model changes of a suite, and cutting.

use crate::support::TestDb;
use canaryd::alert::AlertsConfig;
use canaryd::alert::evidence::{examples, model_events};
use canaryd::store::{
    AlertRow, CaseResultRow, ModelIdentity, NewRun, ResponseRow, RunTrigger, Store,
};

const T0: i64 = 1_763_000_000_000;

fn alert(rule: &str, stream: &str, dim: &str) -> AlertRow {
    AlertRow {
        id: 1,
        rule: rule.into(),
        stream: stream.into(),
        dimension: dim.into(),
        state: "firing".into(),
        severity: "warning".into(),
        value: 3.0,
        baseline: 4.0,
        threshold: 0.3,
        p_value: None,
        samples: 10,
        baseline_samples: 100,
        summary: String::new(),
        pending_ms: Some(T0),
        firing_ms: Some(T0),
        resolved_ms: None,
        last_eval_ms: T0,
        last_notified_ms: None,
        resolve_pending: false,
        rev: 1,
    }
}

fn result(run_id: i64, case: &str, target: &str, outcome: &str, answer: &str) -> CaseResultRow {
    CaseResultRow {
        run_id,
        suite: "refunds".into(),
        case_id: case.into(),
        target: target.into(),
        requested_model: target.into(),
        request: "[]".into(),
        answer: Some(answer.into()),
        outcome: outcome.into(),
        verdicts: if outcome == "fail" {
            r#"[{"pass":false,"detail":"missing \"30 days\""}]"#.into()
        } else {
            "[]".into()
        },
        created_ms: T0 - 1000,
        ..Default::default()
    }
}

#[tokio::test]
async fn evidence_from_judges_canaries_responses_and_model_events() {
    for db in TestDb::all().await {
        eprintln!("running against {}", db.backend);
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let cfg = AlertsConfig {
            max_examples: 2,
            max_example_chars: 40,
            ..AlertsConfig::default()
        };

        // Three judged responses; the two lowest come back, lowest first, cut to 40 chars.
        let rows: Vec<ResponseRow> = (0..3)
            .map(|i| ResponseRow {
                ext_id: Some(format!("r{i}")),
                stream: "support-bot".into(),
                ts_ms: T0 - 10_000 + i,
                received_ms: T0,
                input: Some(format!("\"question {i}\"")),
                output: format!("answer {i} {}", "and then some more words ".repeat(5)),
                output_tokens: 10 + i,
                refusal: i == 1,
                ..Default::default()
            })
            .collect();
        store.insert_responses(&rows).await.unwrap();
        for (i, score) in [(0, 4.0), (1, 1.0), (2, 2.0)] {
            canaryd::on_db!(store.db(), pool => sqlx::query(
                "INSERT INTO judge_scores (response_id, stream, ts_ms, judge, judge_version, score, reasoning, source, created_ms) \
                 SELECT id, stream, ts_ms, 'groundedness', 1, $2, $3, 'judge', ts_ms FROM responses WHERE ext_id = $1",
            ).bind(format!("r{i}")).bind(score).bind(format!("reasoning {i}")).execute(pool).await.map(|_| ())).unwrap();
        }
        // A judge failure (no score) and another judge never show.
        canaryd::on_db!(store.db(), pool => sqlx::query(
            "INSERT INTO judge_scores (stream, ts_ms, judge, judge_version, score, error, source, created_ms) \
             VALUES ('support-bot', $1, 'groundedness', 1, NULL, 'timeout', 'judge', $1), \
                    ('support-bot', $1, 'tone', 1, 0.0, NULL, 'judge', $1)",
        ).bind(T0 - 5000).execute(pool).await.map(|_| ())).unwrap();
        let ex = examples(
            &store,
            &alert("judge_score_drop", "support-bot", "groundedness"),
            &cfg,
            T0,
        )
        .await
        .unwrap();
        assert_eq!(ex.len(), 2, "{ex:?}");
        assert!(ex[0].title.starts_with("groundedness score 1.00"), "{ex:?}");
        assert!(ex[1].title.starts_with("groundedness score 2.00"), "{ex:?}");
        let f = |e: &canaryd::alert::evidence::Example, l: &str| {
            e.fields
                .iter()
                .find(|f| f.label == l)
                .map(|f| f.text.clone())
                .unwrap_or_default()
        };
        assert_eq!(f(&ex[0], "input"), "question 1");
        assert_eq!(f(&ex[0], "judge reasoning"), "reasoning 1");
        let out = f(&ex[0], "output");
        assert!(
            out.starts_with("answer 1 and") && out.ends_with('…') && out.chars().count() <= 40,
            "{out}"
        );
        // Outside the window: nothing.
        let later = examples(
            &store,
            &alert("judge_score_drop", "support-bot", "groundedness"),
            &cfg,
            T0 + 2 * 86_400_000,
        )
        .await
        .unwrap();
        assert!(later.is_empty());

        // Refusals: only refused responses.
        let ex = examples(
            &store,
            &alert("refusal_rate_shift", "support-bot", ""),
            &cfg,
            T0,
        )
        .await
        .unwrap();
        assert_eq!(ex.len(), 1, "{ex:?}");
        assert!(f(&ex[0], "output").starts_with("answer 1"));

        // Canary: the live answer failed; the pinned answer of the same run and case is shown beside it.
        let run = store
            .start_run(&NewRun {
                suite: "refunds",
                suite_version: 1,
                content_hash: "h",
                trigger: RunTrigger::Manual,
                scheduled_for_ms: None,
                owner: "test",
                now_ms: T0 - 2000,
            })
            .await
            .unwrap()
            .unwrap();
        let results = [
            result(
                run,
                "window",
                "pinned",
                "pass",
                "You have 30 days to return items.",
            ),
            result(
                run,
                "window",
                "live",
                "fail",
                "You have 60 days to return items.",
            ),
            result(run, "other", "live", "pass", "fine"),
        ];
        store
            .finish_run(run, "completed", &results, T0 - 1000)
            .await
            .unwrap();
        let ex = examples(
            &store,
            &alert("canary_regression", "suite:refunds", ""),
            &cfg,
            T0,
        )
        .await
        .unwrap();
        assert_eq!(ex.len(), 1, "{ex:?}");
        assert_eq!(ex[0].title, "case window failed on live");
        assert_eq!(
            f(&ex[0], "live answer"),
            "You have 60 days to return items."
        );
        assert_eq!(
            f(&ex[0], "pinned answer"),
            "You have 30 days to return items."
        );
        assert_eq!(f(&ex[0], "failed checks"), "missing \"30 days\"");

        // Model events: a suite's targets and a stream, never a neighbour's.
        let ident = |m: &str| ModelIdentity {
            response_model: Some(m.into()),
            system_fingerprint: None,
        };
        for scope in [
            "suite:refunds:live",
            "stream:support-bot",
            "stream:support-bot-2",
        ] {
            store
                .observe_model(scope, "gpt-4o", &ident("a"), T0 - 3000)
                .await
                .unwrap();
            store
                .observe_model(scope, "gpt-4o", &ident("b"), T0 - 2000)
                .await
                .unwrap();
        }
        let ev = model_events(&store, "suite:refunds", T0 - 86_400_000)
            .await
            .unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].scope, "suite:refunds:live");
        let ev = model_events(&store, "support-bot", T0 - 86_400_000)
            .await
            .unwrap();
        assert_eq!(ev.len(), 1, "support-bot-2 is another stream: {ev:?}");
        assert_eq!(
            (ev[0].old_model.as_deref(), ev[0].new_model.as_deref()),
            (Some("a"), Some("b"))
        );

        store.close().await;
    }
}
