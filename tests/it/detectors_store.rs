//! The detectors' reads and writes on both backends: roll-ups written by the
//! ingest path come back as the snapshot the detectors evaluate, canary
//! results and model events included; verdicts and health round-trip; and
//! `canaryd status` reports them.

use crate::support;
use canaryd::signals::synth::{ChangeKind, StreamSpec, records};
use canaryd::signals::{DetectorConfig, Rule, Status, evaluate_snapshot};
use canaryd::store::{CaseResultRow, ModelIdentity, NewRun, RunTrigger, Store};

const HOUR_MS: i64 = 3_600_000;
const START: i64 = 1_772_323_200_000;

#[tokio::test]
async fn snapshot_evaluation_and_status_on_both_backends() {
    for db in support::TestDb::all().await {
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let now = START + 9 * 24 * HOUR_MS;
        // Two streams: one whose refusals jump over the last day.
        let specs = [
            StreamSpec::stationary("quiet", 30.0),
            StreamSpec::stationary("spiky", 30.0).with(
                ChangeKind::RefusalRate(0.2),
                now - 24 * HOUR_MS,
                now,
            ),
        ];
        let recs: Vec<canaryd::ingest::Record> = records(&specs, START, now, 3)
            .into_iter()
            .enumerate()
            .map(|(i, v)| canaryd::ingest::record::from_value(i, v).unwrap())
            .collect();
        let rows = canaryd::ingest::prepare(&recs, now, &Default::default());
        for chunk in rows.chunks(2000) {
            store.insert_responses(chunk).await.unwrap();
        }
        // A canary suite whose live target starts failing a case.
        let v = store
            .upsert_suite_version("refunds", 1, "h", "{}", START)
            .await
            .unwrap();
        for run in 0..20 {
            let at = now - (20 - run) * 3 * HOUR_MS;
            let id = store
                .start_run(&NewRun {
                    suite: "refunds",
                    suite_version: v.version,
                    content_hash: "h",
                    trigger: RunTrigger::Schedule,
                    scheduled_for_ms: Some(at),
                    owner: "t",
                    now_ms: at,
                })
                .await
                .unwrap()
                .unwrap();
            let results: Vec<CaseResultRow> = ["pinned", "live"]
                .iter()
                .map(|target| CaseResultRow {
                    run_id: id,
                    suite: "refunds".into(),
                    case_id: "late-fee".into(),
                    target: target.to_string(),
                    requested_model: "gpt-4o".into(),
                    request: "[]".into(),
                    outcome: if *target == "live" && run >= 17 {
                        "fail"
                    } else {
                        "pass"
                    }
                    .into(),
                    verdicts: "[]".into(),
                    agrees_with_pinned: (*target == "live").then_some(run < 17),
                    created_ms: at,
                    ..Default::default()
                })
                .collect();
            store
                .finish_run(id, "completed", &results, at)
                .await
                .unwrap();
        }
        let id = |m: &str| ModelIdentity {
            response_model: Some(m.into()),
            system_fingerprint: None,
        };
        store
            .observe_model(
                "stream:spiky",
                "gpt-4o",
                &id("gpt-4o-2024-08-06"),
                now - 30 * HOUR_MS,
            )
            .await
            .unwrap();
        store
            .observe_model(
                "stream:spiky",
                "gpt-4o",
                &id("gpt-4o-2024-11-20"),
                now - 20 * HOUR_MS,
            )
            .await
            .unwrap();

        let cfg = DetectorConfig::default();
        let snap = store.detector_snapshot(now, &cfg).await.unwrap();
        let findings = evaluate_snapshot(&snap, now, &cfg);
        let get = |stream: &str, rule: Rule| {
            findings
                .iter()
                .find(|f| f.stream == stream && f.rule == rule)
                .unwrap_or_else(|| panic!("{stream} {rule:?} in {findings:#?}"))
        };
        assert_eq!(
            get("spiky", Rule::RefusalRateShift).status,
            Status::Firing,
            "{}",
            db.backend
        );
        assert_eq!(
            get("quiet", Rule::RefusalRateShift).status,
            Status::Ok,
            "{}",
            db.backend
        );
        assert_eq!(get("quiet", Rule::JudgeScoreDrop).status, Status::Ok);
        assert_eq!(get("quiet", Rule::EmbeddingDrift).status, Status::Ok);
        let canary = findings
            .iter()
            .find(|f| f.stream == "suite:refunds" && f.dimension.as_deref() == Some("live"))
            .unwrap();
        assert_eq!(canary.status, Status::Firing, "{canary:?}");
        let change = get("spiky", Rule::ModelChange);
        assert_eq!(change.status, Status::Firing);
        assert_eq!(
            change.severity,
            canaryd::signals::Severity::Warning,
            "escalated: refusals fire on the same stream"
        );

        // The daemon's step: latest verdicts and a health point.
        let saved = canaryd::daemon::detect_once(&store, now, &cfg)
            .await
            .unwrap();
        assert_eq!(store.latest_findings().await.unwrap().len(), saved.len());
        let health = store.health_series("spiky", 0, i64::MAX).await.unwrap();
        assert_eq!(health.len(), 1);
        assert!(health[0].1 < 100.0);
        assert_eq!(
            store.health_series("quiet", 0, i64::MAX).await.unwrap()[0].1,
            100.0
        );
        store.close().await;
    }
}

#[test]
fn status_command_reports_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("canaryd.yaml"), "database: sqlite://c.db\n").unwrap();
    let (code, out, err) = support::run_cli(
        &["status", "--format", "json", "--config", "canaryd.yaml"],
        dir.path(),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["subjects"].as_array().unwrap().len(), 0);
    assert_eq!(v["window_hours"], 24);
}

/// Issue 13: a detector whose verdict is back to `ok` while hysteresis
/// holds its alert firing must not read "ok" in `canaryd status`: the
/// alert (fired by the real lifecycle) still fires, so the status reads
/// "firing (recovering)" in text and JSON, on both backends.
#[tokio::test]
async fn status_shows_an_alert_still_firing_while_its_verdict_is_ok() {
    for db in support::TestDb::all().await {
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let now = canaryd::clock::Clock::system().now_ms();
        let start = now - 9 * 24 * HOUR_MS;
        let recs: Vec<canaryd::ingest::Record> =
            records(&[StreamSpec::stationary("calm", 30.0)], start, now, 5)
                .into_iter()
                .enumerate()
                .map(|(i, v)| canaryd::ingest::record::from_value(i, v).unwrap())
                .collect();
        let rows = canaryd::ingest::prepare(&recs, now, &Default::default());
        for chunk in rows.chunks(2000) {
            store.insert_responses(chunk).await.unwrap();
        }
        // The verdict now, then the same detector as it fired three hours ago.
        let cfg = DetectorConfig::default();
        let snap = store.detector_snapshot(now, &cfg).await.unwrap();
        let findings = evaluate_snapshot(&snap, now, &cfg);
        let verdict = findings
            .iter()
            .find(|f| f.stream == "calm" && f.rule == Rule::RefusalRateShift)
            .unwrap_or_else(|| panic!("{findings:#?}"))
            .clone();
        assert_eq!(verdict.status, Status::Ok, "{verdict:?}");
        let fired = canaryd::signals::Finding {
            status: Status::Firing,
            severity: canaryd::signals::Severity::Warning,
            value: 0.06,
            baseline: 0.01,
            summary: "refused 1.0 % → 6.0 %".into(),
            resolve: false,
            ..verdict
        };
        let alerts = canaryd::alert::AlertsConfig::default();
        for at in [now - 3 * HOUR_MS, now - 3 * HOUR_MS + 60_000] {
            canaryd::alert::process(&store, std::slice::from_ref(&fired), at, &alerts)
                .await
                .unwrap();
        }
        let open = store.open_alerts().await.unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].state, "firing", "{open:?}");
        store.close().await;

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("canaryd.yaml"),
            format!("database: {}\n", db.url),
        )
        .unwrap();
        let (code, out, err) = support::run_cli(
            &["status", "--format", "json", "--config", "canaryd.yaml"],
            dir.path(),
            &[],
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let calm = v["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == "calm")
            .unwrap_or_else(|| panic!("{v:#}"));
        let d = calm["detectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["rule"] == "refusal_rate_shift")
            .unwrap();
        assert_eq!(d["status"], "ok", "{} {d:#}", db.backend);
        assert_eq!(d["alert"], "firing", "{} {d:#}", db.backend);
        assert_eq!(d["shown"]["label"], "firing (recovering)", "{d:#}");
        assert!(
            calm["firing"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["rule"] == "refusal_rate_shift"),
            "{calm:#}"
        );
        // Every other detector of the stream has no alert and reads its verdict.
        for d in calm["detectors"].as_array().unwrap() {
            if d["rule"] != "refusal_rate_shift" {
                assert!(d["alert"].is_null(), "{d:#}");
            }
        }
        let (code, out, err) =
            support::run_cli(&["status", "--config", "canaryd.yaml"], dir.path(), &[]);
        assert_eq!(code, 0, "{err}");
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with("refusal_rate_shift"))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(line.contains("FIRING (recovering)"), "{line}");
    }
}
