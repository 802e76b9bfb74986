//! Loopback stand-ins for an SMTP relay and the Slack and webhook
//! endpoints. The daemon's real delivery code (lettre, the Slack and
//! webhook clients) talks to them over TCP; each message is written to a
//! file, so what a person would have received can be read afterwards.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Called with each captured file and a one-line description of it.
pub type OnCapture = Arc<dyn Fn(&Path, &str) + Send + Sync>;

/// Numbers files per directory in arrival order (`001.eml`, `002.eml`, …).
#[derive(Debug)]
struct Sink {
    dir: PathBuf,
    ext: &'static str,
    next: AtomicU32,
}

impl Sink {
    fn new(dir: PathBuf, ext: &'static str) -> Sink {
        Sink {
            dir,
            ext,
            next: AtomicU32::new(1),
        }
    }
    fn write(&self, data: &[u8]) -> std::io::Result<PathBuf> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{n:03}.{}", self.ext));
        std::fs::write(&path, data)?;
        Ok(path)
    }
}

/// Starts a minimal SMTP server on a loopback port that stores every
/// message it accepts as an `.eml` file in `dir`.
pub async fn smtp(
    dir: PathBuf,
    on: OnCapture,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sink = Arc::new(Sink::new(dir, "eml"));
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            };
            let (sink, on) = (sink.clone(), on.clone());
            tokio::spawn(async move {
                if let Err(e) = smtp_session(stream, &sink, &on).await {
                    tracing::warn!("demo SMTP session failed: {e}");
                }
            });
        }
    });
    Ok(addr)
}

/// One SMTP conversation (RFC 5321, the commands a client sends without
/// TLS or auth). Dot-stuffing is undone so the file is the message as sent.
async fn smtp_session(stream: TcpStream, sink: &Sink, on: &OnCapture) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 canaryd-demo ESMTP capture\r\n")
        .await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-canaryd-demo\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut message = Vec::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    message.extend_from_slice(unstuffed.as_bytes());
                }
                let path = sink.write(&message)?;
                on(&path, &subject_of(&message));
                b"250 OK queued\r\n"
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The `Subject:` header of a message, decoded when it is a simple
/// RFC 2047 UTF-8 word (lettre encodes non-ASCII subjects that way).
pub fn subject_of(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let mut subject = String::new();
    let mut in_subject = false;
    for l in text.lines() {
        if in_subject && (l.starts_with(' ') || l.starts_with('\t')) {
            // Unfolding removes the line break, not the whitespace after it.
            subject.push(' ');
            subject.push_str(l.trim_start());
            continue;
        }
        in_subject = false;
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("Subject:") {
            subject = v.trim().to_string();
            in_subject = true;
        }
    }
    decode_words(&subject)
}

/// Decodes `=?utf-8?b?...?=` and `=?utf-8?q?...?=` words; anything else is
/// kept. Whitespace between two encoded words is dropped (RFC 2047 § 6.2).
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut prev_encoded = false;
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let lower = word.to_ascii_lowercase();
        let encoded = word.len() > 12 && word.ends_with("?=");
        let decoded = if encoded && lower.starts_with("=?utf-8?b?") {
            base64_decode(&word[10..word.len() - 2]).and_then(|v| String::from_utf8(v).ok())
        } else if encoded && lower.starts_with("=?utf-8?q?") {
            Some(q_decode(&word[10..word.len() - 2]))
        } else {
            None
        };
        let joined = prev_encoded && decoded.is_some();
        if !out.is_empty() && !joined {
            out.push(' ');
        }
        prev_encoded = decoded.is_some();
        out.push_str(decoded.as_deref().unwrap_or(word));
    }
    out
}

fn q_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'='),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Starts an HTTP server on a loopback port: `POST /slack/...` bodies go
/// to `slack_dir`, `POST /webhook` bodies to `webhook_dir`, pretty-printed.
pub async fn hooks(
    slack_dir: PathBuf,
    webhook_dir: PathBuf,
    kill_dir: PathBuf,
    on: OnCapture,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    use axum::routing::post;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let slack = Arc::new(Sink::new(slack_dir, "json"));
    let webhook = Arc::new(Sink::new(webhook_dir, "json"));
    let kill = Arc::new(Sink::new(kill_dir, "json"));
    let (on_slack, on_hook, on_kill) = (on.clone(), on.clone(), on);
    let router = axum::Router::new()
        .route(
            "/slack/{*rest}",
            post(move |body: axum::body::Bytes| {
                let (sink, on) = (slack.clone(), on_slack.clone());
                async move { store_json(&sink, &on, &body, "slack") }
            }),
        )
        .route(
            "/webhook",
            post(move |body: axum::body::Bytes| {
                let (sink, on) = (webhook.clone(), on_hook.clone());
                async move { store_json(&sink, &on, &body, "webhook") }
            }),
        )
        // The kill-switch hook (`sessions.hook`): the orchestrator's end.
        .route(
            "/kill",
            post(move |body: axum::body::Bytes| {
                let (sink, on) = (kill.clone(), on_kill.clone());
                async move { store_json(&sink, &on, &body, "hook") }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(addr)
}

fn store_json(
    sink: &Sink,
    on: &OnCapture,
    body: &[u8],
    kind: &str,
) -> (axum::http::StatusCode, &'static str) {
    let pretty = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_vec_pretty(&v).ok())
        .unwrap_or_else(|| body.to_vec());
    match sink.write(&pretty) {
        Ok(path) => {
            on(&path, &describe(kind, body));
            (axum::http::StatusCode::OK, "ok")
        }
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot store",
        ),
    }
}

/// A one-line description of a captured Slack or webhook payload.
fn describe(kind: &str, body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if kind == "hook" {
        return format!(
            "hook: {} {} session {}",
            v["rule"].as_str().unwrap_or("?"),
            v["stream"].as_str().unwrap_or("?"),
            v["session_id"].as_str().unwrap_or("?")
        );
    }
    let text = v["text"]
        .as_str()
        .or_else(|| v["title"].as_str())
        .or_else(|| v["subject"].as_str())
        .unwrap_or("");
    format!("{kind}: {}", text.lines().next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_unfolded_and_decoded() {
        let m = b"From: a\r\nSubject: =?utf-8?b?W0ZJUklOR10gc3VwcG9ydC1ib3Q6IDQuMiDihpIgMy4x?=\r\n\r\nbody\r\nSubject: no\r\n";
        assert_eq!(subject_of(m), "[FIRING] support-bot: 4.2 → 3.1");
        let folded = b"Subject: [FIRING] a\r\n b\r\nTo: x\r\n\r\n";
        assert_eq!(subject_of(folded), "[FIRING] a b");
        let mixed = b"Subject: =?utf-8?b?YSDihpI=?=\r\n =?utf-8?b?IGI=?= (+2\r\n more)\r\n\r\n";
        assert_eq!(subject_of(mixed), "a → b (+2 more)");
        assert_eq!(q_decode("a_=E2=86=92_b"), "a → b");
    }

    #[tokio::test]
    async fn smtp_capture_stores_the_message_lettre_sends() {
        use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
        let dir = std::env::temp_dir().join(format!("canaryd-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let on: OnCapture = Arc::new(move |_p, d| s2.lock().unwrap().push(d.to_string()));
        let token = CancellationToken::new();
        let addr = smtp(dir.clone(), on, token.clone()).await.unwrap();
        let msg = lettre::Message::builder()
            .from("a@x.invalid".parse().unwrap())
            .to("b@x.invalid".parse().unwrap())
            .subject("[FIRING] support-bot → worse")
            .body(".leading dot\nsecond line".to_string())
            .unwrap();
        let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(addr.port())
            .build();
        t.send(msg).await.unwrap();
        let text = std::fs::read_to_string(dir.join("001.eml")).unwrap();
        assert!(
            text.contains("\r\n.leading dot") || text.contains("\n.leading dot"),
            "{text}"
        );
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["[FIRING] support-bot → worse"]
        );
        token.cancel();
        let _ = std::fs::remove_dir_all(dir);
    }
}
