//! What the ingest limits hold against worst-case requests.
//!
//! `cargo bench --bench ingest_limits` (or `cargo run --bench ingest_limits`
//! for a debug build) prints:
//!
//! 1. the tokenizer's cost of one 12 MB output without a space, of a 12 MB
//!    run of random letters and digits, and of 16 KiB of prose (the exact
//!    part), in the library, single-threaded;
//! 2. the spawned daemon's peak RSS (VmHWM) while `BENCH_CONNS` (default 8)
//!    clients each post one maximum-size request at once, twice: bodies of
//!    `max_records` (10,000) records filling `max_body_bytes` (16 MiB, no
//!    `output_tokens`, so every output is tokenized), and 15 MB bodies of
//!    250,000 tiny records (refused with 413 at record 10,001). It prints
//!    the answers' status counts and the RSS after the requests, on SQLite,
//!    with the default limits.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

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

fn spawn(dir: &std::path::Path) -> Daemon {
    std::fs::write(
        dir.join("canaryd.yaml"),
        "listen: 127.0.0.1:0\njudges: ./none\nlog: { level: warn }\ndetectors: { every_secs: 0 }\njudging: { enabled: false }\n",
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("bench.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_canaryd"))
        .args(["serve", "--config", "canaryd.yaml"])
        .current_dir(dir)
        .env("CANARYD_DATABASE_URL", db)
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

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

const PROSE: &str = "Your order shipped on Monday and should arrive by Thursday; the carrier updates the tracking page every few hours. ";

/// `n` records whose JSON fills about `bytes`.
fn body(n: usize, bytes: usize, tag: &str) -> String {
    let per = bytes / n;
    let overhead = 60;
    let text: String = PROSE
        .repeat(per / PROSE.len() + 1)
        .chars()
        .take(per.saturating_sub(overhead).max(1))
        .collect();
    let mut s = String::with_capacity(bytes + 1024);
    s.push('[');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"id\":\"{tag}-{i}\",\"stream\":\"s\",\"output\":\"{text}\"}}"
        ));
    }
    s.push(']');
    s
}

async fn burst(daemon: &Daemon, conns: usize, make: impl Fn(usize) -> String) -> String {
    let http = reqwest::Client::new();
    let bodies: Vec<String> = (0..conns).map(&make).collect();
    let size = bodies[0].len();
    let start = Instant::now();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|b| {
            let (http, url) = (http.clone(), format!("{}/v1/responses", daemon.url));
            tokio::spawn(async move {
                http.post(url)
                    .body(b)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    let pid = daemon.child.id();
    format!(
        "{conns} × {:.1} MB: answers {statuses:?} in {:.1} s; daemon VmHWM {:.0} MB, VmRSS after {:.0} MB",
        size as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        status_kb(pid, "VmHWM:") as f64 / 1024.0,
        status_kb(pid, "VmRSS:") as f64 / 1024.0
    )
}

fn time_count(name: &str, text: &str) {
    let start = Instant::now();
    let n = canaryd::tokens::count(text);
    println!(
        "tokenizer  {name:<40} {:>6.1} MB -> {n:>9} tokens in {:>8.2} ms",
        text.len() as f64 / 1e6,
        start.elapsed().as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let conns: usize = std::env::var("BENCH_CONNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    canaryd::tokens::warm_up();
    time_count(
        "12 MB without a space ('a' × 12e6)",
        &"a".repeat(12_000_000),
    );
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let random: String = (0..12_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[(x % 62) as usize]
                as char
        })
        .collect();
    time_count("12 MB random letters and digits", &random);
    time_count(
        "16 KiB of prose (exact)",
        &PROSE.repeat(16 * 1024 / PROSE.len()),
    );
    time_count(
        "64 KiB of prose (estimated past 16 KiB)",
        &PROSE.repeat(64 * 1024 / PROSE.len()),
    );

    let dir = tempfile::tempdir().unwrap();
    let daemon = spawn(dir.path());
    let idle = status_kb(daemon.child.id(), "VmRSS:");
    println!("daemon idle VmRSS {:.0} MB", idle as f64 / 1024.0);
    let max_body = 16 * 1024 * 1024 - 4096;
    println!(
        "max-size  {}",
        burst(&daemon, conns, |c| body(10_000, max_body, &format!("m{c}"))).await
    );
    println!(
        "tiny×250k {}",
        burst(&daemon, conns, |c| body(
            250_000,
            15_000_000,
            &format!("t{c}")
        ))
        .await
    );
}
