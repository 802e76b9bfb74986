//! The annotations API (API route class: a bearer of `api.tokens`).
//!
//! - `POST /api/v1/annotations` — `{stream, kind, text, at?}`; `at` is an
//!   RFC 3339 time or a duration ago (`15m`), default now. 201 `{id, ts_ms}`.
//! - `GET /api/v1/annotations[?stream=S][&limit=N]` — the latest
//!   annotations (of `S` and of all streams, `*`), oldest first.
//!
//! Every refusal is JSON `{"error": ...}` naming the field, including a
//! body that is not JSON or lacks a field (axum's own rejection is text).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Ctx;
use crate::annotations::{parse_at, validate};
use crate::store::Annotation;

/// Most annotations one GET returns.
const MAX_LIST: i64 = 1000;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Ctx: axum::extract::FromRef<S>,
{
    Router::new().route("/api/v1/annotations", get(list).post(create))
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "annotations API failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAnnotation {
    stream: String,
    kind: String,
    text: String,
    at: Option<String>,
}

async fn create(
    State(ctx): State<Ctx>,
    body: Result<Json<NewAnnotation>, JsonRejection>,
) -> Response {
    let Json(a) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                e.status(),
                format!(
                    "{}; expected {{\"stream\", \"kind\", \"text\", \"at\"?}}",
                    e.body_text()
                ),
            );
        }
    };
    let now = ctx.clock.now_ms();
    let text = match validate(&a.stream, &a.kind, &a.text) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.0),
    };
    let ts_ms = match a.at.as_deref().map(|s| parse_at(s, now)).transpose() {
        Ok(t) => t.unwrap_or(now),
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.0),
    };
    let row = Annotation {
        id: 0,
        stream: a.stream.trim().to_string(),
        kind: a.kind,
        text,
        ts_ms,
        source: "api".into(),
        created_ms: now,
    };
    match ctx.store.add_annotation(&row).await {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({ "id": id, "ts_ms": ts_ms })),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    stream: Option<String>,
    limit: Option<i64>,
}

async fn list(State(ctx): State<Ctx>, q: Result<Query<ListQuery>, QueryRejection>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIST);
    match ctx
        .store
        .annotations(q.stream.as_deref(), i64::MIN, i64::MAX, limit)
        .await
    {
        Ok(rows) => Json(json!({ "annotations": rows })).into_response(),
        Err(e) => internal(e),
    }
}
