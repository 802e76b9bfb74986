//! Status pages: server-rendered HTML with inline SVG charts.
//!
//! No JavaScript and no asset pipeline: Tera templates are compiled into the
//! binary (`include_str!`), charts are SVG strings built by [`charts`], and
//! the stylesheet is inlined by the base layout. Templates are named `.html`
//! so Tera autoescapes every value; only chart markup, which escapes its own
//! text, is inserted with `| safe`. User and model text is only ever a
//! context value, never template source.
//!
//! Handlers take `now` once per request and pass it to the pure view-model
//! builders in [`view`] and [`detail`].

pub mod charts;
pub mod detail;
pub mod fmt;
mod pages;
pub mod refusal_view;
pub mod session_view;
pub mod spend;
pub mod stream_spend;
pub mod stream_view;
pub mod view;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::clock::Clock;
use crate::live::Shared;
use crate::store::Store;

/// What the pages need from the daemon.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub store: Store,
    pub live: Shared,
    pub clock: Clock,
}

/// State of the page handlers: their context plus the compiled templates.
#[derive(Clone)]
pub struct Web {
    ctx: Ctx,
    tera: Arc<tera::Tera>,
}

/// The page routes, with their state applied, ready to merge into the
/// daemon's router.
pub fn router<S: Clone + Send + Sync + 'static>(ctx: Ctx) -> Router<S> {
    let web = Web {
        ctx,
        tera: Arc::new(templates().expect("embedded templates compile")),
    };
    Router::new()
        .route("/", get(pages::overview))
        .route("/streams/{*stream}", get(pages::stream))
        .route("/suites/{*suite}", get(pages::suite))
        .route("/responses/{id}", get(pages::response))
        .route("/alerts", get(pages::alerts))
        .route("/alerts/{id}/postmortem.md", get(pages::postmortem))
        .route("/sessions", get(pages::session))
        .with_state(web)
}

const TEMPLATES: [(&str, &str); 9] = [
    ("base.html", include_str!("../../templates/web/base.html")),
    (
        "macros.html",
        include_str!("../../templates/web/macros.html"),
    ),
    (
        "overview.html",
        include_str!("../../templates/web/overview.html"),
    ),
    (
        "stream.html",
        include_str!("../../templates/web/stream.html"),
    ),
    ("suite.html", include_str!("../../templates/web/suite.html")),
    (
        "response.html",
        include_str!("../../templates/web/response.html"),
    ),
    (
        "alerts.html",
        include_str!("../../templates/web/alerts.html"),
    ),
    ("error.html", include_str!("../../templates/web/error.html")),
    (
        "session.html",
        include_str!("../../templates/web/session.html"),
    ),
];

/// Compiles the embedded templates (autoescaped: every name ends in `.html`).
pub fn templates() -> tera::Result<tera::Tera> {
    let mut tera = tera::Tera::default();
    tera.add_raw_templates(TEMPLATES)?;
    crate::text::disable_tera_env(&mut tera);
    Ok(tera)
}

/// What can go wrong while serving a page.
#[derive(Debug)]
pub enum PageError {
    /// The stream, suite or response does not exist (404).
    NotFound(String),
    /// Storage or rendering failed (500); the detail is logged, not shown.
    Internal(String),
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        PageError::Internal(e.to_string())
    }
}

impl Web {
    /// Renders `template` with `ctx`, turning a template failure into a 500.
    fn render(&self, template: &str, ctx: &tera::Context) -> Result<Html<String>, PageError> {
        self.tera
            .render(template, ctx)
            .map(Html)
            .map_err(|e| PageError::Internal(crate::text::error_chain(&e)))
    }

    fn error_page(&self, status: StatusCode, message: &str, now_ms: i64) -> Response {
        let title = status.canonical_reason().unwrap_or("Error");
        let mut ctx = context(title, now_ms);
        ctx.insert("title", title);
        ctx.insert("message", message);
        let body = self
            .tera
            .render("error.html", &ctx)
            .unwrap_or_else(|_| format!("{status}\n"));
        (status, Html(body)).into_response()
    }

    /// The response for a failed page.
    fn fail(&self, e: PageError, now_ms: i64) -> Response {
        match e {
            PageError::NotFound(what) => self.error_page(StatusCode::NOT_FOUND, &what, now_ms),
            PageError::Internal(detail) => {
                tracing::error!(error = %detail, "status page failed");
                self.error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The page could not be built; the daemon's log has the details.",
                    now_ms,
                )
            }
        }
    }
}

/// The context every page starts from: its title and when it was generated.
fn context(title: &str, now_ms: i64) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("page_title", title);
    ctx.insert("generated", &fmt::fmt_time(now_ms));
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_autoescape_and_refuse_env() {
        let tera = templates().unwrap();
        let mut ctx = context("<script>", 0);
        ctx.insert("title", "<script>alert(1)</script>");
        ctx.insert("message", "<img src=x onerror=alert(1)>");
        let html = tera.render("error.html", &ctx).unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(
            !html.contains("<img") && !html.contains("<script"),
            "{html}"
        );
        // The chart macro escapes everything but the (self-escaped) SVG.
        let mut t = tera.clone();
        t.add_raw_template(
            "m.html",
            r#"{% import "macros.html" as m %}{{ m::chart(c=c) }}"#,
        )
        .unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert(
            "c",
            &serde_json::json!({"title": "<script>", "caption": "<img src=x>", "svg": "<svg></svg>",
                                "legend": [{"label": "<b>x</b>", "colour": "red"}]}),
        );
        let html = t.render("m.html", &ctx).unwrap();
        assert!(
            html.contains("<svg></svg>") && html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(
            !html.contains("<script") && !html.contains("<img") && !html.contains("<b>"),
            "{html}"
        );
        let mut t = tera.clone();
        t.add_raw_template("x.html", "{{ get_env(name=\"HOME\") }}")
            .unwrap();
        assert!(t.render("x.html", &tera::Context::new()).is_err());
    }
}
