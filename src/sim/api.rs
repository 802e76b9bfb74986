//! The router, shared request handling (body, key, faults, latency), and
//! the embeddings, models and `/_sim` control routes. Chat is in `chat.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::behave::Draws;
use super::faults::{self, Fault};
use super::rng::{Rng, StableHasher, mix};
use super::scenario::Profile;
use super::stats::Outcome;
use super::{ConnAbort, SimState, embed, text};

pub(super) type St = State<Arc<SimState>>;

/// Request bodies larger than this are refused (OpenAI's own limit is in
/// the same range).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(super::chat::chat))
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

/// The 401 to answer when the scenario requires a bearer key and the
/// request lacks it.
pub(super) fn check_key(st: &SimState, headers: &HeaderMap) -> Option<Response> {
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

pub(super) async fn read_body(
    req: Request,
) -> Result<(HeaderMap, Option<ConnAbort>, Bytes), Response> {
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

pub(super) fn unparsable(e: &serde_json::Error) -> Response {
    faults::bad_request(
        &format!(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON: {e})"
        ),
        None,
        None,
    )
}

/// Random draws for one occurrence of a request, in a fixed order.
pub(super) struct Occurrence {
    pub fault: f64,
    pub latency: f64,
    pub judge_garbage: f64,
    pub draws: Draws,
    pub spare: Rng,
    pub index: u64,
}

pub(super) fn occurrence(st: &SimState, content_hash: u64) -> Occurrence {
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
pub(super) async fn delay(st: &SimState, profile: &Profile, u: f64) -> bool {
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
pub(super) async fn inject(
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

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `chatcmpl-` and 24 base-62 characters, unique per request.
pub(super) fn completion_id(st: &SimState, content_hash: u64) -> String {
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

pub(super) fn model_not_found(model: &str) -> Response {
    faults::error(
        StatusCode::NOT_FOUND,
        &format!("The model `{model}` does not exist or you do not have access to it."),
        "invalid_request_error",
        None,
        Some("model_not_found"),
    )
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
