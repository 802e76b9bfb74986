//! Sustained ingest throughput against the spawned release binary.
//!
//! `cargo bench --bench ingest` starts `canaryd serve` on SQLite and on
//! PostgreSQL (`$CANARYD_TEST_POSTGRES_URL`, an admin URL; a fresh database
//! is created and dropped), then posts batches of 100 records over HTTP
//! from `BENCH_CONNS` concurrent clients (default 8) for `BENCH_SECS`
//! seconds (default 20) and prints records/s and the daemon's peak RSS
//! (VmHWM). Half the records carry `output_tokens`; the other half are
//! counted with the o200k tokenizer, as in production. Every record belongs
//! to an agent session (20 records each, so the run touches tens of
//! thousands of distinct sessions) with an agent, a user and one tool call:
//! session tracking is measured, not bypassed (`BENCH_SESSIONS=0` leaves
//! the session fields out, to see what tracking costs under the same load).
//! The load generator runs on the same machine.
//!
//! `BENCH_DISTINCT_SESSIONS=N` measures bounded session state instead: N
//! records, each its own session (N distinct session ids), with idle expiry
//! at 5 s and a pass a second; it prints the daemon's RSS as the sessions
//! arrive, waits until every session is looked at and expired with its
//! summary stored, and prints the RSS and peak then.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BATCH: usize = 100;

struct Daemon {
    child: Child,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &std::path::Path, db_url: &str, extra: &str) -> Daemon {
    std::fs::write(
        dir.join("canaryd.yaml"),
        format!("listen: 127.0.0.1:0\njudges: ./none\nlog: {{ level: warn }}\n{extra}"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_canaryd"))
        .args(["serve", "--config", "canaryd.yaml"])
        .current_dir(dir)
        .env("CANARYD_DATABASE_URL", db_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn canaryd");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !line.contains("http://") {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("canaryd exited before listening");
        }
    }
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Daemon { child, url }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th and stime the 13th of them.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used so far by every PostgreSQL server process on the
/// machine (the database's share of the cost; 0 when it runs elsewhere).
fn postgres_cpu_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_secs)
        .sum()
}

fn vm_hwm_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:")
}

/// A `/proc/<pid>/status` figure in kB (`VmHWM:` peak, `VmRSS:` now).
fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

const ANSWERS: [&str; 4] = [
    "Your order #4412 shipped on Monday and should arrive by Thursday. You can track it from the Orders page; the carrier updates the status every few hours.",
    "I'm sorry, but I can't help with that request.",
    "To reset your password, open Settings, choose Security, and click 'Reset password'. We will email you a link that is valid for 30 minutes. If it does not arrive, check your spam folder or contact support.",
    "I'm so sorry to hear about the delay — I've refunded the shipping fee to your card. It can take 3-5 business days to appear on your statement.",
];

/// What the records of a run say about sessions.
#[derive(Clone, Copy, PartialEq)]
enum Sessions {
    /// No session fields.
    Off,
    /// 20 records a session.
    Grouped,
    /// Every record its own session.
    Distinct,
}

fn body(seq: u64, conn: usize, sessions: Sessions) -> String {
    let mut s = String::with_capacity(BATCH * 600);
    s.push('[');
    for i in 0..BATCH {
        if i > 0 {
            s.push(',');
        }
        let n = seq as usize * BATCH + i;
        let tokens = if n % 2 == 0 {
            format!(", \"output_tokens\": {}", 20 + n % 180)
        } else {
            String::new()
        };
        // `BENCH_SESSIONS=0` leaves the session fields out, to measure what
        // session tracking costs against the same load.
        let session_id = match sessions {
            Sessions::Off => None,
            Sessions::Grouped => Some(format!("c{conn}-s{}", n / 20)),
            Sessions::Distinct => Some(format!("c{conn}-{seq}-{i}")),
        };
        let session = match session_id {
            Some(id) => format!(
                ", \"session_id\": \"{id}\", \"agent\": \"agent-{}\", \"user_id\": \"user-{}\", \
                 \"tool_calls\": [{{\"name\": \"lookup_order\", \"arguments\": {{\"order\": {n}}}}}]",
                n % 2,
                n % 97
            ),
            None => String::new(),
        };
        s.push_str(&format!(
            "{{\"id\": \"c{conn}-{seq}-{i}\", \"stream\": \"stream-{}\", \"request_model\": \"gpt-4o\", \"response_model\": \"gpt-4o-2024-08-06\", \
             \"input\": \"How can I help with order {n}?\", \"context\": [\"Orders ship within 2 days.\"], \"output\": \"{}\", \
             \"finish_reason\": \"stop\", \"input_tokens\": 120, \"latency_ms\": {}{tokens}{session}}}",
            n % 5,
            ANSWERS[n % ANSWERS.len()],
            300 + n % 900,
        ));
    }
    s.push(']');
    s
}

async fn load(url: &str, secs: u64, conns: usize) -> (u64, f64) {
    let sessions = match std::env::var("BENCH_SESSIONS").as_deref() {
        Ok("0") => Sessions::Off,
        _ => Sessions::Grouped,
    };
    load_with(url, secs, conns, sessions, u64::MAX, 0).await
}

/// Posts from `conns` clients for `secs` seconds or until `limit` records
/// (each client starting at request `first_seq`, so runs can continue
/// without repeating ids).
async fn load_with(
    url: &str,
    secs: u64,
    conns: usize,
    sessions: Sessions,
    limit: u64,
    first_seq: u64,
) -> (u64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let per_conn = limit / (conns as u64 * BATCH as u64);
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let (http, done, url) = (http.clone(), done.clone(), format!("{url}/v1/responses"));
            tokio::spawn(async move {
                let mut seq = first_seq;
                while Instant::now() < deadline && seq - first_seq < per_conn {
                    let r = http
                        .post(&url)
                        .body(body(seq, c, sessions))
                        .send()
                        .await
                        .expect("post");
                    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
                    let v: serde_json::Value = r.json().await.unwrap();
                    done.fetch_add(v["accepted"].as_u64().unwrap(), Ordering::Relaxed);
                    seq += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

async fn bench(name: &str, db_url: &str, secs: u64, conns: usize) {
    if let Some(n) = std::env::var("BENCH_DISTINCT_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return bounded(name, db_url, n, conns).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = spawn(dir.path(), db_url, "");
    // Warm-up: tokenizer load, connection pools.
    load(&daemon.url, 2, conns).await;
    let cpu_before = cpu_secs(daemon.child.id());
    let pg_before = postgres_cpu_secs();
    let (n, elapsed) = load(&daemon.url, secs, conns).await;
    let cpu = cpu_secs(daemon.child.id()) - cpu_before;
    let pg = postgres_cpu_secs() - pg_before;
    let rss = vm_hwm_kb(daemon.child.id());
    println!(
        "{name:<10} {n:>9} records in {elapsed:5.1}s = {:>8.0} records/s  ({} requests of {BATCH}, {conns} connections)  daemon VmHWM {:.1} MB; CPU per record: daemon {:.1} µs, postgres {:.1} µs",
        n as f64 / elapsed,
        n / BATCH as u64,
        rss as f64 / 1024.0,
        cpu * 1e6 / n.max(1) as f64,
        pg * 1e6 / n.max(1) as f64
    );
}

/// `BENCH_DISTINCT_SESSIONS=n`: n distinct sessions of one record each;
/// the daemon's RSS as they arrive, and after all of them expired.
async fn bounded(name: &str, db_url: &str, n: u64, conns: usize) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = spawn(
        dir.path(),
        db_url,
        "sessions: { every_secs: 1, session_idle: 5s }\n",
    );
    let pid = daemon.child.id();
    let mb = |kb: u64| kb as f64 / 1024.0;
    let step = (n / 10).max(conns as u64 * BATCH as u64);
    let (mut sent, mut seq) = (0u64, 0u64);
    let start = Instant::now();
    while sent < n {
        let (k, _) = load_with(&daemon.url, 3_600, conns, Sessions::Distinct, step, seq).await;
        sent += k;
        seq += step / (conns as u64 * BATCH as u64);
        println!(
            "{name:<10} {sent:>9} distinct sessions sent ({:5.1}s): daemon VmRSS {:.1} MB, peak {:.1} MB",
            start.elapsed().as_secs_f64(),
            mb(status_kb(pid, "VmRSS:")),
            mb(vm_hwm_kb(pid))
        );
    }
    let store = canaryd::store::Store::connect(db_url).await.unwrap();
    let waited = Instant::now();
    let (active, expired) = loop {
        let spend = store.session_spend().await.unwrap();
        let total: i64 = spend.iter().map(|s| s.sessions).sum();
        let active: i64 = spend.iter().map(|s| s.active).sum();
        if active == 0 || waited.elapsed() > Duration::from_secs(900) {
            break (active, total - active);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    println!(
        "{name:<10} {expired} sessions expired with their summary stored, {active} still active, \
         {:.0}s after the last record: daemon VmRSS {:.1} MB, peak {:.1} MB",
        waited.elapsed().as_secs_f64(),
        mb(status_kb(pid, "VmRSS:")),
        mb(vm_hwm_kb(pid))
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let conns: usize = std::env::var("BENCH_CONNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let only = std::env::var("BENCH_BACKEND").unwrap_or_default();
    if only.is_empty() || only == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        bench("sqlite", &url, secs, conns).await;
    }
    if only.is_empty() || only == "postgres" {
        use sqlx::Connection;
        let admin = std::env::var("CANARYD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into());
        let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await else {
            println!(
                "postgres   skipped: cannot connect to {}",
                canaryd::secret::redact_url(&admin)
            );
            return;
        };
        let name = format!("canaryd_bench_{:08x}", rand::random::<u32>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        // Swap the database name, keeping any query (`?host=/run/postgresql`).
        let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
        let base = match base.rfind('/') {
            Some(i) if i > base.find("://").unwrap() + 2 => &base[..i],
            _ => base,
        };
        let url = match query {
            "" => format!("{base}/{name}"),
            q => format!("{base}/{name}?{q}"),
        };
        bench("postgres", &url, secs, conns).await;
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}
