//! What canaryd sends to and reads from an OpenAI-compatible endpoint.
//!
//! Responses are parsed leniently: vLLM, Ollama, TGI and LiteLLM send
//! `finish_reason: "eos"`, omit `system_fingerprint` or `usage`, or add
//! fields. None of that is an error; only a missing answer is.

use serde::{Deserialize, Serialize};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Message {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// A chat completion request, as canaryd needs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// e.g. `{"type": "json_schema", "json_schema": {...}}` for structured outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
    pub stream: bool,
    /// Ask for the log-probabilities of the answer's tokens (the logprob
    /// probe). Absent from the body unless asked, so no other request
    /// changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Alternatives returned per token with `logprobs` (OpenAI allows 0–20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
}

/// Token usage as reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// A successful answer with what the provider said about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatResponse {
    pub id: Option<String>,
    /// The model that actually answered (may differ from the one requested).
    pub model: Option<String>,
    pub system_fingerprint: Option<String>,
    pub content: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// Wall time of the successful attempt.
    pub latency_ms: u64,
    /// Attempts made, including the successful one.
    pub attempts: u32,
    /// Per answer token, when asked for and returned; `None` when the
    /// provider sent none (it does not support them: not an error).
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// One answer token with its log-probability and the top alternatives at
/// its position (the chosen token usually among them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
}

/// The wire format, lenient on purpose.
#[derive(Debug, Deserialize)]
pub(crate) struct WireChatResponse {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    pub choices: Vec<WireChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireChoice {
    #[serde(default)]
    pub message: Option<WireMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Kept raw: servers differ in shape (see [`parse_logprobs`]).
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
}

/// The token log-probabilities of a choice, in the shapes servers send:
/// OpenAI and vLLM `{"content": [{"token", "logprob", "top_logprobs":
/// [{"token", "logprob"}]}]}`; llama.cpp's server the same, with `bytes`
/// and, in some versions, `id` fields, or (older, `n_probs`) a
/// `completion_probabilities` list of `{"content", "probs": [{"tok_str",
/// "prob"}]}` that some proxies forward as the choice's `logprobs`; the
/// legacy completions shape `{"tokens": [...], "token_logprobs": [...],
/// "top_logprobs": [{token: logprob}]}`. `None` when there are none —
/// `null`, absent, an empty list, or a shape nobody sends — so a provider
/// without logprobs is "unsupported", never a malformed answer.
pub fn parse_logprobs(v: &serde_json::Value) -> Option<Vec<TokenLogprob>> {
    use serde_json::Value;
    let num = |v: Option<&Value>| v.and_then(Value::as_f64).filter(|x| x.is_finite());
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let entry = |e: &Value| -> Option<TokenLogprob> {
        // OpenAI / vLLM / llama.cpp (new).
        if let (Some(token), Some(logprob)) = (text(e.get("token")), num(e.get("logprob"))) {
            let top = e
                .get("top_logprobs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|t| {
                            Some(TopLogprob {
                                token: text(t.get("token"))?,
                                logprob: num(t.get("logprob"))?,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Some(TokenLogprob {
                token,
                logprob,
                top_logprobs: top,
            });
        }
        // llama.cpp (old): probabilities, not logs.
        let token = text(e.get("content"))?;
        let probs = e.get("probs").and_then(Value::as_array)?;
        let top: Vec<TopLogprob> = probs
            .iter()
            .filter_map(|t| {
                let p = num(t.get("prob"))?;
                let token = text(t.get("tok_str"))?;
                (p > 0.0).then(|| TopLogprob {
                    token,
                    logprob: p.ln(),
                })
            })
            .collect();
        let logprob = top.iter().find(|t| t.token == token)?.logprob;
        Some(TokenLogprob {
            token,
            logprob,
            top_logprobs: top,
        })
    };
    let list = |a: &Vec<Value>| -> Option<Vec<TokenLogprob>> {
        let out: Vec<TokenLogprob> = a.iter().filter_map(entry).collect();
        (!out.is_empty()).then_some(out)
    };
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(a)) = m.get("content") {
                return list(a);
            }
            // Legacy completions shape.
            let tokens = m.get("tokens")?.as_array()?;
            let lps = m.get("token_logprobs")?.as_array()?;
            let tops = m.get("top_logprobs").and_then(Value::as_array);
            let out: Vec<TokenLogprob> = tokens
                .iter()
                .zip(lps)
                .enumerate()
                .filter_map(|(i, (t, lp))| {
                    let mut top: Vec<TopLogprob> = tops
                        .and_then(|a| a.get(i))
                        .and_then(Value::as_object)
                        .map(|o| {
                            o.iter()
                                .filter_map(|(k, v)| {
                                    Some(TopLogprob {
                                        token: k.clone(),
                                        logprob: num(Some(v))?,
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    top.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
                    Some(TokenLogprob {
                        token: t.as_str()?.to_string(),
                        logprob: num(Some(lp))?,
                        top_logprobs: top,
                    })
                })
                .collect();
            (!out.is_empty()).then_some(out)
        }
        Value::Array(a) => list(a),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
}

/// One server-sent event of a streamed answer. llama.cpp opens with a
/// delta whose `content` is null and ends with a chunk that has no choices
/// and carries `usage`; both are normal.
#[derive(Debug, Deserialize)]
pub(crate) struct WireChunk {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    #[serde(default)]
    pub choices: Vec<WireChunkChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireChunkChoice {
    #[serde(default)]
    pub delta: Option<WireMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireEmbeddingResponse {
    pub data: Vec<WireEmbedding>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireEmbedding {
    #[serde(default)]
    pub index: Option<usize>,
    pub embedding: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_vllm_and_llama_cpp_logprobs_parse_alike() {
        let openai = json!({"content": [{"token": "Paris", "logprob": -0.1, "bytes": [80],
            "top_logprobs": [{"token": "Paris", "logprob": -0.1, "bytes": [80]}, {"token": "Lyon", "logprob": -2.5}]}],
            "refusal": null});
        let a = parse_logprobs(&openai).unwrap();
        assert_eq!(a[0].token, "Paris");
        assert_eq!(a[0].top_logprobs.len(), 2);
        assert_eq!(a[0].top_logprobs[1].logprob, -2.5);
        // llama.cpp adds `id`; the same entries otherwise.
        let llama = json!({"content": [{"id": 12, "token": " The", "logprob": -0.7, "bytes": [32],
            "top_logprobs": [{"id": 12, "token": " The", "logprob": -0.7, "bytes": [32]}]}]});
        assert_eq!(parse_logprobs(&llama).unwrap()[0].token, " The");
        // Old llama.cpp probabilities.
        let old = json!([{"content": "Hi", "probs": [{"tok_str": "Hi", "prob": 0.5}, {"tok_str": "Hello", "prob": 0.25}]}]);
        let o = parse_logprobs(&old).unwrap();
        assert!((o[0].logprob - 0.5f64.ln()).abs() < 1e-12);
        assert_eq!(o[0].top_logprobs[1].token, "Hello");
        // Legacy completions.
        let legacy = json!({"tokens": ["A"], "token_logprobs": [-0.2], "top_logprobs": [{"A": -0.2, "B": -1.9}]});
        let l = parse_logprobs(&legacy).unwrap();
        assert_eq!(l[0].top_logprobs[0].token, "A");
        assert_eq!(l[0].top_logprobs[1].token, "B");
    }

    #[test]
    fn absent_or_empty_logprobs_are_none_not_an_error() {
        for v in [
            json!(null),
            json!({}),
            json!({"content": null}),
            json!({"content": []}),
            json!("x"),
            json!({"content": [{"token": 3}]}),
        ] {
            assert_eq!(parse_logprobs(&v), None, "{v}");
        }
    }
}
