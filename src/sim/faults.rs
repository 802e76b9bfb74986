//! Provider faults and OpenAI-shaped error responses.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::rng::Rng;
use super::scenario::Faults;
use super::stats::Outcome;

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    RateLimited,
    ServerError,
    Unavailable,
    Timeout,
    Malformed,
    Reset,
}

impl Fault {
    pub fn outcome(self) -> Outcome {
        match self {
            Fault::RateLimited => Outcome::RateLimited,
            Fault::ServerError => Outcome::ServerError,
            Fault::Unavailable => Outcome::Unavailable,
            Fault::Timeout => Outcome::Timeout,
            Fault::Malformed => Outcome::Malformed,
            Fault::Reset => Outcome::Reset,
        }
    }
}

/// Picks at most one fault from a uniform draw `u`: the probabilities are
/// stacked in a fixed order so that one draw decides among all of them.
pub fn draw(f: &Faults, u: f64) -> Option<Fault> {
    let table = [
        (f.http_429, Fault::RateLimited),
        (f.http_500, Fault::ServerError),
        (f.http_503, Fault::Unavailable),
        (f.timeout, Fault::Timeout),
        (f.malformed_json, Fault::Malformed),
        (f.reset, Fault::Reset),
    ];
    let mut acc = 0.0;
    for (p, fault) in table {
        acc += p;
        if p > 0.0 && u < acc {
            return Some(fault);
        }
    }
    None
}

/// `{"error": {"message", "type", "param", "code"}}` with a status.
pub fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "param": param, "code": code }
    });
    (status, axum::Json(body)).into_response()
}

/// 400 `invalid_request_error`.
pub fn bad_request(message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        code,
    )
}

/// 429 with `Retry-After` and the rate-limit headers OpenAI sends.
pub fn rate_limited(retry_after_secs: f64) -> Response {
    let msg = format!(
        "Rate limit reached for requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in {retry_after_secs}s."
    );
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        &msg,
        "requests",
        None,
        Some("rate_limit_exceeded"),
    );
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format_secs(retry_after_secs)) {
        h.insert(header::RETRY_AFTER, v);
    }
    h.insert(
        "x-ratelimit-limit-requests",
        HeaderValue::from_static("500"),
    );
    h.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static("0"),
    );
    r
}

fn format_secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

pub fn server_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
        None,
    )
}

pub fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
        None,
    )
}

/// A 200 whose body is not what the API promises.
pub fn malformed(rng: &mut Rng, stream: bool) -> Response {
    const BODIES: &[&str] = &[
        "{\"id\":\"chatcmpl-sim\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assist",
        "<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>",
        "upstream connect error or disconnect/reset before headers",
        "{\"object\":\"chat.completion\",\"choices\":\"none\"}",
        "\u{0}\u{1}garbage\u{7f}",
    ];
    let body = rng.pick(BODIES);
    let (ctype, body) = if stream {
        ("text/event-stream", format!("data: {body}\n\n"))
    } else {
        ("application/json", body.to_string())
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, ctype)
        .body(Body::from(body))
        .expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_stacked_probabilities() {
        let f = Faults {
            http_429: 0.1,
            http_500: 0.2,
            reset: 0.1,
            ..Faults::default()
        };
        assert_eq!(draw(&f, 0.05), Some(Fault::RateLimited));
        assert_eq!(draw(&f, 0.15), Some(Fault::ServerError));
        assert_eq!(draw(&f, 0.35), Some(Fault::Reset));
        assert_eq!(draw(&f, 0.45), None);
        assert_eq!(draw(&Faults::default(), 0.0), None);
        assert_eq!(format_secs(2.0), "2");
        assert_eq!(format_secs(0.5), "0.5");
    }
}
