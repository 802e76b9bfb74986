//! The demo's production application: a support bot that asks the live
//! alias questions over retrieved passages and ships what it got to the
//! ingest API, exactly as an instrumented application would. Its answers
//! come from the simulator, so when the alias is silently updated the
//! records change because the answers changed — nothing is planted in them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::signals::synth::Gen;

/// The stream the demo's records belong to.
pub const STREAM: &str = "support-bot";
/// The alias the application calls (the config's `live` model).
pub const LIVE_MODEL: &str = "gpt-4o";
/// The stream of the demo's agent pair.
pub const AGENT_STREAM: &str = "order-agents";
/// The agents of the pair, in turn order.
pub const AGENTS: [&str; 2] = ["planner", "worker"];

/// Support questions with the passages a retriever would have found.
const QUESTIONS: &[(&str, &[&str])] = &[
    (
        "How many days do I have to return an item?",
        &[
            "Refunds are accepted within 30 days of delivery.",
            "Items must be unused and in their original packaging.",
        ],
    ),
    (
        "How long does standard shipping take?",
        &[
            "Standard shipping takes 5 business days within the EU.",
            "Express shipping takes 2 business days and costs 12 euros.",
        ],
    ),
    (
        "Who do I contact about a damaged parcel?",
        &[
            "Damaged parcels are handled by Maria Lopez in the Lyon warehouse.",
            "Send a photo of the parcel within 7 days.",
        ],
    ),
    (
        "Can I change my delivery address after ordering?",
        &[
            "The delivery address can be changed until the order ships, usually within 24 hours.",
            "Changes are made on the order page.",
        ],
    ),
    (
        "How much does express shipping cost?",
        &[
            "Express shipping costs 12 euros and takes 2 business days.",
            "Orders above 80 euros ship express for free.",
        ],
    ),
    (
        "When is customer support open?",
        &[
            "Customer support is open from 8am to 6pm, Monday to Friday.",
            "Chat replies arrive within 15 minutes during opening hours.",
        ],
    ),
    (
        "Do you ship to Switzerland?",
        &[
            "We ship to Switzerland with Swiss Post in 6 business days.",
            "Customs fees of about 9 percent are paid on delivery.",
        ],
    ),
    (
        "How do I reset my password?",
        &[
            "Passwords are reset from the login page with the Forgot password link.",
            "The reset link expires after 30 minutes.",
        ],
    ),
];

/// Talks to the simulator and the daemon.
#[derive(Clone)]
pub struct App {
    http: reqwest::Client,
    sim: SocketAddr,
    daemon: SocketAddr,
}

/// Totals of what the application sent, for progress lines and the summary.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub refusals_seen: AtomicU64,
    pub failed: AtomicU64,
}

impl App {
    /// One chat completion from the simulator, as the application asks it.
    async fn chat(&self, body: Value) -> Result<Value, String> {
        self.http
            .post(format!("http://{}/v1/chat/completions", self.sim))
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("simulator: {e}"))?
            .json()
            .await
            .map_err(|e| format!("simulator: {e}"))
    }

    pub fn new(sim: SocketAddr, daemon: SocketAddr) -> App {
        App {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .expect("a client with a timeout builds"),
            sim,
            daemon,
        }
    }

    /// Asks question `n` (chosen by a seeded draw) and returns the ingest
    /// record of the exchange, stamped `ts_ms`.
    pub async fn exchange(&self, id: &str, n: u64, ts_ms: i64) -> Result<Value, String> {
        let (question, context) = QUESTIONS[(n as usize) % QUESTIONS.len()];
        let mut system = String::from("You are the support assistant of Acme.\nContext:");
        for p in context {
            system.push_str("\n- ");
            system.push_str(p);
        }
        let started = std::time::Instant::now();
        let reply = self
            .chat(json!({
                "model": LIVE_MODEL,
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                ],
                "max_tokens": 300,
            }))
            .await?;
        let choice = &reply["choices"][0];
        Ok(json!({
            "id": id,
            "timestamp": crate::signals::fmt_time(ts_ms),
            "stream": STREAM,
            "prompt_version": "v3",
            "request_model": LIVE_MODEL,
            "response_model": reply["model"],
            "system_fingerprint": reply["system_fingerprint"],
            "input": question,
            "context": context,
            "output": choice["message"]["content"].as_str().unwrap_or_default(),
            "finish_reason": choice["finish_reason"],
            "output_tokens": reply["usage"]["completion_tokens"],
            "latency_ms": started.elapsed().as_millis() as i64,
        }))
    }

    /// Sends records to `POST /v1/responses` as one batch, retrying a 5xx
    /// or a failed connection a few times like an instrumented application
    /// would: record ids make a repeated batch harmless (stored once).
    pub async fn ingest(&self, records: &[Value]) -> Result<(), String> {
        let mut wait = std::time::Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let outcome = match self
                .http
                .post(format!("http://{}/v1/responses", self.daemon))
                .json(records)
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    (
                        status.is_server_error(),
                        format!("ingest: {status}: {body}"),
                    )
                }
                Err(e) => (true, format!("ingest: {e}")),
            };
            match outcome {
                (true, e) if attempt < 4 => {
                    tracing::warn!("demo traffic: {e}; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                (_, e) => return Err(e),
            }
        }
    }

    /// Replays `hours` of traffic ending at `end_ms` (`per_hour` records an
    /// hour at seeded times), asking the simulator now and stamping each
    /// record with its past time, so the detectors have a baseline at once.
    pub async fn replay_history(
        &self,
        end_ms: i64,
        hours: u32,
        per_hour: u32,
        seed: u64,
    ) -> Result<usize, String> {
        const HOUR: i64 = 3_600_000;
        let mut g = Gen::new(seed);
        let start = end_ms - i64::from(hours) * HOUR;
        let mut plan = Vec::new();
        for h in 0..i64::from(hours) {
            for _ in 0..per_hour {
                let ts = start + h * HOUR + (g.uniform() * HOUR as f64) as i64;
                plan.push((ts, (g.uniform() * 1e9) as u64));
            }
        }
        plan.sort_unstable();
        let records: Vec<Result<Value, String>> = futures::stream::iter(plan.iter().enumerate())
            .map(|(i, (ts, n))| self.exchange_owned(format!("history-{i}"), *n, *ts))
            .buffered(16)
            .collect()
            .await;
        let records: Vec<Value> = records.into_iter().collect::<Result<_, _>>()?;
        for chunk in records.chunks(200) {
            self.ingest(chunk).await?;
        }
        Ok(records.len())
    }

    /// One session of the demo's agent pair: the planner hands a customer
    /// request to the worker, and each agent may ask the other back with the
    /// `ask_agent` tool; at most `max_turns` model calls, `pause` apart.
    /// Every call is ingested as a record of the session (agent, tool calls,
    /// tokens), as an instrumented agent framework would send it. Returns
    /// the number of turns: 1 when the model simply answers.
    pub async fn agent_session(
        &self,
        session: &str,
        max_turns: u32,
        pause: std::time::Duration,
    ) -> Result<u32, String> {
        let tools = json!([{"type": "function", "function": {
            "name": "ask_agent",
            "description": "Ask the other agent a question.",
            "parameters": {"type": "object", "properties": {"question": {"type": "string"}},
                           "required": ["question"]}}}]);
        let mut message = "A customer asks how long standard shipping takes to Lyon.".to_string();
        for turn in 0..max_turns {
            let agent = AGENTS[turn as usize % 2];
            let system = format!(
                "You are the {agent} agent of Acme's order desk. Use ask_agent when you need the other agent.\nContext:\n- Standard shipping takes 5 business days within the EU."
            );
            let reply = self
                .chat(json!({
                    "model": LIVE_MODEL,
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": message},
                    ],
                    "tools": tools,
                    "max_tokens": 200,
                }))
                .await?;
            let choice = &reply["choices"][0];
            let calls = choice["message"]["tool_calls"]
                .as_array()
                .filter(|c| !c.is_empty())
                .cloned();
            let mut record = json!({
                "id": format!("{session}-{turn}"),
                "stream": AGENT_STREAM,
                "session_id": session,
                "agent": agent,
                "user_id": "customer-4412",
                "request_model": LIVE_MODEL,
                "response_model": reply["model"],
                "input": message,
                "output": choice["message"]["content"].as_str().unwrap_or_default(),
                "finish_reason": choice["finish_reason"],
                "input_tokens": reply["usage"]["prompt_tokens"],
                "output_tokens": reply["usage"]["completion_tokens"],
            });
            if let Some(c) = &calls {
                record["tool_calls"] = Value::Array(c.clone());
            }
            self.ingest(&[record]).await?;
            let Some(calls) = calls else {
                return Ok(turn + 1);
            };
            // The other agent receives the question.
            message = calls[0]["function"]["arguments"]
                .as_str()
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                .and_then(|a| a["question"].as_str().map(String::from))
                .unwrap_or_else(|| "Could you clarify?".into());
            tokio::time::sleep(pause).await;
        }
        Ok(max_turns)
    }

    fn exchange_owned(
        &self,
        id: String,
        n: u64,
        ts: i64,
    ) -> impl Future<Output = Result<Value, String>> + use<> {
        let app = self.clone();
        async move { app.exchange(&id, n, ts).await }
    }

    /// One second of live traffic: `per_sec` exchanges stamped now, sent as
    /// one batch. Failures are counted, not fatal: a demo keeps going.
    pub async fn live_second(&self, per_sec: u32, serial: &AtomicU64, g: &mut Gen, c: &Counters) {
        let now = crate::clock::Clock::system().now_ms();
        let asks: Vec<_> = (0..per_sec)
            .map(|_| {
                let i = serial.fetch_add(1, Ordering::Relaxed);
                self.exchange_owned(format!("live-{i}"), (g.uniform() * 1e9) as u64, now)
            })
            .collect();
        let mut records = Vec::new();
        for r in futures::future::join_all(asks).await {
            match r {
                Ok(v) => records.push(v),
                Err(e) => {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("demo traffic: {e}");
                }
            }
        }
        let refusals = records
            .iter()
            .filter(|r| crate::ingest::refusal::is_refusal(r["output"].as_str().unwrap_or("")))
            .count() as u64;
        match self.ingest(&records).await {
            Ok(()) => {
                c.sent.fetch_add(records.len() as u64, Ordering::Relaxed);
                c.refusals_seen.fetch_add(refusals, Ordering::Relaxed);
            }
            Err(e) => {
                c.failed.fetch_add(records.len() as u64, Ordering::Relaxed);
                tracing::warn!("demo traffic: {e}");
            }
        }
    }
}
