//! `canaryd incident export` against the real binary, on SQLite and
//! PostgreSQL: records answered by the simulator (healthy, then with its
//! facts dropped) are stored, an alert opens on them, and the exported
//! post-mortem's canary case passes `canaryd check`, passes `canaryd run`
//! on the healthy phase and fails on the degraded one. Also: new prompt
//! versions in traffic become `auto` annotations once.

use crate::support::canary::{Sim, outcomes, project, run_json};
use crate::support::{TestDb, run_cli};
use canaryd::alert::{AlertsConfig, process};
use canaryd::signals::{Finding, Rule, Severity, Status};
use canaryd::store::{Annotation, ResponseRow, Store};

const HOUR: i64 = 3_600_000;

const SCENARIO: &str = r#"
seed: 11
default:
  tokens: { mean: 30, sd: 4 }
phases:
  - name: degraded
    models:
      gpt-4o: { drop_facts_rate: 1.0 }
"#;

const CONTEXT: [&str; 2] = [
    "Refunds are accepted within 30 days of delivery.",
    "Standard shipping takes 5 business days within the EU.",
];
const QUESTION: &str = "How many days do I have to ask for a refund?";

/// Asks the simulator the question the way an application would (context
/// in the system message) and returns (answer, reported model).
async fn ask(sim: &Sim) -> (String, String) {
    let mut system = String::from("You are the support assistant of Acme.\nContext:");
    for p in CONTEXT {
        system.push_str("\n- ");
        system.push_str(p);
    }
    let reply: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", sim.url()))
        .json(&serde_json::json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": QUESTION},
            ],
            "max_tokens": 300,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        reply["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string(),
        reply["model"].as_str().unwrap_or("gpt-4o").to_string(),
    )
}

fn row(id: &str, ts: i64, output: &str, model: &str, score: f64) -> ResponseRow {
    ResponseRow {
        ext_id: Some(id.into()),
        stream: "support-bot".into(),
        ts_ms: ts,
        received_ms: ts,
        prompt_version: Some("v3".into()),
        request_model: Some("gpt-4o".into()),
        response_model: Some(model.into()),
        input: Some(serde_json::to_string(QUESTION).unwrap()),
        context: Some(serde_json::to_string(&CONTEXT).unwrap()),
        output: output.into(),
        finish_reason: Some("stop".into()),
        input_tokens: Some(40),
        output_tokens: 12,
        scores: vec![("groundedness".into(), score)],
        ..Default::default()
    }
}

fn drop_finding(now: i64) -> Finding {
    Finding {
        rule: Rule::JudgeScoreDrop,
        stream: "support-bot".into(),
        dimension: Some("groundedness".into()),
        status: Status::Firing,
        severity: Severity::Warning,
        at_ms: now,
        value: 1.0,
        baseline: 5.0,
        threshold: 0.3,
        p_value: None,
        samples: 3,
        baseline_samples: 6,
        summary: "groundedness 5.00 → 1.00".into(),
        resolve: false,
    }
}

/// The fenced YAML block of the "Canary case" section.
fn case_yaml(md: &str) -> String {
    let section = md
        .split("## Canary case")
        .nth(1)
        .unwrap_or_else(|| panic!("no canary case section:\n{md}"));
    let start = section
        .find("```yaml\n")
        .unwrap_or_else(|| panic!("no yaml block:\n{section}"))
        + "```yaml\n".len();
    let end = section[start..].find("\n```").unwrap() + start;
    section[start..end].to_string()
}

#[tokio::test]
async fn the_exported_case_passes_check_and_catches_the_degraded_model() {
    for db in TestDb::all().await {
        eprintln!("running against {}", db.backend);
        let sim = Sim::start(SCENARIO);
        let dir = project(sim.url(), &[]);
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let now = canaryd::clock::Clock::system().now_ms();

        // Healthy answers from well before the change, degraded ones now.
        let (healthy, model) = ask(&sim).await;
        assert!(healthy.contains("30 days"), "{healthy}");
        let mut rows: Vec<ResponseRow> = (0..6)
            .map(|i| {
                row(
                    &format!("h{i}"),
                    now - (10 + i) * HOUR,
                    &healthy,
                    &model,
                    5.0,
                )
            })
            .collect();
        sim.set_phase("degraded").await;
        let (degraded, model) = ask(&sim).await;
        assert!(!degraded.contains("30 days"), "{degraded}");
        rows.extend(
            (0..3).map(|i| row(&format!("d{i}"), now - 600_000 + i, &degraded, &model, 1.0)),
        );
        store.insert_responses(&rows).await.unwrap();
        // The judge's reasoning on the worst record is part of the evidence.
        canaryd::on_db!(store.db(), pool => sqlx::query(
            "UPDATE judge_scores SET reasoning = 'The answer states 90 days; the context says 30 <b>days</b>.' \
             WHERE response_id = (SELECT id FROM responses WHERE ext_id = 'd0')",
        ).execute(pool).await.map(|_| ())).unwrap();
        store
            .add_annotation(&Annotation {
                id: 0,
                stream: "support-bot".into(),
                kind: "deploy".into(),
                text: "deploy v2.3 <script>x</script>".into(),
                ts_ms: now - 20 * 60_000,
                source: "cli".into(),
                created_ms: now,
            })
            .await
            .unwrap();
        process(&store, &[drop_finding(now)], now, &AlertsConfig::default())
            .await
            .unwrap();
        let alert = store.list_alerts(10).await.unwrap().remove(0);

        let envs = [("CANARYD_DATABASE_URL", db.url.as_str())];
        let id = alert.id.to_string();
        let (code, md, err) = run_cli(&["incident", "export", &id], dir.path(), &envs);
        assert_eq!(code, 0, "{err}");
        // Timeline, triage and the evidence with everything stored about it.
        assert!(
            md.contains("## Timeline") && md.contains("alert pending"),
            "{md}"
        );
        assert!(md.contains("## Triage\n\n<!-- canaryd:triage -->"), "{md}");
        assert!(
            md.contains("deploy annotation \"deploy v2.3 &lt;script&gt;x&lt;/script&gt;\""),
            "the deploy near the start is cited, escaped: {md}"
        );
        assert!(!md.contains("<script>"), "{md}");
        assert!(md.contains(&degraded) && md.contains("Passage 2:"), "{md}");
        assert!(
            md.contains("the context says 30 <b>days</b>"),
            "reasoning is fenced, verbatim: {md}"
        );
        assert!(md.contains("| prompt version | v3 |"), "{md}");
        // The case, saved as a suite, is valid...
        let yaml = case_yaml(&md);
        assert!(
            yaml.contains("contains: \"30 days\"")
                || yaml.contains("contains: \"5 business days\""),
            "a fact of the healthy answers: {yaml}"
        );
        assert!(yaml.contains("refusal: false"), "{yaml}");
        assert!(
            yaml.contains("judge: { name: \"groundedness\", min: 4 }"),
            "{yaml}"
        );
        let suite = format!("incident-{}", alert.id);
        std::fs::write(dir.path().join(format!("canaries/{suite}.yaml")), &yaml).unwrap();
        let (code, out, err) = run_cli(&["check"], dir.path(), &envs);
        assert_eq!(code, 0, "canaryd check: {out}{err}\n{yaml}");
        // ...passes on the healthy model and fails on the degraded one.
        let (code, report, err) = run_json(dir.path(), &suite, &[], &db.url);
        assert_eq!(
            outcomes(&report),
            [(
                format!("alert-{}-worst", alert.id),
                "live".into(),
                "fail".into()
            )],
            "degraded: {err}"
        );
        assert_ne!(code, 0);
        sim.set_phase("baseline").await;
        let (code, report, err) = run_json(dir.path(), &suite, &[], &db.url);
        assert_eq!(
            outcomes(&report),
            [(
                format!("alert-{}-worst", alert.id),
                "live".into(),
                "pass".into()
            )],
            "healthy: {err}"
        );
        assert_eq!(code, 0);

        // An unknown alert is a clear error.
        let (code, _, err) = run_cli(&["incident", "export", "999999"], dir.path(), &envs);
        assert_ne!(code, 0);
        assert!(err.contains("no alert with id 999999"), "{err}");
        store.close().await;
    }
}

#[tokio::test]
async fn a_new_prompt_version_becomes_one_auto_annotation() {
    for db in TestDb::all().await {
        eprintln!("running against {}", db.backend);
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let t0 = 1_763_000_000_000;
        let rec = |id: &str, stream: &str, v: &str, ts: i64| ResponseRow {
            ext_id: Some(id.into()),
            stream: stream.into(),
            ts_ms: ts,
            received_ms: ts,
            prompt_version: Some(v.into()),
            output: "ok".into(),
            output_tokens: 1,
            ..Default::default()
        };
        // The first version a stream shows is not a change.
        store
            .insert_responses(&[rec("a", "s", "v12", t0), rec("b", "s", "v12", t0 + 1)])
            .await
            .unwrap();
        // v13 appears in two batches (and on another stream as its first).
        store
            .insert_responses(&[
                rec("c", "s", "v13", t0 + 60_000),
                rec("d", "s", "v13", t0 + 30_000),
                rec("e", "other", "v13", t0 + 30_000),
            ])
            .await
            .unwrap();
        store
            .insert_responses(&[rec("f", "s", "v13", t0 + 90_000)])
            .await
            .unwrap();
        let all = store.annotations(None, 0, i64::MAX, 100).await.unwrap();
        let prompt: Vec<_> = all.iter().filter(|a| a.kind == "prompt").collect();
        assert_eq!(prompt.len(), 1, "{all:?}");
        assert_eq!(prompt[0].stream, "s");
        assert_eq!(prompt[0].source, "auto");
        assert_eq!(prompt[0].ts_ms, t0 + 30_000, "the first record's time");
        assert_eq!(
            prompt[0].text,
            "prompt version v13 first seen in traffic (after v12)"
        );
        store.close().await;
    }
}
