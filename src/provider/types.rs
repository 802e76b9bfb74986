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
