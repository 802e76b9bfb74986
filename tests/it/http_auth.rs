//! The access model of the whole HTTP surface, against the real binary:
//! ingest tokens write records, API tokens read and change state, pages take
//! a bearer header or the login cookie, health stays open, and an exposed
//! address without tokens is refused by `check` and `serve`.

use crate::support::{Spawned, TestDb, run_cli, write_tree};

const CONFIG: &str = r#"
listen: 127.0.0.1:0
judges: ./no-judges
detectors: { every_secs: 0 }
ingest:
  tokens: [{ env: AUTH_TEST_INGEST }]
api:
  tokens: [{ env: AUTH_TEST_API }, { file: api-token-2 }]
judging: { enabled: false }
"#;

const INGEST: &str = "ingest-t0ken";
const API: &str = "api-t0ken";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn start(config: &str, db: &TestDb) -> (tempfile::TempDir, Spawned) {
    let dir = write_tree(&[("canaryd.yaml", config), ("api-token-2", "second-api\n")]);
    let daemon = Spawned::start(
        &["serve", "--config", "canaryd.yaml"],
        dir.path(),
        &[
            ("CANARYD_DATABASE_URL", &db.url),
            ("AUTH_TEST_INGEST", INGEST),
            ("AUTH_TEST_API", API),
        ],
    );
    (dir, daemon)
}

#[tokio::test]
async fn every_route_asks_for_the_credential_of_its_class() {
    let db = TestDb::sqlite().await;
    let (_dir, daemon) = start(CONFIG, &db);
    let base = &daemon.base_url;
    let http = client();
    let status =
        |r: reqwest::RequestBuilder| async move { r.send().await.unwrap().status().as_u16() };

    // Open: health and readiness.
    for p in ["/healthz", "/readyz"] {
        assert_eq!(status(http.get(format!("{base}{p}"))).await, 200, "{p}");
    }

    // Silences: no token, an ingest token, a wrong token are refused; the
    // scheme is case-insensitive.
    let silence = r#"{"stream":"*","until":"30d","comment":"x"}"#;
    let post = || {
        http.post(format!("{base}/api/silences"))
            .header("content-type", "application/json")
            .body(silence)
    };
    let r = post().send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("api.tokens"),
        "{body}"
    );
    assert_eq!(status(post().bearer_auth(INGEST)).await, 401);
    assert_eq!(status(post().bearer_auth("api-t0ke")).await, 401);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = post()
            .header("authorization", format!("{scheme} {API}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{scheme}");
    }
    let r = post().bearer_auth("second-api").send().await.unwrap();
    assert_eq!(r.status(), 201, "a token read from a file");
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let del = format!("{base}/api/silences/{id}");
    assert_eq!(status(http.delete(&del)).await, 401);
    assert_eq!(status(http.delete(&del).bearer_auth(INGEST)).await, 401);
    assert_eq!(status(http.delete(&del).bearer_auth(API)).await, 200);

    // Reading state: alerts, silences, status, metrics.
    for p in ["/api/alerts", "/api/silences", "/api/v1/status", "/metrics"] {
        let url = format!("{base}{p}");
        assert_eq!(status(http.get(&url)).await, 401, "{p}");
        assert_eq!(status(http.get(&url).bearer_auth(INGEST)).await, 401, "{p}");
        assert_eq!(status(http.get(&url).bearer_auth(API)).await, 200, "{p}");
    }

    // Writing records takes an ingest token, not an API token.
    let rec = r#"{"id":"r1","stream":"s","output":"The order shipped."}"#;
    let ingest = || http.post(format!("{base}/v1/responses")).body(rec);
    assert_eq!(status(ingest()).await, 401);
    assert_eq!(status(ingest().bearer_auth(API)).await, 401);
    assert_eq!(
        status(ingest().header("authorization", format!("bearer {INGEST}"))).await,
        202
    );

    // Pages: a browser without credentials is sent to the login form; a
    // bearer header works; production text is not shown to anyone else.
    for p in [
        "/",
        "/streams/s",
        "/responses/1",
        "/alerts",
        "/alerts/1/postmortem.md",
        "/sessions?stream=s&id=x",
        "/suites/x",
    ] {
        let r = http.get(format!("{base}{p}")).send().await.unwrap();
        assert_eq!(r.status(), 303, "{p}");
        let to = r.headers()["location"].to_str().unwrap();
        assert!(to.starts_with("/login?next="), "{p}: {to}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("The order shipped."), "{p}");
    }
    let r = http
        .get(format!("{base}/responses/1"))
        .bearer_auth(API)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("The order shipped."));
    assert_eq!(
        status(http.get(format!("{base}/")).bearer_auth(INGEST)).await,
        401
    );

    // The login form: a wrong token is refused, a right one sets a cookie
    // that is HttpOnly, SameSite=Strict and does not contain the token.
    let form = http
        .get(format!("{base}/login?next=/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("name=\"token\""));
    let login = |token: &str| {
        http.post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&next=%2Fresponses%2F1"))
    };
    let r = login("nope").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = login(INGEST).send().await.unwrap();
    assert_eq!(r.status(), 401, "an ingest token does not open the pages");
    let r = login(API).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/responses/1");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains(API), "the cookie is not the token: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let r = http
        .get(format!("{base}/responses/1"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("The order shipped."));
    // The cookie opens pages only: the state-changing API wants the header.
    let r = post().header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 401, "no silence from a cookie");
    // An off-site `next` is not followed.
    let r = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={API}&next=%2F%2Fevil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    // Logging out clears the cookie.
    let r = http.post(format!("{base}/logout")).send().await.unwrap();
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn metrics_are_open_only_when_the_config_says_so() {
    let db = TestDb::sqlite().await;
    let config = CONFIG.replace("api:\n", "api:\n  open_metrics: true\n");
    let (_dir, daemon) = start(&config, &db);
    let http = client();
    let r = http
        .get(format!("{}/metrics", daemon.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/api/alerts", daemon.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "only metrics are opened");
}

/// Runs `canaryd check` (or another command) on `config` in a directory
/// with empty suite and judge directories.
fn cli(cmd: &str, config: &str, envs: &[(&str, &str)]) -> (i32, String) {
    let dir = write_tree(&[
        ("canaryd.yaml", config),
        ("canaries/.keep", ""),
        ("judges/.keep", ""),
    ]);
    let (code, _, err) = run_cli(&[cmd, "--config", "canaryd.yaml"], dir.path(), envs);
    (code, err)
}

#[test]
fn an_exposed_address_without_tokens_is_refused_by_check_and_serve() {
    let exposed = "listen: 0.0.0.0:0\n";
    let (code, err) = cli("check", exposed, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(
        err.contains("api.tokens") && err.contains("insecure_no_auth"),
        "{err}"
    );
    let (code, err) = cli("serve", exposed, &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
    // The environment override is checked the same way.
    let (code, err) = cli(
        "check",
        "listen: 127.0.0.1:0\n",
        &[("CANARYD_LISTEN", "0.0.0.0:8080")],
    );
    assert_eq!(code, 1, "{err}");
    // Saying so explicitly, or configuring tokens, is accepted.
    let (code, err) = cli("check", "listen: 0.0.0.0:0\ninsecure_no_auth: true\n", &[]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = cli(
        "check",
        "listen: 0.0.0.0:0\ningest: { tokens: [{ env: T1 }] }\napi: { tokens: [{ env: T2 }] }\n",
        &[("T1", "a"), ("T2", "b")],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn check_resolves_the_tokens_serve_resolves_and_warns_about_half_configured_access() {
    let (code, err) = cli(
        "check",
        "listen: 127.0.0.1:0\ningest: { tokens: [{ env: CHECK_UNSET_TOKEN_VAR }] }\napi: { tokens: [{ file: missing-token }] }\n",
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CHECK_UNSET_TOKEN_VAR"), "{err}");
    assert!(err.contains("api.tokens[0]"), "{err}");
    let (code, err) = cli(
        "check",
        "listen: 127.0.0.1:0\ningest: { tokens: [{ env: T1 }] }\n",
        &[("T1", "secret-value-1")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("api.tokens is not"), "{err}");
    assert!(!err.contains("secret-value-1"), "{err}");
}

#[test]
fn check_says_smtp_credentials_are_not_sent_without_tls() {
    let config = "listen: 127.0.0.1:0\nalerts:\n  channels:\n    mail:\n      email: { host: 127.0.0.1, port: 2525, tls: none, username: u, password: { env: SMTP_PW }, from: a@b.example, to: [c@d.example] }\n";
    let (code, err) = cli("check", config, &[("SMTP_PW", "pw")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("tls: none") && err.contains("not sent"),
        "{err}"
    );
}
