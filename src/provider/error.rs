//! Provider faults. These are never quality failures: a canary case or judge
//! job that ends in one is recorded as a provider error.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProviderError {
    #[error("rate limited (HTTP 429){}", retry_after_note(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("server error (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    #[error("request rejected (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Network(String),
    #[error("unreadable answer: {0}")]
    Malformed(String),
    #[error("unknown model `{0}`: it is not defined under `models:` in the config")]
    UnknownModel(String),
    #[error("cannot set up provider {provider}: {message}")]
    Setup { provider: String, message: String },
}

fn retry_after_note(d: Option<Duration>) -> String {
    d.map(|d| format!(", retry after {:.1}s", d.as_secs_f64()))
        .unwrap_or_default()
}

impl ProviderError {
    /// Worth another attempt: transient by nature.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::Server { .. }
            | ProviderError::Timeout(_)
            | ProviderError::Network(_)
            | ProviderError::Malformed(_) => true,
            ProviderError::Rejected { status, .. } => *status == 408 || *status == 409,
            ProviderError::UnknownModel(_) | ProviderError::Setup { .. } => false,
        }
    }

    /// A short stable label for metrics and storage.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Server { .. } => "server_error",
            ProviderError::Rejected { .. } => "rejected",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Network(_) => "network",
            ProviderError::Malformed(_) => "malformed",
            ProviderError::UnknownModel(_) => "unknown_model",
            ProviderError::Setup { .. } => "setup",
        }
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}
