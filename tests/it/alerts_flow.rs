//! Alerts end to end against real receivers (an SMTP server with STARTTLS
//! and AUTH, an HTTP server for Slack and the webhook), on SQLite and
//! PostgreSQL, with time driven explicitly.

use crate::support::alerts::{HttpReceiver, SmtpServer};
use crate::support::{self, TestDb};
use canaryd::alert::notifier::deliver_due;
use canaryd::alert::{AlertsConfig, process};
use canaryd::signals::{Finding, Rule, Severity, Status};
use canaryd::store::{ModelIdentity, ResponseRow, Store};
use std::sync::atomic::Ordering;

const T0: i64 = 1_763_000_000_000;
const SEC: i64 = 1000;
const HOUR: i64 = 3600 * SEC;

const HOSTILE: &str = "<script>alert(1)</script> <!channel> <@U123> <http://evil|click> & more";

fn finding(
    rule: Rule,
    stream: &str,
    dim: Option<&str>,
    status: Status,
    at: i64,
    baseline: f64,
    value: f64,
) -> Finding {
    Finding {
        rule,
        stream: stream.into(),
        dimension: dim.map(String::from),
        status,
        severity: Severity::Warning,
        at_ms: at,
        value,
        baseline,
        threshold: 0.3,
        p_value: Some(0.0004),
        samples: 412,
        baseline_samples: 9800,
        summary: format!(
            "{} {baseline} → {value} (p=0.0004, n=412)",
            dim.unwrap_or(rule.as_str())
        ),
        resolve: true,
    }
}

fn groundedness(status: Status, at: i64, value: f64) -> Finding {
    finding(
        Rule::JudgeScoreDrop,
        "support-bot",
        Some("groundedness"),
        status,
        at,
        4.22,
        value,
    )
}

fn refusals(status: Status, at: i64, value: f64) -> Finding {
    finding(
        Rule::RefusalRateShift,
        "support-bot",
        None,
        status,
        at,
        0.02,
        value,
    )
}

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

/// A judged response whose output and reasoning are hostile.
async fn seed_evidence(store: &Store, stream: &str) {
    let row = ResponseRow {
        ext_id: Some(format!("{stream}-1")),
        stream: stream.into(),
        ts_ms: T0 - 60 * SEC,
        received_ms: T0 - 60 * SEC,
        input: Some(r#"[{"role":"user","content":"Can I get a refund?"}]"#.into()),
        output: format!("Sure! {HOSTILE}"),
        output_tokens: 12,
        refusal: true,
        ..Default::default()
    };
    store.insert_responses(&[row]).await.unwrap();
    let id: (i64,) = canaryd::on_db!(store.db(), pool => sqlx::query_as("SELECT id FROM responses WHERE stream = $1")
        .bind(stream).fetch_one(pool).await).unwrap();
    canaryd::on_db!(store.db(), pool => sqlx::query(
        "INSERT INTO judge_scores (response_id, stream, ts_ms, judge, judge_version, score, reasoning, source, created_ms) \
         VALUES ($1, $2, $3, 'groundedness', 1, 1.0, $4, 'judge', $3)",
    ).bind(id.0).bind(stream).bind(T0 - 60 * SEC).bind(format!("Invents a policy. <b>bold</b> {HOSTILE}"))
    .execute(pool).await.map(|_| ())).unwrap();
    let scope = format!("stream:{stream}");
    let ident = |m: &str| ModelIdentity {
        response_model: Some(m.into()),
        system_fingerprint: None,
    };
    store
        .observe_model(&scope, "gpt-4o", &ident("gpt-4o-2024-08-06"), T0 - 2 * HOUR)
        .await
        .unwrap();
    store
        .observe_model(&scope, "gpt-4o", &ident("gpt-4o-2024-11-20"), T0 - HOUR)
        .await
        .unwrap();
}

struct Rig {
    smtp: SmtpServer,
    http: HttpReceiver,
    cfg: AlertsConfig,
    _dir: tempfile::TempDir,
}

async fn rig(extra: &str) -> Rig {
    let smtp = SmtpServer::start();
    let http = HttpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = support::alerts::config(dir.path(), &smtp, &http, extra);
    let cfg = support::alerts::load(dir.path(), &text);
    Rig {
        smtp,
        http,
        cfg,
        _dir: dir,
    }
}

fn counts(r: &Rig) -> (usize, usize, usize) {
    (
        r.smtp.mails().len(),
        r.http.delivered("/slack/T000/B000/XXXXSECRET").len(),
        r.http.delivered("/hook").len(),
    )
}

use crate::support::alerts::subject;

#[tokio::test]
async fn grouping_repeat_retry_resolve_and_silence() {
    for db in TestDb::all().await {
        eprintln!("running against {}", db.backend);
        let store = open(&db).await;
        let r = rig("").await;
        let cfg = &r.cfg;
        seed_evidence(&store, "support-bot").await;
        let firing = |at| {
            vec![
                groundedness(Status::Firing, at, 3.71),
                refusals(Status::Firing, at, 0.11),
            ]
        };

        // Two alerts fire for one stream: pending during group_wait, nothing sent.
        let o = process(&store, &firing(T0), T0, cfg).await.unwrap();
        assert_eq!((o.transitions, o.enqueued), (2, 0), "{o:?}");
        deliver_due(&store, cfg, T0).await.unwrap();
        assert_eq!(counts(&r), (0, 0, 0));

        // group_wait over: one notification per channel for the whole group.
        let t = T0 + 31 * SEC;
        let o = process(&store, &[], t, cfg).await.unwrap();
        assert_eq!(o.enqueued, 3, "{o:?}");
        let d = deliver_due(&store, cfg, t).await.unwrap();
        assert_eq!((d.sent, d.failed), (3, 0));
        assert_eq!(
            counts(&r),
            (1, 1, 1),
            "one email, one Slack message, one webhook"
        );
        let mail = &r.smtp.mails()[0];
        assert_eq!(mail.to, ["oncall@example.com"]);
        assert_eq!(
            subject(&mail.raw),
            "[FIRING:2] support-bot: groundedness 4.22 → 3.71 (+1 more) [model changed]"
        );
        assert!(
            mail.raw.contains("multipart/alternative") && mail.raw.contains("text/html"),
            "{}",
            mail.raw
        );
        let slack = &r.http.delivered("/slack/T000/B000/XXXXSECRET")[0].body;
        assert!(
            slack.contains("groundedness") && slack.contains("4.22 → 3.71"),
            "{slack}"
        );
        assert!(
            slack.contains("https://canaryd.example.com/streams/support-bot"),
            "{slack}"
        );
        assert!(
            slack.contains("gpt-4o-2024-08-06 → gpt-4o-2024-11-20"),
            "model change is mentioned: {slack}"
        );
        let hook = &r.http.delivered("/hook")[0];
        assert!(
            hook.headers
                .iter()
                .any(|(k, v)| k == "x-canaryd-token" && v == "t0ken")
        );
        let payload: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
        assert_eq!(payload["version"], 1);
        assert_eq!(payload["status"], "firing");
        assert_eq!(payload["firing"].as_array().unwrap().len(), 2);

        // Still firing an hour later: nothing repeated before repeat_interval.
        for t in [T0 + HOUR, T0 + 3 * HOUR] {
            let o = process(&store, &firing(t), t, cfg).await.unwrap();
            assert_eq!(o.enqueued, 0, "{o:?}");
            deliver_due(&store, cfg, t).await.unwrap();
        }
        assert_eq!(counts(&r), (1, 1, 1), "no repeat before repeat_interval");

        // After repeat_interval, with Slack and the webhook down: email goes,
        // the others are retried, then kept in the outbox.
        r.http.down.store(true, Ordering::SeqCst);
        let t = T0 + 31 * SEC + 4 * HOUR;
        let o = process(&store, &firing(t), t, cfg).await.unwrap();
        assert_eq!(o.enqueued, 3, "{o:?}");
        let d = deliver_due(&store, cfg, t).await.unwrap();
        assert_eq!((d.sent, d.failed), (1, 2));
        assert_eq!(counts(&r), (2, 1, 1));
        assert_eq!(r.http.attempts("/hook"), 1 + 2, "two tries in one delivery");
        let pending: Vec<_> = store
            .list_notifications(50)
            .await
            .unwrap()
            .into_iter()
            .filter(|(n, _)| n.state == "pending")
            .collect();
        assert_eq!(pending.len(), 2);
        for (n, _) in &pending {
            assert_eq!(n.attempts, 2);
            assert!(n.last_error.as_deref().unwrap().contains("500"), "{n:?}");
            assert!(
                !n.last_error.as_deref().unwrap().contains("XXXXSECRET"),
                "the Slack URL is a secret: {n:?}"
            );
        }
        // Not before its next attempt; then delivered once the receiver is back.
        r.http.down.store(false, Ordering::SeqCst);
        assert_eq!(
            deliver_due(&store, cfg, t + 30 * SEC).await.unwrap().sent,
            0
        );
        let d = deliver_due(&store, cfg, t + 61 * SEC).await.unwrap();
        assert_eq!((d.sent, d.failed), (2, 0));
        assert_eq!(counts(&r), (2, 2, 2));

        // Recovery: one resolve notice per channel.
        let t = T0 + 5 * HOUR;
        let ok = vec![
            groundedness(Status::Ok, t, 4.20),
            refusals(Status::Ok, t, 0.02),
        ];
        let o = process(&store, &ok, t, cfg).await.unwrap();
        assert_eq!(o.enqueued, 3, "{o:?}");
        deliver_due(&store, cfg, t).await.unwrap();
        assert_eq!(counts(&r), (3, 3, 3));
        let resolved = &r.smtp.mails()[2];
        let subj = subject(&resolved.raw);
        assert_eq!(
            subj,
            "[RESOLVED:2] support-bot: groundedness back to 4.20 (+1 more)"
        );
        // Quiet afterwards: Ok again and InsufficientData change nothing.
        let t2 = t + HOUR;
        let o = process(
            &store,
            &[
                groundedness(Status::InsufficientData, t2, 0.0),
                refusals(Status::Ok, t2, 0.02),
            ],
            t2,
            cfg,
        )
        .await
        .unwrap();
        assert_eq!((o.transitions, o.enqueued), (0, 0));

        // A silence mutes notifications, not detection.
        let silence = canaryd::store::SilenceRow {
            id: 0,
            rule: None,
            stream: Some("support-*".into()),
            severity: None,
            starts_ms: T0 + 6 * HOUR,
            ends_ms: T0 + 7 * HOUR,
            comment: "maintenance".into(),
            created_by: "test".into(),
            created_ms: T0 + 6 * HOUR,
        };
        store.add_silence(&silence).await.unwrap();
        let t = T0 + 6 * HOUR;
        process(&store, &[groundedness(Status::Firing, t, 3.5)], t, cfg)
            .await
            .unwrap();
        let o = process(&store, &[], t + 31 * SEC, cfg).await.unwrap();
        assert_eq!(
            (o.transitions, o.enqueued),
            (0, 0),
            "reopened within flap_window (firing at once, the same alert), but silenced: {o:?}"
        );
        deliver_due(&store, cfg, t + 31 * SEC).await.unwrap();
        assert_eq!(counts(&r), (3, 3, 3), "nothing during a silence");
        let alerts = store.list_alerts(10).await.unwrap();
        let g = alerts
            .iter()
            .find(|a| a.dimension == "groundedness")
            .unwrap();
        assert_eq!(g.state, "firing", "detection goes on during a silence");
        // The silence ends while it still fires: now it is notified.
        let o = process(&store, &[], T0 + 7 * HOUR, cfg).await.unwrap();
        assert_eq!(o.enqueued, 3, "{o:?}");
        deliver_due(&store, cfg, T0 + 7 * HOUR).await.unwrap();
        assert_eq!(counts(&r), (4, 4, 4));

        // The history records every state change.
        let h = store.alert_history(g.id).await.unwrap();
        let states: Vec<&str> = h.iter().map(|x| x.to_state.as_str()).collect();
        assert_eq!(states, ["pending", "firing", "resolved", "firing"], "{h:?}");

        store.close().await;
    }
}

#[tokio::test]
async fn hostile_content_is_escaped_everywhere() {
    for db in TestDb::all().await {
        eprintln!("running against {}", db.backend);
        let store = open(&db).await;
        let r = rig("").await;
        let cfg = &r.cfg;
        let stream = "evil\r\nBcc: victim@example.com <!channel>";
        seed_evidence(&store, stream).await;
        let f = finding(
            Rule::JudgeScoreDrop,
            stream,
            Some("groundedness"),
            Status::Firing,
            T0,
            4.2,
            2.0,
        );
        process(&store, &[f], T0, cfg).await.unwrap();
        process(&store, &[], T0 + 31 * SEC, cfg).await.unwrap();
        let d = deliver_due(&store, cfg, T0 + 31 * SEC).await.unwrap();
        assert_eq!((d.sent, d.failed), (3, 0));

        // No header can be injected through the stream name.
        let mail = &r.smtp.mails()[0];
        let headers = mail.raw.split("\r\n\r\n").next().unwrap();
        assert!(
            !headers
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc")),
            "{headers}"
        );
        assert_eq!(mail.to, ["oncall@example.com"], "no extra recipient");

        // The stored email (what was sent) escapes HTML in the HTML part.
        let outbox = store.list_notifications(10).await.unwrap();
        let email_row = outbox.iter().find(|(n, _)| n.kind == "email").unwrap();
        let email: canaryd::alert::render::Email = serde_json::from_str(&email_row.0.body).unwrap();
        assert!(
            !email.subject.contains('\r') && !email.subject.contains('\n'),
            "{}",
            email.subject
        );
        assert!(
            !email.html.contains("<script>") && !email.html.contains("<b>bold"),
            "{}",
            email.html
        );
        assert!(email.html.contains("&lt;script&gt;"), "{}", email.html);

        // Slack: no mention, no link from content; only the status page link.
        let slack = &r.http.delivered("/slack/T000/B000/XXXXSECRET")[0].body;
        for bad in ["<!channel>", "<@U123>", "<http://evil|click>", "<script>"] {
            assert!(!slack.contains(bad), "{bad} in {slack}");
        }
        assert!(
            slack.contains("&lt;!channel&gt;") && slack.contains("&lt;@U123&gt;"),
            "{slack}"
        );
        let v: serde_json::Value = serde_json::from_str(slack).unwrap();
        let all_text = v.to_string();
        assert_eq!(
            all_text.matches("<https://").count(),
            1,
            "one link, the status page: {all_text}"
        );
        assert!(all_text.contains("<https://canaryd.example.com/streams/evil%0D%0ABcc%3A%20victim%40example.com%20%3C%21channel%3E|"), "{all_text}");

        store.close().await;
    }
}

#[tokio::test]
async fn email_failures_stay_in_the_outbox_and_never_show_the_password() {
    let db = TestDb::sqlite().await;
    let store = open(&db).await;
    let r = rig("").await;
    let mut cfg = r.cfg.clone();
    cfg.channels.retain(|name, _| name == "mail");

    r.smtp.down.store(true, Ordering::SeqCst);
    process(&store, &[groundedness(Status::Firing, T0, 3.0)], T0, &cfg)
        .await
        .unwrap();
    let t = T0 + 31 * SEC;
    assert_eq!(process(&store, &[], t, &cfg).await.unwrap().enqueued, 1);
    let d = deliver_due(&store, &cfg, t).await.unwrap();
    assert_eq!((d.sent, d.failed), (0, 1));
    let (n, _) = store.list_notifications(1).await.unwrap().remove(0);
    assert_eq!((n.state.as_str(), n.attempts), ("pending", 2));
    assert!(n.last_error.as_deref().unwrap().contains("451"), "{n:?}");

    // A second failed round waits twice as long (60 s, then 120 s).
    let d = deliver_due(&store, &cfg, t + 61 * SEC).await.unwrap();
    assert_eq!(d.failed, 1);
    assert_eq!(
        deliver_due(&store, &cfg, t + 61 * SEC + 119 * SEC)
            .await
            .unwrap(),
        Default::default()
    );

    // Wrong password: refused by the server, and the error does not contain it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "wrong-pass-123").unwrap();
    if let Some(canaryd::alert::settings::ChannelConfig::Email(e)) = cfg.channels.get_mut("mail") {
        e.password = canaryd::secret::SecretRef {
            file: Some(dir.path().join("pw")),
            ..Default::default()
        };
    }
    r.smtp.down.store(false, Ordering::SeqCst);
    let t2 = t + 61 * SEC + 121 * SEC;
    let d = deliver_due(&store, &cfg, t2).await.unwrap();
    assert_eq!(d.failed, 1);
    let (n, _) = store.list_notifications(1).await.unwrap().remove(0);
    let err = n.last_error.unwrap();
    assert!(
        err.contains("535") && !err.contains("wrong-pass-123"),
        "{err}"
    );
    assert!(r.smtp.mails().is_empty());

    // Fixed and back up: delivered, exactly once.
    let d = deliver_due(&store, &r.cfg, t2 + 4 * 60 * SEC)
        .await
        .unwrap();
    assert_eq!((d.sent, d.failed), (1, 0));
    assert_eq!(r.smtp.mails().len(), 1);
    assert_eq!(
        deliver_due(&store, &r.cfg, t2 + HOUR).await.unwrap(),
        Default::default()
    );
    store.close().await;
}

#[tokio::test]
async fn an_alert_mentions_a_model_change_firing_on_its_stream() {
    let db = TestDb::sqlite().await;
    let store = open(&db).await;
    let r = rig("").await;
    let mut cfg = r.cfg.clone();
    cfg.channels.retain(|name, _| name == "hook");
    let mut change = finding(
        Rule::ModelChange,
        "billing",
        Some("gpt-4o"),
        Status::Firing,
        T0,
        0.0,
        1.0,
    );
    change.summary = "gpt-4o-2024-08-06 → gpt-4o-2024-11-20".into();
    let length = finding(
        Rule::LengthDrift,
        "billing",
        None,
        Status::Firing,
        T0,
        300.0,
        120.0,
    );
    process(&store, &[change, length], T0, &cfg).await.unwrap();
    process(&store, &[], T0 + 31 * SEC, &cfg).await.unwrap();
    deliver_due(&store, &cfg, T0 + 31 * SEC).await.unwrap();
    let posts = r.http.delivered("/hook");
    assert_eq!(posts.len(), 1, "one notification for the group");
    let v: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(v["model_change"], true);
    assert_eq!(
        v["title"],
        "[FIRING:2] billing: output length 300 → 120 (+1 more) [model changed]"
    );
    let rules: Vec<&str> = v["firing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["length_drift", "model_change"]);
    assert_eq!(
        v["firing"][1]["change"],
        "gpt-4o-2024-08-06 → gpt-4o-2024-11-20"
    );
    store.close().await;
}
