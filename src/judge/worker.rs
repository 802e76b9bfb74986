//! The judge worker: takes jobs from the durable queue, scores them through
//! the provider client within the daily budget, and runs the judges' own
//! canaries on a schedule.
//!
//! Every outcome is stored: a score, a judge error (malformed answer — never
//! turned into a score), a final provider error after `max_attempts`, or a
//! skip (budget spent, record gone). Transient provider errors put the job
//! back with exponential backoff; the provider client has already retried
//! the call itself, so these are longer outages.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::JudgingConfig;
use super::call::{JudgeError, score};
use super::load::Judge;
use super::template::{JudgeInput, render};
use crate::clock::Clock;
use crate::current::Current;
use crate::provider::Providers;
use crate::store::{JudgeJob, JudgeOutcome, ResponseRow, Store};

/// What the worker needs from the daemon.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub store: Store,
    /// This replica, as the holder of job and canary leases.
    pub owner: std::sync::Arc<str>,
    pub live: Current<dyn Settings>,
    pub clock: Clock,
}

/// What the worker reads of the reloadable settings (`live::Live`
/// provides it; the worker names neither it nor the config).
pub trait Settings: Send + Sync {
    fn judging(&self) -> &JudgingConfig;
    fn judges(&self) -> &[Judge];
    fn providers(&self) -> &Providers;
}

/// Output tokens a judge answer may use (what `call::score` asks for).
const ANSWER_TOKENS: i64 = super::call::ANSWER_TOKENS as i64;

/// Runs until `shutdown`: the queue loop, the judge-canary schedule and the
/// embedder. Each reads the live settings once per iteration, so judges, judging
/// settings and provider clients replaced by a reload apply to the next job.
pub async fn run(ctx: Ctx, shutdown: CancellationToken) {
    let canaries = tokio::spawn(canary_loop(ctx.clone(), shutdown.clone()));
    let embeds = tokio::spawn(embed_loop(ctx.clone(), shutdown.clone()));
    queue_loop(ctx, shutdown).await;
    let _ = canaries.await;
    let _ = embeds.await;
}

async fn queue_loop(ctx: Ctx, shutdown: CancellationToken) {
    let mut idle = Duration::from_millis(200);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let live = ctx.live.current();
        let cfg = live.judging();
        let lease_ms = (cfg.lease_secs.max(1) * 1000) as i64;
        let now = ctx.clock.now_ms();
        let jobs = if !cfg.enabled || live.judges().is_empty() {
            Vec::new()
        } else {
            match ctx
                .store
                .claim_judge_jobs(
                    &ctx.owner,
                    now,
                    lease_ms,
                    cfg.concurrency.max(1) as i64,
                    cfg.max_attempts.max(1),
                )
                .await
            {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!("claiming judge jobs failed: {e}");
                    Vec::new()
                }
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(idle) => {}
            }
            idle = (idle * 2).min(Duration::from_secs(2));
            continue;
        }
        idle = Duration::from_millis(200);
        // Jobs in flight finish even during shutdown (they are short and
        // bounded by the provider timeout); an interrupted one is reclaimed
        // after its lease.
        // A heartbeat renews their leases while the calls are in flight, so
        // a call slower than the lease is not taken over (and paid for) by
        // another worker; only a dead or stalled worker's leases expire.
        let work = futures::future::join_all(jobs.iter().map(|j| process(&ctx, &*live, j)));
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        heartbeat(&ctx, &ids, lease_ms, work).await;
    }
}

/// Runs `work`, renewing the leases of `ids` every third of a lease. The
/// renewal runs as its own task: a renewal waiting for a row that one of
/// the jobs' own transactions holds must not stop that job from being
/// polled to its commit.
async fn heartbeat(ctx: &Ctx, ids: &[i64], lease_ms: i64, work: impl std::future::Future) {
    let (store, owner, clock, ids) = (
        ctx.store.clone(),
        ctx.owner.clone(),
        ctx.clock.clone(),
        ids.to_vec(),
    );
    let beat = tokio::spawn(async move {
        let every = Duration::from_millis((lease_ms / 3).max(100) as u64);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let until = clock.now_ms() + lease_ms;
            if let Err(e) = store.renew_judge_leases(&owner, &ids, until).await {
                tracing::warn!("renewing judge leases failed: {e}");
            }
        }
    });
    work.await;
    beat.abort();
}

/// What a judge reads of a stored response, each part cut to `max_bytes`
/// (see [`cap`]).
pub fn judge_input(row: &ResponseRow, max_bytes: usize) -> JudgeInput {
    let input = row
        .input
        .as_deref()
        .map(|s| match serde_json::from_str::<serde_json::Value>(s) {
            Ok(serde_json::Value::String(t)) => t,
            Ok(serde_json::Value::Array(msgs)) => crate::text::messages_text(&msgs),
            _ => s.to_string(),
        });
    let context: Vec<String> = row
        .context
        .as_deref()
        .and_then(|c| serde_json::from_str::<Vec<String>>(c).ok())
        .unwrap_or_default();
    let mut budget = max_bytes;
    let context = context
        .into_iter()
        .map(|c| {
            let kept = cap(&c, budget);
            budget = budget.saturating_sub(kept.len());
            kept
        })
        .collect();
    JudgeInput {
        input: input.map(|i| cap(&i, max_bytes)),
        context,
        output: cap(&row.output, max_bytes),
    }
}

/// `text` cut to at most `max` bytes (on a character boundary) with a
/// marker saying how much was left out; counted in the metrics.
pub fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let end = crate::text::floor_char_boundary(text, max);
    metrics::counter!("canaryd_judge_truncated_total").increment(1);
    format!(
        "{}\n[… {} more bytes cut by canaryd: judging.max_content_bytes is {max}]",
        &text[..end],
        text.len() - end
    )
}

/// An upper bound of one `score` call's tokens and cost: two attempts (one
/// retry on a malformed answer), each the prompt plus a full answer, with
/// a margin for tokenizer differences between providers.
fn estimate(prompt: &str, input_price: f64, output_price: f64) -> (i64, f64) {
    let prompt_tokens = crate::tokens::count(prompt) * 11 / 10 + 50;
    let tokens = 2 * (prompt_tokens + ANSWER_TOKENS);
    let usd =
        2.0 * (prompt_tokens as f64 * input_price + ANSWER_TOKENS as f64 * output_price) / 1e6;
    (tokens, usd)
}

async fn process(ctx: &Ctx, live: &dyn Settings, job: &JudgeJob) {
    let owner = &ctx.owner;
    let cfg = live.judging();
    let providers = live.providers();
    let now = ctx.clock.now_ms();
    let result = async {
        let Some(judge) = live.judges().iter().find(|j| j.name == job.judge) else {
            count(&job.judge, "judge_not_loaded");
            let out = JudgeOutcome {
                error: Some(format!("judge `{}` is not loaded", job.judge)),
                ..Default::default()
            };
            return ctx
                .store
                .finish_judge_job(job, owner, &out, "failed", now)
                .await
                .map(|_| ());
        };
        let Some(row) = ctx.store.response(job.response_id).await? else {
            count(&job.judge, "skipped");
            return ctx
                .store
                .skip_judge_job(job, owner, "response no longer stored", now)
                .await;
        };
        let input = judge_input(&row, cfg.max_content_bytes);
        let (est_tokens, est_usd) = match (
            render(&judge.prompt, &input),
            providers.resolve(&judge.model),
        ) {
            (Ok(p), Ok((_, m))) => estimate(&p, m.input_cost_per_mtok, m.output_cost_per_mtok),
            _ => (0, 0.0),
        };
        if !ctx
            .store
            .reserve_job_spend(
                job,
                owner,
                now,
                est_tokens,
                est_usd,
                cfg.daily_budget_tokens,
                cfg.daily_budget_usd,
            )
            .await?
        {
            tracing::warn!(judge = %judge.name, "daily judge budget reached; job skipped");
            count(&job.judge, "skipped");
            return ctx
                .store
                .skip_judge_job(job, owner, "daily judge budget reached", now)
                .await;
        }
        let verdict = score(providers, judge, &input).await;
        let done = ctx.clock.now_ms();
        match verdict {
            Ok(v) => {
                count(&job.judge, "scored");
                ctx.store
                    .settle_job_spend(
                        job,
                        owner,
                        done,
                        (v.input_tokens + v.output_tokens) as i64,
                        v.cost_usd,
                    )
                    .await?;
                let out = JudgeOutcome {
                    judge_version: v.judge_version,
                    judge_model: Some(v.judge_model),
                    score: Some(v.score),
                    reasoning: Some(v.reasoning),
                    refusal: v.refusal,
                    error: None,
                    input_tokens: Some(v.input_tokens as i64),
                    output_tokens: Some(v.output_tokens as i64),
                    cost_usd: Some(v.cost_usd),
                };
                ctx.store
                    .finish_judge_job(job, owner, &out, "done", done)
                    .await
                    .map(|_| ())
            }
            Err(JudgeError::Provider(e)) if e.is_retryable() && job.attempts < cfg.max_attempts => {
                count(&job.judge, "retried");
                // Nothing was answered; give the reservation back.
                ctx.store.settle_job_spend(job, owner, done, 0, 0.0).await?;
                let backoff =
                    cfg.retry_backoff_secs * 2f64.powi(job.attempts.clamp(1, 10) as i32 - 1);
                let at = done + (backoff * 1000.0) as i64;
                tracing::info!(
                    job = job.id,
                    kind = e.kind(),
                    "judge call failed; retrying later"
                );
                ctx.store
                    .retry_judge_job(job, owner, at, &e.to_string())
                    .await
            }
            Err(e) => {
                // Charged what the provider reported: the answers of a
                // malformed judgement, nothing for a provider error.
                let spent = e.spent();
                ctx.store
                    .settle_job_spend(job, owner, done, spent.tokens as i64, spent.usd)
                    .await?;
                let status = if matches!(e, JudgeError::Malformed(..)) {
                    "done"
                } else {
                    "failed"
                };
                count(&job.judge, e.kind());
                let out = JudgeOutcome {
                    judge_version: judge.version,
                    error: Some(format!("{}: {e}", e.kind())),
                    ..Default::default()
                };
                ctx.store
                    .finish_judge_job(job, owner, &out, status, done)
                    .await
                    .map(|_| ())
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(
            job = job.id,
            "judge job bookkeeping failed (lease will expire and it is retried): {e}"
        );
    }
}

fn count(judge: &str, outcome: &'static str) {
    metrics::counter!("canaryd_judge_scores_total", "judge" => judge.to_string(), "outcome" => outcome)
        .increment(1);
}

/// Runs every judge's canaries once per `canary_interval_secs` across all
/// replicas (whoever holds the lease), storing each as a `canary` score.
/// Each replica tries once per period; the interval is re-read every few
/// seconds so a reload that shortens it applies without waiting a period.
async fn canary_loop(ctx: Ctx, shutdown: CancellationToken) {
    let mut last_try: Option<tokio::time::Instant> = None;
    loop {
        let live = ctx.live.current();
        let cfg = live.judging();
        let period = Duration::from_secs(cfg.canary_interval_secs);
        let due = last_try.is_none_or(|t| t.elapsed() >= period);
        if cfg.canary_interval_secs > 0 && cfg.enabled && due {
            last_try = Some(tokio::time::Instant::now());
            let now = ctx.clock.now_ms();
            // The lease lasts one period minus a margin, so exactly one
            // replica runs each period.
            let ttl = (period.as_millis() as i64 * 9 / 10).max(1000);
            if matches!(
                ctx.store
                    .try_lease("judge-canaries", &ctx.owner, now, ttl)
                    .await,
                Ok(true)
            ) {
                run_canaries(&ctx, live.providers(), live.judges(), now).await;
            }
        }
        let wait = if period.is_zero() {
            Duration::from_secs(10)
        } else {
            period.min(Duration::from_secs(10))
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Scores every canary pair of `judges` now and stores the results.
pub async fn run_canaries(ctx: &Ctx, providers: &Providers, judges: &[Judge], now_ms: i64) {
    for judge in judges {
        for (i, c) in judge.canaries.iter().enumerate() {
            let input = JudgeInput {
                input: c.input.clone(),
                context: c.context.clone(),
                output: c.output.clone(),
            };
            let out = match score(providers, judge, &input).await {
                Ok(v) => {
                    let off = (v.score - c.expected).abs() > c.tolerance;
                    if off {
                        tracing::warn!(judge = %judge.name, canary = i, expected = c.expected, got = v.score, model = %v.judge_model,
                            "judge canary outside tolerance: the judge model may have changed");
                    }
                    JudgeOutcome {
                        judge_version: v.judge_version,
                        judge_model: Some(v.judge_model),
                        score: Some(v.score),
                        reasoning: Some(format!(
                            "canary {i}: expected {} ± {}{}; {}",
                            c.expected,
                            c.tolerance,
                            if off { " (OUTSIDE)" } else { "" },
                            v.reasoning
                        )),
                        refusal: v.refusal,
                        error: None,
                        input_tokens: Some(v.input_tokens as i64),
                        output_tokens: Some(v.output_tokens as i64),
                        cost_usd: Some(v.cost_usd),
                    }
                }
                Err(e) => JudgeOutcome {
                    judge_version: judge.version,
                    error: Some(format!("canary {i}: {}: {e}", e.kind())),
                    ..Default::default()
                },
            };
            if let Err(e) = ctx
                .store
                .insert_judge_canary_score(
                    &judge.name,
                    now_ms,
                    &crate::store::JudgeAnchor {
                        pair: i as i64,
                        expected: c.expected,
                        tolerance: c.tolerance,
                    },
                    &out,
                )
                .await
            {
                tracing::warn!("storing judge canary failed: {e}");
            }
        }
    }
}

/// Embeds sampled records that arrived without an embedding, in batches,
/// with the configured `judging.embedder` model.
async fn embed_loop(ctx: Ctx, shutdown: CancellationToken) {
    let mut after = 0i64;
    let mut reported: Option<String> = None;
    loop {
        let live = ctx.live.current();
        let judging = live.judging();
        let wanted = judging.embedder.as_deref().filter(|_| judging.enabled);
        let resolved = wanted.map(|name| {
            live.providers()
                .resolve(name)
                .map(|(p, m)| (p.clone(), m.model.clone()))
        });
        let (provider, model) = match resolved {
            Some(Ok(pm)) => pm,
            other => {
                if let Some(Err(e)) = other {
                    let msg = e.to_string();
                    if reported.as_ref() != Some(&msg) {
                        tracing::error!("embedder not running: {msg}");
                        reported = Some(msg);
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                }
                continue;
            }
        };
        let batch = match ctx.store.responses_to_embed(after, 64).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("listing responses to embed failed: {e}");
                Vec::new()
            }
        };
        let mut wait = Duration::from_secs(1);
        if !batch.is_empty() {
            let texts: Vec<String> = batch.iter().map(|r| r.3.clone()).collect();
            match provider.embed(&model, &texts).await {
                Ok(vectors) => {
                    let items: Vec<_> = batch
                        .iter()
                        .zip(vectors)
                        .map(|((id, stream, ts, _), v)| (*id, stream.clone(), *ts, v))
                        .collect();
                    match ctx.store.store_embeddings(&items).await {
                        Ok(()) => {
                            after = batch.last().map(|r| r.0).unwrap_or(after);
                            wait = Duration::ZERO;
                        }
                        Err(e) => tracing::warn!("storing embeddings failed: {e}"),
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = e.kind(), "embedding call failed: {e}");
                    wait = Duration::from_secs(10);
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_judge_sees_at_most_the_cap_of_each_part_with_a_marker() {
        let row = ResponseRow {
            output: "é".repeat(10_000),
            input: Some(serde_json::to_string("short question").unwrap()),
            context: Some(serde_json::to_string(&["a".repeat(700), "b".repeat(700)]).unwrap()),
            ..Default::default()
        };
        let j = judge_input(&row, 1_000);
        assert!(
            j.output.starts_with(&"é".repeat(500)),
            "cut on a character boundary"
        );
        assert!(
            j.output.contains("19000 more bytes cut by canaryd"),
            "{}",
            &j.output[990..]
        );
        assert_eq!(j.input.as_deref(), Some("short question"));
        // The passages share one cap: the second keeps what the first left.
        assert_eq!(j.context[0], "a".repeat(700));
        assert!(
            j.context[1].starts_with(&"b".repeat(300)) && j.context[1].contains("400 more bytes")
        );
        // Within the cap nothing changes.
        assert_eq!(cap("fine", 4), "fine");
    }
}
