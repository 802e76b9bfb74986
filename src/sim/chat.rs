//! `POST /v1/chat/completions`: answers, judge verdicts, and their JSON or
//! server-sent-event form.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::api::{
    St, check_key, completion_id, delay, inject, model_not_found, now_secs, occurrence, read_body,
    unparsable,
};
use super::behave::{self, Turn};
use super::faults;
use super::rng::StableHasher;
use super::scenario::FinishStyle;
use super::stats::Outcome;
use super::{judge, text};

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
    /// Tools offered to the model (only their function names are read).
    #[serde(default)]
    tools: Vec<serde_json::Value>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    top_logprobs: Option<u32>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<&'a serde_json::Value>,
}

/// What a model in a clarification loop says (`clarify_rate`): always the
/// same question, so the agent that receives it asks back the same way.
const CLARIFY_TEXT: &str = "Before I go on: could you clarify what you need from me?";
const CLARIFY_ARGS: &str = r#"{"question":"Could you clarify what you need from me?"}"#;

/// Whether the request offers a function tool named `name`.
fn offers_tool(tools: &[serde_json::Value], name: &str) -> bool {
    tools.iter().any(|t| {
        t.pointer("/function/name").and_then(|n| n.as_str()) == Some(name)
            || t.get("name").and_then(|n| n.as_str()) == Some(name)
    })
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<serde_json::Value>,
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

pub(super) async fn chat(State(st): St, req: Request) -> Response {
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
    let is_judge = judge::is_judge_call(&all_text, body.response_format.as_ref());
    // The clarification draw comes from the spare stream, after any fault:
    // the other draws of a request are the same with or without it.
    let clarify = !is_judge
        && profile.clarify_rate > 0.0
        && offers_tool(&body.tools, &profile.clarify_tool)
        && occ.spare.unit() < profile.clarify_rate;
    let tool_calls = clarify.then(|| {
        serde_json::json!([{
            "id": format!("call_{content_hash:016x}{}", occ.index),
            "type": "function",
            "function": {"name": profile.clarify_tool, "arguments": CLARIFY_ARGS},
        }])
    });
    let (content, truncated, outcomes) = if clarify {
        (CLARIFY_TEXT.to_string(), false, vec![Outcome::Clarify])
    } else if is_judge {
        if occ.judge_garbage < profile.judge_malformed_rate {
            (
                judge::garbage(&mut occ.spare),
                false,
                vec![Outcome::JudgeMalformed],
            )
        } else {
            let v = judge::score(&judge::parse(&all_text), profile.judge_bias);
            let text = judge::render(&v);
            // As llama.cpp does: a judgement longer than max_tokens is
            // cut mid-object with finish_reason "length".
            match body.max_completion_tokens.or(body.max_tokens) {
                Some(max) if text::token_estimate(&text) > u64::from(max) => (
                    behave::cut_at_word(&text, (max as usize * 4).max(1)),
                    true,
                    vec![Outcome::Judge],
                ),
                _ => (text, false, vec![Outcome::Judge]),
            }
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
        let mut a = behave::answer(&profile, &prompt, seed, occ.draws, max);
        if !a.refused && profile.reword > 0.0 {
            // Drawn per occurrence: the swap changes the distribution.
            let s = super::rng::mix(seed, occ.index);
            a.text = super::reword::reword(&a.text, profile.reword, s);
        }
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
        _ if clarify => "tool_calls",
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
    // OpenAI's shape, for the first token only (all a probe reads).
    let logprobs =
        (body.logprobs == Some(true) && profile.logprobs && !content.is_empty()).then(|| {
            let first = super::logprobs::first_token(&content);
            let top = super::logprobs::first_position(
                st.scenario.seed,
                content_hash,
                first,
                body.top_logprobs.unwrap_or(0).max(1) as usize,
                profile.logprob_shift,
                profile.logprob_noise,
                occ.index,
            );
            let own = top
                .iter()
                .find(|t| t.0 == first)
                .map_or(top.last().map_or(0.0, |t| t.1), |t| t.1);
            let alternatives: Vec<serde_json::Value> = top
                .iter()
                .take(body.top_logprobs.unwrap_or(0) as usize)
                .map(
                    |(t, l)| serde_json::json!({ "token": t, "logprob": l, "bytes": t.as_bytes() }),
                )
                .collect();
            serde_json::json!({ "content": [{
            "token": first, "logprob": own, "bytes": first.as_bytes(), "top_logprobs": alternatives
        }], "refusal": null })
        });
    let out = Reply {
        id: &id,
        created,
        model: reported,
        fingerprint,
        content: &content,
        finish_reason,
        usage,
        tool_calls: tool_calls.as_ref(),
        logprobs,
    };
    if stream {
        let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
        sse(out, include_usage, profile.stream_chunk_ms)
    } else {
        json_reply(out)
    }
}

struct Reply<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
    fingerprint: Option<&'a str>,
    content: &'a str,
    finish_reason: &'a str,
    usage: Option<UsageOut>,
    tool_calls: Option<&'a serde_json::Value>,
    logprobs: Option<serde_json::Value>,
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
                tool_calls: r.tool_calls,
            },
            logprobs: r.logprobs,
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
fn sse(r: Reply<'_>, include_usage: bool, chunk_ms: f64) -> Response {
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
    let mut events: Vec<String> = Vec::new();
    let mut push = |v: &serde_json::Value| events.push(format!("data: {v}\n\n"));
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
    if let Some(calls) = r.tool_calls {
        // One delta with the whole calls, each with its index, as OpenAI
        // sends short ones.
        let mut calls = calls.clone();
        if let Some(list) = calls.as_array_mut() {
            for (i, c) in list.iter_mut().enumerate() {
                c["index"] = i.into();
            }
        }
        push(&chunk(serde_json::json!({ "tool_calls": calls }), None));
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
    events.push("data: [DONE]\n\n".to_string());
    // With a chunk delay the events are sent as they "are generated", so
    // clients see a time to first token shorter than the total time.
    let body = if chunk_ms > 0.0 {
        let pause = std::time::Duration::from_secs_f64(chunk_ms / 1000.0);
        let stream =
            futures::stream::iter(events.into_iter().enumerate()).then(move |(i, e)| async move {
                if i > 0 {
                    tokio::time::sleep(pause).await;
                }
                Ok::<_, std::convert::Infallible>(e)
            });
        Body::from_stream(stream)
    } else {
        Body::from(events.concat())
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("static response")
}
