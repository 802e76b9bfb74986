//! HTTP handlers: the OpenAI routes and the `/_sim` control routes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::behave::{self, Draws, Turn};
use super::faults::{self, Fault};
use super::rng::{Rng, StableHasher, mix};
use super::scenario::{FinishStyle, Profile};
use super::stats::Outcome;
use super::{ConnAbort, SimState, embed, judge, text};

type St = State<Arc<SimState>>;

/// Request bodies larger than this are refused (OpenAI's own limit is in
/// the same range).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/_sim/phase", post(set_phase).get(get_phase))
        .route("/_sim/stats", get(stats))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    faults::error(
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({} {})", req.method(), req.uri().path()),
        "invalid_request_error",
        None,
        None,
    )
}

// ------------------------------------------------------------------ requests

#[derive(Debug, Deserialize)]
struct ChatBody {
    model: Option<String>,
    messages: Option<Vec<WireMessage>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    response_format: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: serde_json::Value,
}

impl WireMessage {
    /// Text of a string content or of the `text` parts of an array content.
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match &self.content {
            serde_json::Value::String(s) => s.as_str().into(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join("\n")
                .into(),
            _ => "".into(),
        }
    }
}

/// The 401 to answer when the scenario requires a bearer key and the
/// request lacks it.
fn check_key(st: &SimState, headers: &HeaderMap) -> Option<Response> {
    let want = st.scenario.require_api_key.as_ref()?;
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if got == Some(want.as_str()) {
        return None;
    }
    Some(faults::error(
        StatusCode::UNAUTHORIZED,
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    ))
}

async fn read_body(req: Request) -> Result<(HeaderMap, Option<ConnAbort>, Bytes), Response> {
    let (parts, body) = req.into_parts();
    let abort = parts.extensions.get::<ConnAbort>().cloned();
    match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => Ok((parts.headers, abort, b)),
        Err(_) => Err(faults::bad_request(
            "The request body is too large or could not be read.",
            None,
            None,
        )),
    }
}

fn unparsable(e: &serde_json::Error) -> Response {
    faults::bad_request(
        &format!(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON: {e})"
        ),
        None,
        None,
    )
}

/// Random draws for one occurrence of a request, in a fixed order.
struct Occurrence {
    fault: f64,
    latency: f64,
    judge_garbage: f64,
    draws: Draws,
    spare: Rng,
    index: u64,
}

fn occurrence(st: &SimState, content_hash: u64) -> Occurrence {
    let index = st.occurrences.next(content_hash);
    let mut rng = Rng::new(mix(mix(st.scenario.seed, content_hash), index));
    Occurrence {
        fault: rng.unit(),
        latency: rng.unit(),
        judge_garbage: rng.unit(),
        draws: Draws::new(&mut rng),
        spare: Rng::new(rng.next_u64()),
        index,
    }
}

/// Sleeps for the profile's latency; false when the server is stopping.
async fn delay(st: &SimState, profile: &Profile, u: f64) -> bool {
    let l = profile.latency_ms;
    let ms = (l.mean + l.jitter * (2.0 * u - 1.0)).max(0.0);
    if ms <= 0.0 {
        return true;
    }
    sleep_unless_stopped(st, Duration::from_secs_f64(ms / 1000.0)).await
}

async fn sleep_unless_stopped(st: &SimState, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = st.shutdown.cancelled() => false,
    }
}

/// Answers an injected fault, or `None` to go on (a timeout fault goes on
/// after hanging).
async fn inject(
    st: &SimState,
    fault: Fault,
    profile: &Profile,
    abort: Option<ConnAbort>,
    rng: &mut Rng,
    stream: bool,
) -> Option<Response> {
    match fault {
        Fault::RateLimited => Some(faults::rate_limited(profile.faults.retry_after_secs)),
        Fault::ServerError => Some(faults::server_error()),
        Fault::Unavailable => Some(faults::unavailable()),
        Fault::Malformed => Some(faults::malformed(rng, stream)),
        Fault::Timeout => {
            let d = Duration::from_secs_f64(profile.faults.timeout_secs);
            if sleep_unless_stopped(st, d).await {
                None
            } else {
                Some(faults::unavailable())
            }
        }
        Fault::Reset => {
            if let Some(a) = abort {
                a.fire();
                // The connection task drops this future with the socket.
                st.shutdown.cancelled().await;
            }
            Some(faults::server_error())
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `chatcmpl-` and 24 base-62 characters, unique per request.
fn completion_id(st: &SimState, content_hash: u64) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = mix(content_hash, st.next_id());
    let mut y = mix(x, 0x5157);
    let mut id = String::with_capacity(33);
    id.push_str("chatcmpl-");
    for i in 0..24 {
        let v = if i < 12 { &mut x } else { &mut y };
        id.push(A[(*v % 62) as usize] as char);
        *v /= 62;
    }
    id
}

// ---------------------------------------------------------------------- chat

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: &'a str,
    refusal: Option<&'a str>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct CompletionOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceOut<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'a str>,
}

async fn chat(State(st): St, req: Request) -> Response {
    let (headers, abort, bytes) = match read_body(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(r) = check_key(&st, &headers) {
        return r;
    }
    let body: ChatBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            st.stats.record("(unparsed)", &[Outcome::BadRequest]);
            return unparsable(&e);
        }
    };
    let model = body.model.clone().unwrap_or_default();
    if model.is_empty() {
        st.stats.record("(none)", &[Outcome::BadRequest]);
        return faults::bad_request("you must provide a model parameter", None, None);
    }
    let messages = match &body.messages {
        None => {
            st.stats.record(&model, &[Outcome::BadRequest]);
            return faults::bad_request(
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            );
        }
        Some(m) if m.is_empty() => {
            st.stats.record(&model, &[Outcome::BadRequest]);
            return faults::bad_request(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                Some("messages"),
                Some("empty_array"),
            );
        }
        Some(m) => m,
    };
    let phase = st.count_chat_request();
    let Some(profile) = st.scenario.profile(phase, &model).cloned() else {
        st.stats.record(&model, &[Outcome::BadRequest]);
        return model_not_found(&model);
    };
    let texts: Vec<std::borrow::Cow<'_, str>> = messages.iter().map(WireMessage::text).collect();
    let mut h = StableHasher::new(0);
    h.write_str(&model);
    for (m, t) in messages.iter().zip(&texts) {
        h.write_str(&m.role);
        h.write_str(t);
    }
    let content_hash = h.finish();
    let mut occ = occurrence(&st, content_hash);
    let stream = body.stream.unwrap_or(false);
    if !delay(&st, &profile, occ.latency).await {
        return faults::unavailable();
    }
    // A timeout fault hangs, then answers: it is counted with the answer.
    let mut hung = false;
    if let Some(fault) = faults::draw(&profile.faults, occ.fault) {
        // Counted first: a reset drops this future with the connection.
        st.stats.record(&model, &[fault.outcome()]);
        match inject(&st, fault, &profile, abort, &mut occ.spare, stream).await {
            Some(r) => return r,
            None => hung = true,
        }
    }
    let all_text = texts.join("\n");
    let (content, truncated, outcomes) =
        if judge::is_judge_call(&all_text, body.response_format.as_ref()) {
            if occ.judge_garbage < profile.judge_malformed_rate {
                (
                    judge::garbage(&mut occ.spare),
                    false,
                    vec![Outcome::JudgeMalformed],
                )
            } else {
                let v = judge::score(&judge::parse(&all_text), profile.judge_bias);
                (judge::render(&v), false, vec![Outcome::Judge])
            }
        } else {
            let turns: Vec<Turn<'_>> = messages
                .iter()
                .zip(&texts)
                .map(|(m, t)| Turn {
                    role: &m.role,
                    content: t,
                })
                .collect();
            let prompt = behave::parse_prompt(&turns);
            let seed = behave::text_seed(
                st.scenario.seed,
                content_hash,
                phase,
                profile.vary_answers.then_some(occ.index),
            );
            let max = body.max_completion_tokens.or(body.max_tokens);
            let a = behave::answer(&profile, &prompt, seed, occ.draws, max);
            let mut outcomes = Vec::new();
            if a.refused {
                outcomes.push(Outcome::Refusal);
            }
            if a.truncated {
                outcomes.push(Outcome::Truncated);
            }
            if a.dropped_facts {
                outcomes.push(Outcome::DroppedFacts);
            }
            if outcomes.is_empty() {
                outcomes.push(Outcome::Ok);
            }
            (a.text, a.truncated, outcomes)
        };
    if hung {
        st.stats.record_more(&model, &outcomes);
    } else {
        st.stats.record(&model, &outcomes);
    }
    let finish_reason = match (truncated, profile.finish_reason_style) {
        (true, _) => "length",
        (false, FinishStyle::Openai) => "stop",
        (false, FinishStyle::Eos) => "eos",
    };
    let prompt_tokens: u64 = texts
        .iter()
        .map(|t| text::token_estimate(t) + 4)
        .sum::<u64>()
        + 3;
    let completion_tokens = text::token_estimate(&content);
    let usage = (!profile.omit_usage).then_some(UsageOut {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
    });
    let reported = profile.model.as_deref().unwrap_or(&model);
    let fingerprint = (!profile.omit_fingerprint).then_some(profile.system_fingerprint.as_str());
    let id = completion_id(&st, content_hash);
    let created = now_secs();
    let out = Reply {
        id: &id,
        created,
        model: reported,
        fingerprint,
        content: &content,
        finish_reason,
        usage,
    };
    if stream {
        let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
        sse(out, include_usage)
    } else {
        json_reply(out)
    }
}

fn model_not_found(model: &str) -> Response {
    faults::error(
        StatusCode::NOT_FOUND,
        &format!("The model `{model}` does not exist or you do not have access to it."),
        "invalid_request_error",
        None,
        Some("model_not_found"),
    )
}

struct Reply<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
    fingerprint: Option<&'a str>,
    content: &'a str,
    finish_reason: &'a str,
    usage: Option<UsageOut>,
}

fn json_reply(r: Reply<'_>) -> Response {
    let body = CompletionOut {
        id: r.id,
        object: "chat.completion",
        created: r.created,
        model: r.model,
        choices: [ChoiceOut {
            index: 0,
            message: MessageOut {
                role: "assistant",
                content: r.content,
                refusal: None,
            },
            logprobs: None,
            finish_reason: r.finish_reason,
        }],
        usage: r.usage,
        system_fingerprint: r.fingerprint,
    };
    let bytes = serde_json::to_vec(&body).expect("serialisable");
    let mut resp = Response::new(Body::from(bytes));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(r.id) {
        h.insert("x-request-id", v);
    }
    resp
}

/// Server-sent events as OpenAI sends them: a role chunk, content chunks of
/// a few words, a final chunk with the finish reason, an optional usage
/// chunk, then `[DONE]`.
fn sse(r: Reply<'_>, include_usage: bool) -> Response {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let mut c = serde_json::json!({
            "id": r.id,
            "object": "chat.completion.chunk",
            "created": r.created,
            "model": r.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        if let Some(fp) = r.fingerprint {
            c["system_fingerprint"] = fp.into();
        }
        if include_usage {
            c["usage"] = serde_json::Value::Null;
        }
        c
    };
    let mut out = String::with_capacity(r.content.len() * 4 + 512);
    let mut push = |v: &serde_json::Value| {
        out.push_str("data: ");
        out.push_str(&v.to_string());
        out.push_str("\n\n");
    };
    push(&chunk(
        serde_json::json!({ "role": "assistant", "content": "", "refusal": null }),
        None,
    ));
    let mut piece = String::new();
    for (i, word) in r.content.split_inclusive(' ').enumerate() {
        piece.push_str(word);
        if i % 3 == 2 {
            push(&chunk(serde_json::json!({ "content": piece }), None));
            piece.clear();
        }
    }
    if !piece.is_empty() {
        push(&chunk(serde_json::json!({ "content": piece }), None));
    }
    push(&chunk(serde_json::json!({}), Some(r.finish_reason)));
    if include_usage && let Some(u) = &r.usage {
        let mut last = chunk(serde_json::json!({}), None);
        last["choices"] = serde_json::json!([]);
        last["usage"] = serde_json::json!({
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
        });
        push(&last);
    }
    out.push_str("data: [DONE]\n\n");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(out))
        .expect("static response")
}

// ---------------------------------------------------------------- embeddings

#[derive(Debug, Deserialize)]
struct EmbedBody {
    model: Option<String>,
    input: Option<serde_json::Value>,
    dimensions: Option<usize>,
    encoding_format: Option<String>,
}

async fn embeddings(State(st): St, req: Request) -> Response {
    let (headers, abort, bytes) = match read_body(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(r) = check_key(&st, &headers) {
        return r;
    }
    let body: EmbedBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return unparsable(&e),
    };
    let model = body.model.unwrap_or_default();
    if model.is_empty() {
        return faults::bad_request("you must provide a model parameter", None, None);
    }
    let inputs: Vec<String> = match body.input {
        Some(serde_json::Value::String(s)) => vec![s],
        Some(serde_json::Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                // Token arrays: hash the token ids as words.
                other => other.to_string(),
            })
            .collect(),
        Some(_) => {
            return faults::bad_request(
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                Some("input"),
                None,
            );
        }
        None => {
            return faults::bad_request(
                "Missing required parameter: 'input'.",
                Some("input"),
                Some("missing_required_parameter"),
            );
        }
    };
    let phase = st.current_phase();
    let Some(profile) = st.scenario.profile(phase, &model).cloned() else {
        st.stats.record(&model, &[Outcome::BadRequest]);
        return model_not_found(&model);
    };
    let mut h = StableHasher::new(1);
    h.write_str(&model);
    inputs.iter().for_each(|i| h.write_str(i));
    let mut occ = occurrence(&st, h.finish());
    if !delay(&st, &profile, occ.latency).await {
        return faults::unavailable();
    }
    let mut hung = false;
    if let Some(fault) = faults::draw(&profile.faults, occ.fault) {
        // Counted first: a reset drops this future with the connection.
        st.stats.record(&model, &[fault.outcome()]);
        match inject(&st, fault, &profile, abort, &mut occ.spare, false).await {
            Some(r) => return r,
            None => hung = true,
        }
    }
    if hung {
        st.stats.record_more(&model, &[Outcome::Embedding]);
    } else {
        st.stats.record(&model, &[Outcome::Embedding]);
    }
    let dims = body
        .dimensions
        .filter(|d| (1..=8192).contains(d))
        .unwrap_or(profile.embedding_dims);
    let base64 = body.encoding_format.as_deref() == Some("base64");
    let data: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = embed::embed(text, dims, profile.embedding_salt);
            let embedding = if base64 {
                serde_json::Value::String(embed::to_base64(&v))
            } else {
                serde_json::json!(v)
            };
            serde_json::json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|t| text::token_estimate(t)).sum();
    let mut out = serde_json::json!({
        "object": "list",
        "data": data,
        "model": profile.model.as_deref().unwrap_or(&model),
    });
    if !profile.omit_usage {
        out["usage"] = serde_json::json!({ "prompt_tokens": tokens, "total_tokens": tokens });
    }
    axum::Json(out).into_response()
}

// -------------------------------------------------------------------- models

fn model_entry(id: &str) -> serde_json::Value {
    serde_json::json!({ "id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "canaryd-sim" })
}

async fn models(State(st): St, headers: HeaderMap) -> Response {
    if let Some(r) = check_key(&st, &headers) {
        return r;
    }
    let data: Vec<_> = st.scenario.model_names().map(model_entry).collect();
    axum::Json(serde_json::json!({ "object": "list", "data": data })).into_response()
}

async fn model(State(st): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = check_key(&st, &headers) {
        return r;
    }
    match st.scenario.profile(st.current_phase(), &id) {
        Some(_) => axum::Json(model_entry(&id)).into_response(),
        None => model_not_found(&id),
    }
}

// ------------------------------------------------------------------- control

fn phase_json(st: &SimState) -> serde_json::Value {
    let i = st.current_phase();
    serde_json::json!({
        "index": i,
        "name": st.scenario.phases[i].name,
        "manual": st.phase_is_manual(),
        "phases": st.scenario.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
    })
}

async fn get_phase(State(st): St) -> Response {
    axum::Json(phase_json(&st)).into_response()
}

/// `{"phase": "name"}`, `{"phase": 2}`, or `{"phase": "auto"}` to hand
/// control back to the triggers.
async fn set_phase(State(st): St, body: Bytes) -> Response {
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return unparsable(&e),
    };
    let target = match v.get("phase") {
        Some(serde_json::Value::String(s)) if s == "auto" => None,
        Some(serde_json::Value::String(s)) => match st.scenario.phase_index(s) {
            Some(i) => Some(i),
            None => {
                return faults::bad_request(&format!("no phase named `{s}`"), Some("phase"), None);
            }
        },
        Some(serde_json::Value::Number(n))
            if n.as_u64()
                .is_some_and(|i| (i as usize) < st.scenario.phases.len()) =>
        {
            n.as_u64().map(|i| i as usize)
        }
        _ => {
            return faults::bad_request(
                "expected {\"phase\": <name, index or \"auto\">}",
                Some("phase"),
                None,
            );
        }
    };
    st.set_phase(target);
    tracing::info!(phase = ?target, "sim phase set by hand");
    axum::Json(phase_json(&st)).into_response()
}

async fn stats(State(st): St) -> Response {
    let mut v = st.stats.snapshot();
    v["phase"] = phase_json(&st);
    axum::Json(v).into_response()
}
