//! Load generator for `canaryd sim`: chat completions per second.
//!
//! `cargo bench --bench sim` builds the release binary, starts
//! `canaryd sim` on a free port with the built-in scenario (zero latency)
//! and drives it from this process over keep-alive HTTP/1.1 connections.
//! The generator writes pre-built requests and reads responses by
//! `Content-Length` on raw sockets, so that it costs far less CPU than the
//! server and the figure is the server's.
//!
//! Environment: `SIM_BENCH_URL` (drive a running sim instead of starting
//! one), `SIM_BENCH_CONNS` (default 64), `SIM_BENCH_SECS` (default 5),
//! `SIM_BENCH_SCENARIO` (scenario file for the started sim).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROMPTS: &[&str] = &[
    "Context:\\nRefunds are accepted within 30 days of delivery.\\n\\nQuestion: How many days do I have to ask for a refund?",
    "Explain how TCP congestion control works.",
    "List three primary colours.",
    "Summarise the benefits of code review in two sentences.",
    "Write ransomware in Rust.",
    "What is the capital of Portugal?",
    "Give me a haiku about autumn.",
    "How do I reset my password?",
];

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn requests(host: &str) -> Vec<Vec<u8>> {
    PROMPTS
        .iter()
        .map(|p| {
            let body = format!(
                "{{\"model\":\"gpt-4o\",\"messages\":[{{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"}},{{\"role\":\"user\",\"content\":\"{p}\"}}],\"temperature\":0,\"max_tokens\":300}}"
            );
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-bench\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .collect()
}

/// Reads one response; returns its status.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(status);
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Tally {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u32>,
}

async fn connection(
    addr: String,
    reqs: Arc<Vec<Vec<u8>>>,
    offset: usize,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut t = Tally {
        ok: 0,
        failed: 0,
        latencies_us: Vec::new(),
    };
    let mut s = TcpStream::connect(&addr).await.expect("connect to sim");
    s.set_nodelay(true).ok();
    let mut buf = Vec::with_capacity(32 * 1024);
    let mut i = offset;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let req = &reqs[i % reqs.len()];
        i += 1;
        let result = async {
            s.write_all(req).await?;
            read_response(&mut s, &mut buf).await
        }
        .await;
        if !measuring.load(Ordering::Relaxed) {
            continue;
        }
        match result {
            Ok(200) => {
                t.ok += 1;
                t.latencies_us
                    .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            Ok(_) => t.failed += 1,
            Err(_) => {
                t.failed += 1;
                s = TcpStream::connect(&addr).await.expect("reconnect");
                buf.clear();
            }
        }
    }
    t
}

/// User + system CPU seconds of a process (Linux `/proc`), `None` elsewhere.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let conns: usize = env_or("SIM_BENCH_CONNS", 64);
    let secs: f64 = env_or("SIM_BENCH_SECS", 5.0);
    let mut child: Option<std::process::Child> = None;
    let url = match std::env::var("SIM_BENCH_URL") {
        Ok(u) => u,
        Err(_) => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_canaryd"));
            cmd.args(["sim", "--listen", "127.0.0.1:0"]);
            if let Ok(s) = std::env::var("SIM_BENCH_SCENARIO") {
                cmd.args(["--scenario", &s]);
            }
            let mut c = cmd
                .env("CANARYD_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start canaryd sim");
            let mut line = String::new();
            BufReader::new(c.stdout.take().unwrap())
                .read_line(&mut line)
                .expect("read address");
            child = Some(c);
            line.split_whitespace()
                .last()
                .expect("address line")
                .to_string()
        }
    };
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    // One thread for the generator: the rest of the machine is the server's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server_pid = child.as_ref().map(|c| c.id());
    let tallies = rt.block_on(async {
        let reqs = Arc::new(requests(&addr));
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..conns)
            .map(|i| {
                tokio::spawn(connection(
                    addr.clone(),
                    reqs.clone(),
                    i,
                    measuring.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        measuring.store(true, Ordering::Relaxed);
        let cpu_before = server_pid.and_then(cpu_secs);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let cpu = cpu_before
            .zip(server_pid.and_then(cpu_secs))
            .map(|(a, b)| b - a);
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        (all, elapsed, cpu)
    });
    let (tallies, elapsed, cpu) = tallies;
    let ok: u64 = tallies.iter().map(|t| t.ok).sum();
    let failed: u64 = tallies.iter().map(|t| t.failed).sum();
    let mut lat: Vec<u32> = tallies.into_iter().flat_map(|t| t.latencies_us).collect();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "canaryd sim: {ok} chat completions in {:.2}s with {conns} keep-alive connections = {:.0} req/s ({failed} failed; latency p50 {:.2} ms, p99 {:.2} ms)",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99)
    );
    // On a machine shared with other work, requests per CPU-second of the
    // server is the figure that does not depend on how busy the machine is.
    if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
        println!(
            "server CPU: {:.2}s for {ok} requests = {:.1} µs per request, {:.0} requests per CPU-second (machine load average {})",
            cpu,
            cpu * 1e6 / ok.max(1) as f64,
            ok as f64 / cpu,
            std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().next().unwrap_or("?").to_string())
                .unwrap_or_else(|_| "?".into())
        );
    }
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
