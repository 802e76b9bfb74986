//! `canaryd alerts`, `canaryd silence` and the silences API through the real binary.

use crate::support::alerts::HttpReceiver;
use crate::support::alerts::truncation_finding as finding;
use crate::support::{self, TestDaemon, TestDb, run_cli, write_tree};
use canaryd::signals::Status;
use canaryd::store::Store;

const T0: i64 = 1_763_000_000_000;

#[tokio::test]
async fn alerts_json_lists_alerts_with_their_notifications() {
    for db in TestDb::all().await {
        eprintln!("running against {}", db.backend);
        let http = HttpReceiver::start().await;
        let config = format!(
            "alerts:\n  group_wait: 0s\n  channels:\n    hook:\n      webhook: {{ url: \"{}/hook\" }}\n",
            http.url
        );
        let dir = write_tree(&[("canaryd.yaml", &config)]);
        let cfg = support::alerts::load(dir.path(), &config);
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        canaryd::alert::process(&store, &[finding(Status::Firing, T0)], T0, &cfg)
            .await
            .unwrap();
        canaryd::alert::notifier::deliver_due(&store, &cfg, T0)
            .await
            .unwrap();
        store.close().await;
        assert_eq!(http.delivered("/hook").len(), 1);

        let env = [("CANARYD_DATABASE_URL", db.url.as_str())];
        let (code, out, err) = run_cli(&["alerts", "--format", "json"], dir.path(), &env);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let alerts = v["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{out}");
        let a = &alerts[0];
        assert_eq!(a["rule"], "truncation_rate");
        assert_eq!(a["stream"], "support-bot");
        assert_eq!(a["state"], "firing");
        assert_eq!(
            a["history"].as_array().unwrap().len(),
            2,
            "pending, firing: {out}"
        );
        let n = &a["notifications"][0];
        assert_eq!(n["channel"], "hook");
        assert_eq!(n["state"], "sent");
        assert_eq!(
            n["title"],
            "[FIRING] support-bot: truncation rate 0.010 → 0.200"
        );

        let (code, out, err) = run_cli(&["alerts"], dir.path(), &env);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("FIRING") && out.contains("→ hook (webhook) sent"),
            "{out}"
        );
    }
}

#[tokio::test]
async fn silence_add_list_expire() {
    for db in TestDb::all().await {
        eprintln!("running against {}", db.backend);
        let dir = write_tree(&[("canaryd.yaml", "listen: 127.0.0.1:0\n")]);
        let env = [("CANARYD_DATABASE_URL", db.url.as_str())];
        let run = |args: &[&str]| run_cli(args, dir.path(), &env);

        let (code, out, err) = run(&[
            "silence",
            "add",
            "--stream",
            "support-*",
            "--rule",
            "judge_score_drop",
            "--until",
            "2h",
            "--comment",
            "deploying v2",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("silence 1 added, until "), "{out}");

        let (code, out, _) = run(&["silence", "list", "--format", "json"]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let s = &v["silences"][0];
        assert_eq!(s["stream"], "support-*");
        assert_eq!(s["rule"], "judge_score_drop");
        assert_eq!(s["severity"], serde_json::Value::Null);
        assert_eq!(s["comment"], "deploying v2");
        let span = s["ends_ms"].as_i64().unwrap() - s["starts_ms"].as_i64().unwrap();
        assert_eq!(span, 2 * 3600 * 1000);

        let (code, out, _) = run(&["silence", "expire", "1"]);
        assert_eq!((code, out.trim()), (0, "silence 1 expired"));
        let (code, _, err) = run(&["silence", "expire", "1"]);
        assert_eq!(code, 1, "already expired: {err}");
        let (_, out, _) = run(&["silence", "list"]);
        assert_eq!(out.trim(), "no silences");
        let (_, out, _) = run(&["silence", "list", "--all"]);
        assert!(
            out.contains("expired") && out.contains("deploying v2"),
            "{out}"
        );

        // Mistakes are refused with a reason.
        let (code, _, err) = run(&["silence", "add", "--until", "2h", "--comment", "x"]);
        assert_eq!(code, 2);
        assert!(
            err.contains("at least one of --rule, --stream, --severity"),
            "{err}"
        );
        let (code, _, err) = run(&[
            "silence",
            "add",
            "--stream",
            "s",
            "--until",
            "tomorrow",
            "--comment",
            "x",
        ]);
        assert_eq!(code, 2);
        assert!(err.contains("--until"), "{err}");
        let (code, _, err) = run(&[
            "silence",
            "add",
            "--rule",
            "judge_drop",
            "--until",
            "1h",
            "--comment",
            "x",
        ]);
        assert_eq!(code, 2);
        assert!(err.contains("unknown rule"), "{err}");
    }
}

#[tokio::test]
async fn silences_api_on_the_daemon() {
    let db = TestDb::sqlite().await;
    let config = format!("database: {}\nlisten: 127.0.0.1:0\n", db.url);
    let dir = write_tree(&[("canaryd.yaml", &config)]);
    let daemon = TestDaemon::start(dir.path(), &[], &[]);
    let client = reqwest::Client::new();
    let base = &daemon.base_url;

    let r = client
        .post(format!("{base}/api/silences"))
        .json(&serde_json::json!({ "stream": "support-bot", "until": "30m", "comment": "noisy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();

    let bad = client
        .post(format!("{base}/api/silences"))
        .json(&serde_json::json!({ "until": "30m", "comment": "everything?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    let list: serde_json::Value = client
        .get(format!("{base}/api/silences"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["silences"].as_array().unwrap().len(), 1);
    assert_eq!(list["silences"][0]["comment"], "noisy");

    let r = client
        .delete(format!("{base}/api/silences/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .delete(format!("{base}/api/silences/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let list: serde_json::Value = client
        .get(format!("{base}/api/silences"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["silences"].as_array().unwrap().is_empty());

    let alerts: serde_json::Value = client
        .get(format!("{base}/api/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts["alerts"], serde_json::json!([]));
    assert!(
        daemon.stderr().contains("alert notifier started"),
        "{}",
        daemon.stderr()
    );
}
