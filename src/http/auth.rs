//! The one access model of the HTTP surface.
//!
//! Every request passes [`guard`], which sorts its route into a [`Class`]
//! and asks for the credential of that class. Deciding by path in one place
//! means a route added later is protected by default: anything not named
//! below is a status page and needs an API token.
//!
//! | class     | routes                                  | credential                                   |
//! |-----------|-----------------------------------------|----------------------------------------------|
//! | `Open`    | `/healthz`, `/readyz`, `/login`, `/logout` | none                                      |
//! | `Ingest`  | `POST /v1/responses`, `/v1/traces`, `/v1/logs` | bearer, one of `ingest.tokens`        |
//! | `Metrics` | `/metrics`                              | like `Api`, or none with `api.open_metrics`  |
//! | `Api`     | `/api/…`                                | bearer, one of `api.tokens`                  |
//! | `Page`    | everything else (status pages)          | bearer or the login cookie of an API token   |
//!
//! With no token configured at all every class is open; `config::validate`
//! refuses that on an address other than loopback unless `insecure_no_auth`
//! says so. Once any token is configured, a class whose own list is empty
//! refuses every request (fail closed) and `check` warns about it.
//!
//! The login cookie never holds the token: it holds a SHA-256 of it under a
//! fixed label, so it stops working when the token is rotated and a leaked
//! cookie does not reveal the token. It is `HttpOnly` and `SameSite=Strict`,
//! and only pages accept it: the state-changing API takes only a bearer
//! header, so a cross-site form can never act with a browser's cookie.

use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::current::Current;
use crate::secret::{Secret, SecretRef};

/// The `api:` section of the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer tokens for reading or changing state: the status API, the
    /// alerts, silences and annotations API, the status pages and `/metrics`.
    pub tokens: Vec<SecretRef>,
    /// Serve `/metrics` without a token (a Prometheus scrape on a private
    /// network). Off unless set.
    pub open_metrics: bool,
}

/// Name of the login cookie.
pub const COOKIE: &str = "canaryd_session";
/// Lifetime of the login cookie, in seconds (7 days).
const COOKIE_MAX_AGE: u64 = 7 * 24 * 3600;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Open,
    Ingest,
    Metrics,
    Api,
    Page,
}

/// Sorts a request into its class. Unknown paths are pages (protected).
pub fn classify(method: &Method, path: &str) -> Class {
    match path {
        "/healthz" | "/readyz" | "/login" | "/logout" => Class::Open,
        "/v1/responses" | "/v1/traces" | "/v1/logs" if method == Method::POST => Class::Ingest,
        "/metrics" => Class::Metrics,
        p if p == "/api" || p.starts_with("/api/") => Class::Api,
        _ => Class::Page,
    }
}

/// The credentials in force (one version of the live settings).
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub ingest: &'a [Secret],
    pub api: &'a [Secret],
    pub open_metrics: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No credential of the class was presented.
    Missing,
    /// A credential was presented and is not one of the class's tokens.
    Wrong,
    /// The class has no tokens configured while others do: closed.
    NotConfigured,
}

impl Access<'_> {
    /// Decides one request. Pure, so the whole table is unit-tested.
    pub fn decide(&self, class: Class, headers: &HeaderMap) -> Result<(), Denied> {
        if self.ingest.is_empty() && self.api.is_empty() {
            return Ok(());
        }
        let tokens = match class {
            Class::Open => return Ok(()),
            Class::Metrics if self.open_metrics => return Ok(()),
            Class::Ingest => self.ingest,
            Class::Metrics | Class::Api | Class::Page => self.api,
        };
        if tokens.is_empty() {
            return Err(Denied::NotConfigured);
        }
        let bearer = bearer(headers);
        let cookie = (class == Class::Page)
            .then(|| session_cookie(headers))
            .flatten();
        match (bearer, cookie) {
            (Some(b), _)
                if matches_any(tokens, b.as_bytes(), |t| t.expose().as_bytes().to_vec()) =>
            {
                Ok(())
            }
            (_, Some(c))
                if matches_any(tokens, c.as_bytes(), |t| session_value(t).into_bytes()) =>
            {
                Ok(())
            }
            (None, None) => Err(Denied::Missing),
            _ => Err(Denied::Wrong),
        }
    }
}

/// Compares `given` with every token's form in constant time, so timing
/// tells nothing about which token or prefix matched.
fn matches_any(tokens: &[Secret], given: &[u8], form: impl Fn(&Secret) -> Vec<u8>) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for t in tokens {
        ok |= form(t).as_slice().ct_eq(given);
    }
    ok.into()
}

/// The token of an `Authorization: Bearer …` header; the scheme is
/// case-insensitive (RFC 7235 §2.1).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The cookie value standing for `token`.
fn session_value(token: &Secret) -> String {
    let mut h = Sha256::new();
    h.update(b"canaryd-session-v1\0");
    h.update(token.expose().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The middleware in front of every route.
pub async fn guard(
    State(live): State<Current<dyn super::Settings>>,
    req: Request,
    next: Next,
) -> Response {
    let class = classify(req.method(), req.uri().path());
    let live = live.current();
    let access = Access {
        ingest: live.ingest_tokens(),
        api: live.api_tokens(),
        open_metrics: live.api().open_metrics,
    };
    match access.decide(class, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(why) => refuse(class, why, &req),
    }
}

fn refuse(class: Class, why: Denied, req: &Request) -> Response {
    let list = if class == Class::Ingest {
        "ingest.tokens"
    } else {
        "api.tokens"
    };
    if class == Class::Page && why == Denied::Missing && req.method() == Method::GET {
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let to = format!("/login?next={}", percent_encode(next));
        return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    }
    let message = match why {
        Denied::NotConfigured => format!(
            "this endpoint needs one of `{list}` and none is configured; add one to the config"
        ),
        Denied::Missing | Denied::Wrong => format!(
            "missing or invalid bearer token: send `Authorization: Bearer <token>` with one of `{list}`"
        ),
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Only a path on this site: no scheme, no `//host`, no backslash tricks.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `GET /login`: the form.
pub async fn login_page(Query(q): Query<LoginQuery>) -> Html<String> {
    Html(login_html(safe_next(q.next.as_deref()), false))
}

/// `POST /login`: checks the token and sets the cookie.
pub async fn login(State(ctx): State<super::Ctx>, Form(f): Form<LoginForm>) -> Response {
    let live = ctx.live.current();
    let next = safe_next(f.next.as_deref()).to_string();
    let token = f.token.trim();
    if token.is_empty()
        || !matches_any(live.api_tokens(), token.as_bytes(), |t| {
            t.expose().as_bytes().to_vec()
        })
    {
        return (StatusCode::UNAUTHORIZED, Html(login_html(&next, true))).into_response();
    }
    let secure = live.base_url().is_some_and(|u| u.starts_with("https://"));
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE}{}",
        session_value(&Secret::new(token)),
        if secure { "; Secure" } else { "" }
    );
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
    )
        .into_response()
}

/// `POST /logout`: clears the cookie.
pub async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/login".into()),
        ],
    )
        .into_response()
}

fn login_html(next: &str, failed: bool) -> String {
    let next = tera::escape_html(next);
    let error = if failed {
        "<p class=\"error\">That token is not one of <code>api.tokens</code>.</p>"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>canaryd · sign in</title>\
<meta name=\"viewport\" content=\"width=device-width\"><style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}\
input{{width:100%;padding:.4rem;margin:.4rem 0}}.error{{color:#b00}}</style></head><body>\
<h1>canaryd</h1><p>Sign in with one of the daemon's <code>api.tokens</code>.</p>{error}\
<form method=\"post\" action=\"/login\"><label for=\"token\">API token</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
<input type=\"hidden\" name=\"next\" value=\"{next}\"><button type=\"submit\">Sign in</button></form></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn routes_fall_into_classes_and_unknown_ones_are_protected() {
        let get = Method::GET;
        assert_eq!(classify(&get, "/healthz"), Class::Open);
        assert_eq!(classify(&get, "/readyz"), Class::Open);
        assert_eq!(classify(&Method::POST, "/v1/responses"), Class::Ingest);
        assert_eq!(classify(&Method::POST, "/v1/traces"), Class::Ingest);
        assert_eq!(classify(&Method::POST, "/v1/logs"), Class::Ingest);
        assert_eq!(classify(&get, "/v1/responses"), Class::Page);
        assert_eq!(classify(&get, "/metrics"), Class::Metrics);
        assert_eq!(classify(&Method::DELETE, "/api/silences/3"), Class::Api);
        assert_eq!(classify(&get, "/api/v1/status"), Class::Api);
        assert_eq!(classify(&get, "/responses/x"), Class::Page);
        assert_eq!(classify(&get, "/alerts/7/postmortem.md"), Class::Page);
        assert_eq!(classify(&get, "/something-new"), Class::Page);
        assert_eq!(classify(&get, "/apiary"), Class::Page);
    }

    #[test]
    fn each_class_takes_its_own_credential() {
        let ingest = [Secret::new("ing")];
        let api = [Secret::new("adm"), Secret::new("adm2")];
        let a = Access {
            ingest: &ingest,
            api: &api,
            open_metrics: false,
        };
        let b = |t: &str| headers(&[("authorization", t)]);
        assert_eq!(a.decide(Class::Ingest, &b("Bearer ing")), Ok(()));
        assert_eq!(
            a.decide(Class::Ingest, &b("Bearer adm")),
            Err(Denied::Wrong)
        );
        assert_eq!(a.decide(Class::Api, &b("Bearer ing")), Err(Denied::Wrong));
        assert_eq!(a.decide(Class::Api, &b("Bearer adm2")), Ok(()));
        assert_eq!(a.decide(Class::Api, &b("bearer adm")), Ok(()));
        assert_eq!(a.decide(Class::Api, &b("BEARER adm")), Ok(()));
        assert_eq!(a.decide(Class::Api, &b("Basic adm")), Err(Denied::Missing));
        assert_eq!(a.decide(Class::Api, &b("Bearer ad")), Err(Denied::Wrong));
        assert_eq!(
            a.decide(Class::Api, &HeaderMap::new()),
            Err(Denied::Missing)
        );
        assert_eq!(
            a.decide(Class::Metrics, &HeaderMap::new()),
            Err(Denied::Missing)
        );
        assert_eq!(a.decide(Class::Metrics, &b("Bearer adm")), Ok(()));
        assert_eq!(a.decide(Class::Open, &HeaderMap::new()), Ok(()));
        let open = Access {
            open_metrics: true,
            ..a
        };
        assert_eq!(open.decide(Class::Metrics, &HeaderMap::new()), Ok(()));
        assert_eq!(
            open.decide(Class::Api, &HeaderMap::new()),
            Err(Denied::Missing)
        );
    }

    #[test]
    fn the_cookie_opens_pages_only() {
        let api = [Secret::new("adm")];
        let a = Access {
            ingest: &[],
            api: &api,
            open_metrics: false,
        };
        let good = format!("other=1; {COOKIE}={}", session_value(&api[0]));
        let c = headers(&[("cookie", &good)]);
        assert_eq!(a.decide(Class::Page, &c), Ok(()));
        assert_eq!(
            a.decide(Class::Api, &c),
            Err(Denied::Missing),
            "API: bearer only"
        );
        let raw = headers(&[("cookie", &format!("{COOKIE}=adm"))]);
        assert_eq!(
            a.decide(Class::Page, &raw),
            Err(Denied::Wrong),
            "the token itself is no cookie"
        );
        assert_eq!(
            a.decide(Class::Ingest, &headers(&[("authorization", "Bearer adm")])),
            Err(Denied::NotConfigured),
            "a class without tokens is closed once any are configured"
        );
    }

    #[test]
    fn no_tokens_at_all_is_open() {
        let a = Access {
            ingest: &[],
            api: &[],
            open_metrics: false,
        };
        for c in [Class::Ingest, Class::Api, Class::Page, Class::Metrics] {
            assert_eq!(a.decide(c, &HeaderMap::new()), Ok(()));
        }
    }

    #[test]
    fn login_redirects_stay_on_site() {
        assert_eq!(safe_next(Some("/streams/a?x=1")), "/streams/a?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(percent_encode("/a b?c=&d"), "/a%20b%3Fc%3D%26d");
        let page = login_html("/\"><script>", false);
        assert!(page.contains("&quot;&gt;&lt;script&gt;"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
    }
}
