//! The status pages as a user gets them: the real binary serving a
//! database with data, fetched over HTTP. Also the page queries on both
//! backends (PostgreSQL when reachable, mandatory in CI).

use crate::support::web_data::{HOSTILE, HOUR_MS, JUDGES, STREAM, SUITE, XSS_OUTPUT};
use crate::support::{self, TestDaemon, TestDb, write_tree};
use canaryd::store::Store;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("GET");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// Hostile text never appears raw: no element the data could have injected.
fn assert_no_injection(page: &str, body: &str) {
    for raw in ["<script", "<img", "<i>", "<b>now"] {
        assert!(
            !body.contains(raw),
            "{page}: raw {raw:?} in the page:\n{body}"
        );
    }
}

fn enc(s: &str) -> String {
    canaryd::web::fmt::enc(s)
}

/// An href as Tera's autoescape writes it (`/` becomes `&#x2F;`; browsers decode it).
fn href(path: &str) -> String {
    format!("href=\"{}\"", path.replace('/', "&#x2F;"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_charts_escape_content_and_404_unknowns() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("canaryd.db");
    let store = Store::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let seeded = support::web_data::seed(&store, support::web_data::now_ms()).await;
    let alerts_installed =
        support::web_data::seed_alerts(&store, support::web_data::now_ms()).await;
    store.close().await;
    let cfg = write_tree(&[("canaryd.yaml", &support::web_data::config(&db_path))]);
    let app = TestDaemon::start(cfg.path(), &[], &[]);
    let base = &app.base_url;

    let (status, body) = get(&format!("{base}/")).await;
    assert_eq!(status, 200, "{body}");
    assert_no_injection("overview", &body);
    assert!(body.matches("<svg").count() >= 3, "sparklines: {body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
        "{body}"
    );
    assert!(
        body.contains(&href(&format!("/streams/{}", enc(HOSTILE)))),
        "{body}"
    );
    assert!(
        body.contains(&href(&format!("/streams/{}", enc(STREAM)))),
        "{body}"
    );
    assert!(body.contains(&href(&format!("/suites/{SUITE}"))), "{body}");
    assert!(
        body.contains("gpt-4o-2024-08-06 → gpt-4o-2024-11-20"),
        "last model change: {body}"
    );
    if alerts_installed {
        assert!(
            body.contains(r#"<a href="/alerts">1</a>"#),
            "one firing alert: {body}"
        );
    }

    let (status, body) = get(&format!("{base}/streams/{}", enc(STREAM))).await;
    assert_eq!(status, 200, "{body}");
    assert_no_injection("stream", &body);
    // Health, one per judge, refusals, length, embedding.
    assert!(body.matches("<svg").count() >= 3 + JUDGES.len(), "{body}");
    for j in JUDGES {
        assert!(body.contains(&format!("Judge: {j}")), "{j}: {body}");
    }
    assert!(body.contains(r#"class="band""#), "baseline band: {body}");
    assert!(
        body.contains(r#"class="marker""#),
        "model change marked: {body}"
    );
    assert!(
        body.contains(r#"class="current""#),
        "length histogram: {body}"
    );
    assert!(
        body.contains(&href(&format!("/responses/{}", seeded.worst_response))),
        "worst response linked: {body}"
    );
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{body}"
    );

    assert!(body.contains("<h2>Detector verdicts</h2>"), "{body}");

    // A raw slash in the path reaches the same stream.
    let (status, _) = get(&format!("{base}/streams/chat/support%20v2")).await;
    assert_eq!(status, 200);

    let (status, body) = get(&format!("{base}/streams/{}", enc(HOSTILE))).await;
    assert_eq!(status, 200, "{body}");
    assert_no_injection("hostile stream", &body);
    assert!(
        body.contains("<h1>&lt;script&gt;alert(1)&lt;&#x2F;script&gt;</h1>"),
        "{body}"
    );

    let (status, body) = get(&format!("{base}/suites/{SUITE}")).await;
    assert_eq!(status, 200, "{body}");
    assert_no_injection("suite", &body);
    assert!(body.contains("<svg"), "pass-rate chart: {body}");
    assert!(body.contains("Case refund-policy"), "{body}");
    assert!(body.contains("<h2>Detector verdicts</h2>"), "{body}");
    assert!(body.contains("differs from pinned"), "{body}");
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "live answer: {body}"
    );
    let pinned = body.find("<b>pinned</b>").expect("pinned column");
    let live = body.find("<b>live</b>").expect("live column");
    assert!(pinned < live, "pinned is shown before live");
    assert_eq!(
        body.matches("v2</td>").count(),
        24,
        "one history row per run"
    );

    let (status, body) = get(&format!("{base}/responses/{}", seeded.xss_response)).await;
    assert_eq!(status, 200, "{body}");
    assert_no_injection("response", &body);
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{body}"
    );
    assert!(body.contains("You are the support bot."), "input: {body}");
    assert!(
        body.contains("Passwords are reset from Settings."),
        "context: {body}"
    );
    assert!(
        body.contains("The answer &lt;i&gt;ignores&lt;&#x2F;i&gt; the question &amp; the context."),
        "reasoning: {body}"
    );
    assert!(body.contains("helpfulness v1: 1"), "{body}");
    assert!(
        body.contains("gpt-4o-2024-11-20") && body.contains("fp_b"),
        "{body}"
    );

    let (status, body) = get(&format!("{base}/alerts")).await;
    assert_eq!(status, 200, "{body}");
    if alerts_installed {
        assert!(!body.contains("not configured"), "{body}");
        assert_no_injection("alerts", &body);
        let firing = body
            .find("helpfulness 4.1 → 3.1")
            .expect("seeded firing alert listed");
        let resolved = body
            .find("refusals back to normal")
            .expect("seeded resolved alert listed");
        assert!(firing < resolved, "firing first: {body}");
        assert!(
            body.contains("helpfulness 4.1 → 3.1 &lt;b&gt;dropped&lt;&#x2F;b&gt;"),
            "{body}"
        );
        assert!(
            body.contains("current 3.1 vs baseline 4.1"),
            "evidence numbers: {body}"
        );
        // The worst examples behind the alert, with the judge's reasoning.
        assert!(body.contains("examples</summary>"), "{body}");
        assert!(
            body.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "worst output: {body}"
        );
        assert!(
            body.contains("The answer &lt;i&gt;ignores&lt;&#x2F;i&gt;"),
            "reasoning: {body}"
        );
        assert!(
            body.contains(&href(&format!("/streams/{}", enc(HOSTILE)))),
            "{body}"
        );
    } else {
        assert!(body.contains("Alerting is not configured"), "{body}");
    }

    for path in [
        "/streams/nope".to_string(),
        format!("/streams/{}", enc("<svg onload=alert(1)>")),
        "/suites/nope".into(),
        "/responses/999999".into(),
        "/responses/abc".into(),
    ] {
        let (status, body) = get(&format!("{base}{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("<svg onload"), "{path}: {body}");
    }
    assert!(
        !app.stderr().contains("status page failed"),
        "{}",
        app.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_queries_agree_on_both_backends() {
    for db in TestDb::all().await {
        let backend = db.backend;
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let now = support::web_data::now_ms();
        let seeded = support::web_data::seed(&store, now).await;
        let day_ago = now - 24 * HOUR_MS;

        assert!(store.has_table("responses").await.unwrap(), "{backend}");
        assert!(
            !store.has_table("no_such_table").await.unwrap(),
            "{backend}"
        );
        let streams = store.active_streams(now - 9 * 24 * HOUR_MS).await.unwrap();
        assert_eq!(streams, [HOSTILE, STREAM], "{backend}");
        assert!(store.stream_exists(STREAM).await.unwrap(), "{backend}");
        assert!(!store.stream_exists("nope").await.unwrap(), "{backend}");

        let hourly = store
            .hourly_rollups(Some(STREAM), day_ago, now + HOUR_MS)
            .await
            .unwrap();
        assert!(
            (24..=25).contains(&hourly.len()),
            "{backend}: {}",
            hourly.len()
        );
        let all = store
            .hourly_rollups(None, day_ago, now + HOUR_MS)
            .await
            .unwrap();
        assert_eq!(all.len(), 2 * hourly.len(), "{backend}");
        let scores = store
            .score_rollups(Some(STREAM), day_ago, now + HOUR_MS)
            .await
            .unwrap();
        assert_eq!(scores.len(), JUDGES.len() * hourly.len(), "{backend}");

        let hist = store
            .length_histogram(STREAM, day_ago, now + HOUR_MS)
            .await
            .unwrap();
        let bins: Vec<i64> = hist.iter().map(|b| b.0).collect();
        assert_eq!(bins, [0, 1, 3, 5, 6], "{backend}");
        let total: i64 = hist.iter().map(|b| b.1).sum();
        assert_eq!(total, hourly.iter().map(|h| h.n).sum::<i64>(), "{backend}");

        let emb = store
            .embedding_rollups(STREAM, day_ago, now + HOUR_MS)
            .await
            .unwrap();
        assert_eq!(emb.len(), hourly.len(), "{backend}");
        assert_eq!(emb[0].sum.len(), 3, "{backend}");

        let worst = store.worst_judged(STREAM, day_ago, 3).await.unwrap();
        assert_eq!(worst[0].response_id, seeded.worst_response, "{backend}");
        assert_eq!(worst[0].output, XSS_OUTPUT, "{backend}");
        assert!(
            worst.windows(2).all(|w| w[0].score <= w[1].score),
            "{backend}"
        );

        let r = store
            .response_by_id(seeded.xss_response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.output, XSS_OUTPUT, "{backend}");
        assert!(
            store.response_by_id(-1).await.unwrap().is_none(),
            "{backend}"
        );
        let detail = store.response_scores(seeded.xss_response).await.unwrap();
        assert_eq!(detail.len(), 2, "{backend}");

        assert_eq!(store.suite_names().await.unwrap(), [SUITE], "{backend}");
        let runs = store.recent_runs(SUITE, 50).await.unwrap();
        let counts = store
            .run_target_counts(SUITE, runs.last().unwrap().id)
            .await
            .unwrap();
        let fails: i64 = counts
            .iter()
            .filter(|c| c.outcome == "fail")
            .map(|c| c.n)
            .sum();
        assert_eq!(
            fails, 6,
            "{backend}: live failed one case in each of 6 runs"
        );

        let events = store.latest_model_events().await.unwrap();
        let scopes: Vec<&str> = events.iter().map(|e| e.scope.as_str()).collect();
        assert_eq!(
            scopes,
            [format!("stream:{STREAM}"), format!("suite:{SUITE}:live")],
            "{backend}"
        );

        store.close().await;
    }
}
