//! The alerts API: list alerts, and create, list and expire silences.
//!
//! - `GET /api/alerts` — alerts with their notifications
//! - `GET /api/silences[?all=true]` — silences in force (or all)
//! - `POST /api/silences` — `{rule?, stream?, severity?, until, comment, created_by?}`;
//!   `until` is a duration from now (`2h`) or an RFC 3339 time
//! - `DELETE /api/silences/{id}` — ends a silence now

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Ctx;
use crate::alert::silence::parse_until;
use crate::store::SilenceRow;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Ctx: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/api/alerts", get(list_alerts))
        .route("/api/silences", get(list_silences).post(create_silence))
        .route("/api/silences/{id}", delete(expire_silence))
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "alerts API failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn list_alerts(State(ctx): State<Ctx>) -> Response {
    let alerts = match ctx.store.list_alerts(500).await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let notifications = match ctx.store.list_notifications(2000).await {
        Ok(n) => n,
        Err(e) => return internal(e),
    };
    let out: Vec<serde_json::Value> = alerts
        .into_iter()
        .map(|a| {
            let ns: Vec<_> = notifications
                .iter()
                .filter(|(_, ids)| ids.contains(&a.id))
                .map(|(n, _)| n)
                .collect();
            let mut v = serde_json::to_value(&a).unwrap_or_default();
            v["notifications"] = serde_json::to_value(ns).unwrap_or_default();
            v
        })
        .collect();
    Json(json!({ "alerts": out })).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

async fn list_silences(State(ctx): State<Ctx>, Query(q): Query<ListQuery>) -> Response {
    match ctx.store.list_silences(ctx.clock.now_ms(), q.all).await {
        Ok(rows) => Json(json!({ "silences": rows })).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    rule: Option<String>,
    stream: Option<String>,
    severity: Option<String>,
    until: String,
    comment: String,
    created_by: Option<String>,
}

async fn create_silence(State(ctx): State<Ctx>, Json(s): Json<NewSilence>) -> Response {
    let now = ctx.clock.now_ms();
    if s.rule.is_none() && s.stream.is_none() && s.severity.is_none() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give at least one of rule, stream, severity",
        );
    }
    let Some(ends_ms) = parse_until(&s.until, now).filter(|e| *e > now) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "until must be a duration (2h) or a future RFC 3339 time",
        );
    };
    let row = SilenceRow {
        id: 0,
        rule: s.rule,
        stream: s.stream,
        severity: s.severity,
        starts_ms: now,
        ends_ms,
        comment: s.comment,
        created_by: s.created_by.unwrap_or_else(|| "api".into()),
        created_ms: now,
    };
    match ctx.store.add_silence(&row).await {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({ "id": id, "ends_ms": ends_ms })),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

async fn expire_silence(State(ctx): State<Ctx>, Path(id): Path<i64>) -> Response {
    match ctx.store.expire_silence(id, ctx.clock.now_ms()).await {
        Ok(true) => Json(json!({ "id": id, "expired": true })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no active silence {id}")),
        Err(e) => internal(e),
    }
}
