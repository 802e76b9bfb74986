//! One OpenAI-compatible endpoint, called through async-openai.
//!
//! async-openai's own retry layer is replaced: canaryd must count every
//! failed attempt by kind and honour `Retry-After`, which that layer hides.
//! A thin tower service passes requests to reqwest unchanged and notes the
//! `Retry-After` of an error response for the attempt in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::{HttpRequestFactory, ReqwestService};
use tokio::sync::{Mutex, Semaphore};

use super::error::ProviderError;
use super::retry::{RetryPolicy, parse_retry_after};
use super::settings::ProviderConfig;
use super::types::{ChatRequest, ChatResponse, WireChatResponse, WireChunk, WireEmbeddingResponse};
use crate::secret::Secret;

tokio::task_local! {
    /// `Retry-After` of the latest error response of the current call.
    static RETRY_AFTER: std::cell::Cell<Option<Duration>>;
}

/// Counts of attempts by outcome, for metrics. Shared by all clones.
pub type AttemptHook = Arc<dyn Fn(&str, &ProviderError) + Send + Sync>;

/// One provider endpoint with its concurrency and rate limits.
#[derive(Clone)]
pub struct Provider {
    name: Arc<str>,
    client: Client<OpenAIConfig>,
    limiter: Arc<Semaphore>,
    pacing: Option<Arc<Mutex<Instant>>>,
    interval: Duration,
    timeout: Duration,
    policy: RetryPolicy,
    on_failed_attempt: Option<AttemptHook>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Builds the client. The key is always set explicitly (empty when none)
    /// so async-openai never falls back to `$OPENAI_API_KEY` and sends a real
    /// key to a third-party base URL.
    pub fn new(
        name: &str,
        cfg: &ProviderConfig,
        key: Option<Secret>,
    ) -> Result<Provider, ProviderError> {
        let setup = |message: String| ProviderError::Setup {
            provider: name.to_string(),
            message,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(cfg.timeout_secs.max(0.001)))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(cfg.max_concurrency.max(1))
            .build()
            .map_err(|e| setup(e.to_string()))?;
        let openai = OpenAIConfig::new()
            .with_api_base(cfg.base_url.trim_end_matches('/'))
            .with_api_key(key.as_ref().map(Secret::expose).unwrap_or(""));
        let client = Client::with_config(openai).with_http_service(RetryAfterService {
            inner: ReqwestService::new(http),
        });
        let rps = cfg.requests_per_second;
        Ok(Provider {
            name: name.into(),
            client,
            limiter: Arc::new(Semaphore::new(cfg.max_concurrency.max(1))),
            pacing: (rps > 0.0).then(|| Arc::new(Mutex::new(Instant::now()))),
            interval: if rps > 0.0 {
                Duration::from_secs_f64(1.0 / rps)
            } else {
                Duration::ZERO
            },
            timeout: Duration::from_secs_f64(cfg.timeout_secs.max(0.001)),
            policy: RetryPolicy {
                max_retries: cfg.max_retries,
                base: Duration::from_millis(cfg.backoff_ms),
                ..RetryPolicy::default()
            },
            on_failed_attempt: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `hook(provider, error)` for every failed attempt, retried or not.
    pub fn with_attempt_hook(mut self, hook: AttemptHook) -> Self {
        self.on_failed_attempt = Some(hook);
        self
    }

    /// A chat completion, retried on transient faults. With `req.stream` the
    /// answer is read as server-sent events and assembled.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let mut body =
            serde_json::to_value(req).map_err(|e| ProviderError::Malformed(e.to_string()))?;
        if req.stream {
            return self.chat_stream(body).await;
        }
        body["stream"] = serde_json::Value::Bool(false);
        let (wire, latency, attempts) = self
            .with_retries(|| async {
                let r: WireChatResponse = self
                    .client
                    .chat()
                    .create_byot(body.clone())
                    .await
                    .map_err(map_error)?;
                if r.choices.is_empty() {
                    return Err(ProviderError::Malformed("answer has no choices".into()));
                }
                Ok(r)
            })
            .await?;
        let choice = wire.choices.into_iter().next().expect("checked non-empty");
        let message = choice.message.unwrap_or(super::types::WireMessage {
            content: None,
            refusal: None,
        });
        Ok(ChatResponse {
            id: wire.id,
            model: wire.model.filter(|m| !m.is_empty()),
            system_fingerprint: wire.system_fingerprint.filter(|f| !f.is_empty()),
            content: message.content.or(message.refusal).unwrap_or_default(),
            finish_reason: choice.finish_reason.filter(|f| !f.is_empty()),
            usage: wire.usage,
            latency_ms: latency.as_millis() as u64,
            attempts,
            logprobs: choice
                .logprobs
                .as_ref()
                .and_then(super::types::parse_logprobs),
        })
    }

    /// A streamed chat completion, read to its end within one attempt (a
    /// stream cut short is a network fault and retried like one).
    async fn chat_stream(
        &self,
        mut body: serde_json::Value,
    ) -> Result<ChatResponse, ProviderError> {
        use futures::StreamExt;
        body["stream"] = serde_json::Value::Bool(true);
        // Usage arrives only when asked for, in a last chunk without choices.
        body["stream_options"] = serde_json::json!({ "include_usage": true });
        let (answer, latency, attempts) = self
            .with_retries(|| async {
                let mut events = self
                    .client
                    .chat()
                    .create_stream_byot::<_, WireChunk>(body.clone())
                    .await
                    .map_err(map_error)?;
                let mut a = ChatResponse {
                    id: None,
                    model: None,
                    system_fingerprint: None,
                    content: String::new(),
                    finish_reason: None,
                    usage: None,
                    latency_ms: 0,
                    attempts: 0,
                    logprobs: None,
                };
                let mut chunks = 0usize;
                while let Some(event) = events.next().await {
                    let chunk = event.map_err(map_error)?;
                    chunks += 1;
                    a.id = a.id.or(chunk.id);
                    a.model = chunk.model.filter(|m| !m.is_empty()).or(a.model);
                    a.system_fingerprint = chunk
                        .system_fingerprint
                        .filter(|f| !f.is_empty())
                        .or(a.system_fingerprint);
                    a.usage = chunk.usage.or(a.usage);
                    if let Some(choice) = chunk.choices.into_iter().next() {
                        if let Some(d) = choice.delta {
                            a.content.push_str(
                                d.content.as_deref().or(d.refusal.as_deref()).unwrap_or(""),
                            );
                        }
                        if let Some(lp) = choice
                            .logprobs
                            .as_ref()
                            .and_then(super::types::parse_logprobs)
                        {
                            a.logprobs.get_or_insert_with(Vec::new).extend(lp);
                        }
                        if let Some(f) = choice.finish_reason.filter(|f| !f.is_empty()) {
                            a.finish_reason = Some(f);
                        }
                    }
                }
                if chunks == 0 {
                    return Err(ProviderError::Malformed(
                        "stream ended without any chunk".into(),
                    ));
                }
                Ok(a)
            })
            .await?;
        Ok(ChatResponse {
            latency_ms: latency.as_millis() as u64,
            attempts,
            ..answer
        })
    }

    /// Embeddings for `inputs`, in input order.
    pub async fn embed(
        &self,
        model: &str,
        inputs: &[String],
    ) -> Result<Vec<Vec<f32>>, ProviderError> {
        let body =
            serde_json::json!({ "model": model, "input": inputs, "encoding_format": "float" });
        let (wire, _, _) = self
            .with_retries(|| async {
                let r: WireEmbeddingResponse = self
                    .client
                    .embeddings()
                    .create_byot(body.clone())
                    .await
                    .map_err(map_error)?;
                if r.data.len() != inputs.len() {
                    return Err(ProviderError::Malformed(format!(
                        "asked for {} embeddings, got {}",
                        inputs.len(),
                        r.data.len()
                    )));
                }
                Ok(r)
            })
            .await?;
        let mut data = wire.data;
        data.sort_by_key(|d| d.index.unwrap_or(usize::MAX));
        Ok(data.into_iter().map(|d| d.embedding).collect())
    }

    /// Runs `attempt` under the limits, retrying transient faults with
    /// backoff. Returns the value, the latency of the good attempt and the
    /// number of attempts.
    async fn with_retries<T, F, Fut>(&self, attempt: F) -> Result<(T, Duration, u32), ProviderError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let mut retry = 0u32;
        loop {
            let result = {
                let _permit = self
                    .limiter
                    .acquire()
                    .await
                    .expect("semaphore never closed");
                self.pace().await;
                let started = Instant::now();
                let outcome = RETRY_AFTER
                    .scope(std::cell::Cell::new(None), async {
                        let r = tokio::time::timeout(self.timeout, attempt()).await;
                        let ra = RETRY_AFTER.with(|c| c.get());
                        match r {
                            Ok(Ok(v)) => Ok(v),
                            Ok(Err(ProviderError::RateLimited { retry_after: None })) => {
                                Err(ProviderError::RateLimited { retry_after: ra })
                            }
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err(ProviderError::Timeout(self.timeout)),
                        }
                    })
                    .await;
                outcome.map(|v| (v, started.elapsed()))
            };
            match result {
                Ok((v, latency)) => return Ok((v, latency, retry + 1)),
                Err(e) => {
                    if let Some(hook) = &self.on_failed_attempt {
                        hook(&self.name, &e);
                    }
                    if !e.is_retryable() || retry >= self.policy.max_retries {
                        tracing::warn!(provider = %self.name, kind = e.kind(), attempts = retry + 1, "provider call failed: {e}");
                        return Err(e);
                    }
                    let wait = self
                        .policy
                        .delay(retry, e.retry_after(), rand::random::<f64>());
                    tracing::debug!(provider = %self.name, kind = e.kind(), ?wait, "retrying provider call");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
            }
        }
    }

    /// Spaces request starts by the configured rate.
    async fn pace(&self) {
        if let Some(next) = &self.pacing {
            let mut next = next.lock().await;
            let now = Instant::now();
            if *next > now {
                tokio::time::sleep(*next - now).await;
            }
            *next = (*next).max(now) + self.interval;
        }
    }
}

fn map_error(e: OpenAIError) -> ProviderError {
    match e {
        OpenAIError::ApiError(api) => {
            let status = api.status_code.as_u16();
            let message = api.api_error.message.clone();
            match status {
                429 => ProviderError::RateLimited { retry_after: None },
                500..=599 => ProviderError::Server { status, message },
                _ => ProviderError::Rejected { status, message },
            }
        }
        OpenAIError::Reqwest(e) if e.is_timeout() => ProviderError::Timeout(Duration::ZERO),
        OpenAIError::Reqwest(e) => ProviderError::Network(crate::text::error_chain(&e)),
        OpenAIError::JSONDeserialize(e, body) => {
            let head: String = body.chars().take(120).collect();
            ProviderError::Malformed(format!("{e}; body starts {head:?}"))
        }
        OpenAIError::StreamError(e) => ProviderError::Network(e.to_string()),
        other => ProviderError::Network(other.to_string()),
    }
}

/// reqwest with nothing added but a note of `Retry-After` on error answers.
#[derive(Clone, Debug)]
struct RetryAfterService {
    inner: ReqwestService,
}

impl tower::Service<HttpRequestFactory> for RetryAfterService {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<reqwest::Response, OpenAIError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<HttpRequestFactory>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: HttpRequestFactory) -> Self::Future {
        let fut = tower::Service::call(&mut self.inner, req);
        Box::pin(async move {
            let resp = fut.await?;
            if !resp.status().is_success()
                && let Some(ra) = resp.headers().get(reqwest::header::RETRY_AFTER)
                && let Some(d) = ra
                    .to_str()
                    .ok()
                    .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
            {
                let _ = RETRY_AFTER.try_with(|c| c.set(Some(d)));
            }
            Ok(resp)
        })
    }
}
