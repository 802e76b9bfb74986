//! Real receivers for the alert tests: an SMTP server (mailin-embedded, with
//! STARTTLS and AUTH PLAIN) and an HTTP server recording Slack and webhook
//! posts, both on 127.0.0.1 with a random port, both able to be "down".
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server, SslConfig, response};

pub const SMTP_USER: &str = "canaryd";
pub const SMTP_PASSWORD: &str = "s3cret-pw";

/// One received mail: envelope recipients and the raw message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub raw: String,
}

#[derive(Clone)]
struct SmtpHandler {
    mails: Arc<Mutex<Vec<Mail>>>,
    down: Arc<AtomicBool>,
    to: Vec<String>,
    buf: Vec<u8>,
}

impl Handler for SmtpHandler {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        if self.down.load(Ordering::SeqCst) {
            return response::INTERNAL_ERROR;
        }
        self.to = to.to_vec();
        self.buf.clear();
        response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        self.mails.lock().unwrap().push(Mail {
            to: std::mem::take(&mut self.to),
            raw: String::from_utf8_lossy(&self.buf).into_owned(),
        });
        self.buf.clear();
        response::OK
    }
    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        if user == SMTP_USER && password == SMTP_PASSWORD {
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}

/// A real SMTP server on loopback requiring STARTTLS and AUTH PLAIN.
pub struct SmtpServer {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
    pub down: Arc<AtomicBool>,
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp")
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let handler = SmtpHandler {
            mails: mails.clone(),
            down: down.clone(),
            to: Vec::new(),
            buf: Vec::new(),
        };
        let mut server = Server::new(handler);
        let f = fixtures();
        server
            .with_name("localhost")
            .with_ssl(SslConfig::SelfSigned {
                cert_path: f.join("server.pem").display().to_string(),
                key_path: f.join("server.key").display().to_string(),
            })
            .unwrap()
            .with_auth(mailin_embedded::AuthMechanism::Plain)
            .with_num_threads(4)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer { port, mails, down }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

/// One recorded HTTP request.
#[derive(Debug, Clone)]
pub struct Post {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
}

/// An axum server that records every POST and answers 200, or 500 while `down`.
pub struct HttpReceiver {
    pub url: String,
    pub posts: Arc<Mutex<Vec<Post>>>,
    pub down: Arc<AtomicBool>,
}

impl HttpReceiver {
    pub async fn start() -> HttpReceiver {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode, Uri};
        type Shared = (Arc<Mutex<Vec<Post>>>, Arc<AtomicBool>);
        async fn record(
            State((posts, down)): State<Shared>,
            uri: Uri,
            headers: HeaderMap,
            body: String,
        ) -> StatusCode {
            let status = if down.load(Ordering::SeqCst) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            posts.lock().unwrap().push(Post {
                path: uri.path().to_string(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body,
                status: status.as_u16(),
            });
            status
        }
        let posts = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let app = axum::Router::new()
            .fallback(axum::routing::post(record))
            .with_state((posts.clone(), down.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpReceiver { url, posts, down }
    }

    /// Requests to `path` that were answered 200.
    pub fn delivered(&self, path: &str) -> Vec<Post> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.path == path && p.status == 200)
            .cloned()
            .collect()
    }

    pub fn attempts(&self, path: &str) -> usize {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.path == path)
            .count()
    }
}

/// The config text for the channels of both receivers. `dir` holds the
/// secret files (SMTP password, Slack URL).
pub fn config(dir: &Path, smtp: &SmtpServer, http: &HttpReceiver, extra: &str) -> String {
    std::fs::write(dir.join("smtp-password"), format!("{SMTP_PASSWORD}\n")).unwrap();
    std::fs::write(
        dir.join("slack-url"),
        format!("{}/slack/T000/B000/XXXXSECRET\n", http.url),
    )
    .unwrap();
    format!(
        r#"
base_url: https://canaryd.example.com
alerts:
  repeat_interval: 4h
  group_wait: 30s
  max_examples: 2
  retry: {{ attempts: 2, backoff: 10ms, outbox_delay: 60s, max_delay: 1h }}
  channels:
    mail:
      email:
        host: 127.0.0.1
        port: {port}
        tls: starttls
        ca_file: {ca}
        username: {SMTP_USER}
        password: {{ file: smtp-password }}
        from: "canaryd <canaryd@example.com>"
        to: [oncall@example.com]
        timeout: 10s
    chat:
      slack: {{ webhook_url: {{ file: slack-url }}, timeout: 5s }}
    hook:
      webhook:
        url: {url}/hook
        headers: {{ X-Canaryd-Token: t0ken }}
        timeout: 5s
{extra}"#,
        port = smtp.port,
        ca = fixtures().join("ca.pem").display(),
        url = http.url,
    )
}

/// Loads the alert settings as the daemon does.
pub fn load(dir: &Path, text: &str) -> canaryd::alert::AlertsConfig {
    let path = dir.join("canaryd.yaml");
    std::fs::write(&path, text).unwrap();
    let loaded = canaryd::config::load(&path).unwrap_or_else(|d| panic!("config: {d}"));
    canaryd::config::alert_settings(&loaded.config)
}

/// The raw header block of a received mail (up to the first blank line).
pub fn headers(raw: &str) -> &str {
    raw.split("\r\n\r\n").next().unwrap()
}

/// The Subject header, unfolded and with RFC 2047 words decoded (the
/// demo's capture server reads captured mail the same way).
pub fn subject(raw: &str) -> String {
    canaryd::demo::capture::subject_of(raw.as_bytes())
}

/// A critical `truncation_rate` finding on `support-bot` (1 % → 20 %).
pub fn truncation_finding(status: canaryd::signals::Status, at: i64) -> canaryd::signals::Finding {
    use canaryd::signals::{Finding, Rule, Severity};
    Finding {
        rule: Rule::TruncationRate,
        stream: "support-bot".into(),
        dimension: None,
        status,
        severity: Severity::Critical,
        at_ms: at,
        value: 0.2,
        baseline: 0.01,
        threshold: 0.05,
        p_value: Some(0.001),
        samples: 300,
        baseline_samples: 5000,
        summary: "truncation rate 1% → 20%".into(),
        resolve: true,
    }
}
