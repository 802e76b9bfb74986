//! Page handlers: read what the page needs (bounded queries), build the view
//! model with the request's `now`, render.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::detail::{self, SuiteData};
use super::view::{self, OverviewData, Periods, StreamData};
use super::{PageError, Web, context};
use crate::store::{AlertRow, HealthPoint};

/// Charts cover 48 hours unless `?hours=` says otherwise (6 h to 14 days).
const DEFAULT_HOURS: i64 = 48;
/// Most annotations drawn on a stream page's charts and listed under them.
const ANNOTATION_ROWS: i64 = 200;
/// Rows of the "worst recent judged responses" table.
const WORST_ROWS: i64 = 10;
/// Users in the stream page's spend table (the first few are also drawn).
const USER_ROWS: usize = 10;
/// Disagreements of the refusal classifier with the judges listed.
const DISAGREEMENT_ROWS: i64 = 10;
/// Runs listed on a suite page.
const RUN_HISTORY: i64 = 50;
/// Open alerts whose evidence the alerts page gathers.
const MAX_EVIDENCE: usize = 20;

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    hours: Option<i64>,
}

fn periods(web: &Web, now_ms: i64, q: &RangeQuery) -> Periods {
    let live = web.ctx.live.current();
    let d = &live.config.detectors;
    Periods::new(
        now_ms,
        q.hours.unwrap_or(DEFAULT_HOURS).clamp(6, 14 * 24),
        i64::from(d.window_hours),
        i64::from(d.baseline_days),
    )
}

fn respond(web: &Web, r: Result<Html<String>, PageError>, now_ms: i64) -> Response {
    match r {
        Ok(html) => html.into_response(),
        Err(e) => web.fail(e, now_ms),
    }
}

impl Web {
    /// The detectors' health series when their table exists. A query failure
    /// (say, a schema this build does not know) degrades to the provisional
    /// indicator rather than taking the page down.
    async fn health(&self, since_ms: i64) -> Result<Option<Vec<HealthPoint>>, PageError> {
        match self.ctx.store.health_scores(since_ms).await {
            Ok(h) => Ok(Some(h)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read health_scores; showing provisional health");
                Ok(None)
            }
        }
    }

    /// The detectors' latest verdicts for `stream`. A read failure only costs
    /// the verdict table, so it is logged rather than failing the page.
    async fn findings(&self, stream: &str) -> Vec<crate::signals::Finding> {
        match self.ctx.store.latest_findings().await {
            Ok(all) => all.into_iter().filter(|f| f.stream == stream).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read detector verdicts");
                vec![]
            }
        }
    }

    /// The classifier against the judges' refusal labels since `since_ms`;
    /// a read failure only costs that section.
    async fn refusal_agreement(
        &self,
        stream: &str,
        since_ms: i64,
    ) -> Option<crate::store::RefusalAgreement> {
        match self
            .ctx
            .store
            .refusal_agreement(stream, since_ms, DISAGREEMENT_ROWS)
            .await
        {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read refusal labels");
                None
            }
        }
    }

    /// Alerts when the alerting tables exist; `None` means "not installed".
    async fn alert_rows(&self, limit: i64) -> Result<Option<Vec<AlertRow>>, PageError> {
        match self.ctx.store.list_alerts(limit).await {
            Ok(a) => Ok(Some(a)),
            Err(e) => Err(PageError::Internal(format!("reading alerts: {e}"))),
        }
    }
}

pub async fn overview(State(web): State<Web>, Query(q): Query<RangeQuery>) -> Response {
    let now = web.ctx.clock.now_ms();
    let r = overview_page(&web, now, &q).await;
    respond(&web, r, now)
}

async fn overview_page(web: &Web, now: i64, q: &RangeQuery) -> Result<Html<String>, PageError> {
    let p = periods(web, now, q);
    let store = &web.ctx.store;
    let mut suites = vec![];
    for s in store.suite_names().await? {
        let runs = store.recent_runs(&s, RUN_HISTORY).await?;
        suites.push((s, runs));
    }
    let data = OverviewData {
        streams: store.active_streams(p.data_from_ms()).await?,
        hourly: store
            .hourly_rollups(None, p.data_from_ms(), p.end_ms)
            .await?,
        scores: store
            .score_rollups(None, p.data_from_ms(), p.end_ms)
            .await?,
        health: web.health(p.chart_from_ms).await?,
        latest_events: store.latest_model_events().await?,
        alerts: web.alert_rows(1000).await?,
        suites,
    };
    let mut ctx = context("Overview", now);
    ctx.insert("v", &view::build_overview(&data, &p));
    ctx.insert("hours", &((p.end_ms - p.chart_from_ms) / view::HOUR_MS));
    web.render("overview.html", &ctx)
}

pub async fn stream(
    State(web): State<Web>,
    Path(stream): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let now = web.ctx.clock.now_ms();
    let r = stream_page(&web, now, &stream, &q).await;
    respond(&web, r, now)
}

async fn stream_page(
    web: &Web,
    now: i64,
    stream: &str,
    q: &RangeQuery,
) -> Result<Html<String>, PageError> {
    let store = &web.ctx.store;
    if !store.stream_exists(stream).await? {
        return Err(PageError::NotFound(format!("No stream named {stream:?}.")));
    }
    let p = periods(web, now, q);
    let scope = format!("stream:{stream}");
    let alerts = web.alert_rows(1000).await?;
    let data = StreamData {
        stream: stream.to_string(),
        hourly: store
            .hourly_rollups(Some(stream), p.data_from_ms(), p.end_ms)
            .await?,
        scores: store
            .score_rollups(Some(stream), p.data_from_ms(), p.end_ms)
            .await?,
        length_current: store
            .length_histogram(stream, p.window_from_ms, p.end_ms)
            .await?,
        length_baseline: store
            .length_histogram(stream, p.baseline_from_ms, p.window_from_ms)
            .await?,
        embeddings: store
            .embedding_rollups(stream, p.data_from_ms(), p.end_ms)
            .await?,
        events: store
            .model_events(&scope, p.chart_from_ms)
            .await?
            .into_iter()
            .filter(|e| e.scope == scope)
            .collect(),
        annotations: store
            .annotations(Some(stream), p.chart_from_ms, p.end_ms, ANNOTATION_ROWS)
            .await?,
        worst: store
            .worst_judged(stream, p.window_from_ms, WORST_ROWS)
            .await?,
        health: web.health(p.chart_from_ms).await?,
        splits: match &alerts {
            Some(rows) => splits(web, stream, rows, now).await,
            None => Vec::new(),
        },
        alerts,
        findings: web.findings(stream).await,
        refusal_agreement: web.refusal_agreement(stream, p.window_from_ms).await,
        spend: store
            .stream_spend_hours(stream, p.chart_from_ms, p.end_ms)
            .await?,
        user_spend: store
            .stream_user_spend(stream, p.chart_from_ms, p.end_ms, USER_ROWS)
            .await?,
    };
    let mut ctx = context(stream, now);
    ctx.insert("v", &view::build_stream(&data, &p));
    web.render("stream.html", &ctx)
}

/// The open alerts of `stream` as their statistic split by dimension (the
/// stream page's small multiples); a failed read degrades to none.
async fn splits(
    web: &Web,
    stream: &str,
    alerts: &[AlertRow],
    now: i64,
) -> Vec<crate::alert::triage::Split> {
    let open: Vec<AlertRow> = alerts
        .iter()
        .filter(|a| a.stream == stream && matches!(a.state.as_str(), "firing" | "pending"))
        .cloned()
        .collect();
    match crate::alert::evidence::triage_data(&web.ctx.store, stream, &open, now).await {
        Ok(Some(d)) => open
            .iter()
            .flat_map(|a| crate::alert::triage::splits(&d, a))
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(stream, error = %e, "cannot read the triage records");
            Vec::new()
        }
    }
}

/// Each open alert's triage lines (one read per stream), for the alerts page.
async fn triage_lines(
    web: &Web,
    open: &[&AlertRow],
    now: i64,
) -> BTreeMap<i64, Vec<crate::alert::triage::TriageLine>> {
    let mut by_stream: BTreeMap<&str, Vec<AlertRow>> = BTreeMap::new();
    for a in open {
        by_stream
            .entry(a.stream.as_str())
            .or_default()
            .push((*a).clone());
    }
    let mut out = BTreeMap::new();
    for (stream, alerts) in by_stream {
        match crate::alert::evidence::triage_data(&web.ctx.store, stream, &alerts, now).await {
            Ok(Some(d)) => {
                for a in &alerts {
                    out.insert(
                        a.id,
                        crate::alert::triage::lines(&d, std::slice::from_ref(a)),
                    );
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(stream, error = %e, "cannot read the triage records"),
        }
    }
    out
}

pub async fn suite(
    State(web): State<Web>,
    Path(suite): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let now = web.ctx.clock.now_ms();
    let r = suite_page(&web, now, &suite, &q).await;
    respond(&web, r, now)
}

async fn suite_page(
    web: &Web,
    now: i64,
    suite: &str,
    q: &RangeQuery,
) -> Result<Html<String>, PageError> {
    let store = &web.ctx.store;
    let runs = store.recent_runs(suite, RUN_HISTORY).await?;
    let Some(oldest) = runs.last() else {
        return Err(PageError::NotFound(format!(
            "No runs of a suite named {suite:?}."
        )));
    };
    let p = periods(web, now, q);
    let latest_results = match runs.iter().find(|r| r.finished_ms.is_some()) {
        Some(r) => store.run_results(r.id).await?,
        None => vec![],
    };
    let data = SuiteData {
        suite: suite.to_string(),
        counts: store.run_target_counts(suite, oldest.id).await?,
        latest_results,
        events: store
            .model_events(&format!("suite:{suite}:"), p.chart_from_ms)
            .await?,
        findings: web.findings(&format!("suite:{suite}")).await,
        alerts: web.alert_rows(1000).await?,
        runs,
    };
    let mut ctx = context(suite, now);
    ctx.insert("v", &detail::build_suite(&data, &p));
    let prices: std::collections::BTreeMap<String, (f64, f64)> = web
        .ctx
        .live
        .current()
        .config
        .models
        .iter()
        .filter(|(_, m)| m.value.input_cost_per_mtok > 0.0 || m.value.output_cost_per_mtok > 0.0)
        .map(|(k, m)| {
            (
                k.clone(),
                (m.value.input_cost_per_mtok, m.value.output_cost_per_mtok),
            )
        })
        .collect();
    let spend = store.suite_spend(suite, now - 86_400_000).await?;
    ctx.insert("spend", &super::spend::lines(&spend, &prices));
    web.render("suite.html", &ctx)
}

pub async fn response(State(web): State<Web>, Path(id): Path<String>) -> Response {
    let now = web.ctx.clock.now_ms();
    let r = response_page(&web, now, &id).await;
    respond(&web, r, now)
}

async fn response_page(web: &Web, now: i64, id: &str) -> Result<Html<String>, PageError> {
    let not_found = || PageError::NotFound(format!("No response with id {id:?}."));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let store = &web.ctx.store;
    let row = store.response_by_id(id).await?.ok_or_else(not_found)?;
    let scores = store.response_scores(id).await?;
    let mut ctx = context(&format!("Response {id}"), now);
    ctx.insert("v", &detail::build_response(&row, &scores));
    web.render("response.html", &ctx)
}

#[derive(Debug, Deserialize)]
pub struct SessionQuery {
    stream: String,
    id: String,
}

pub async fn session(State(web): State<Web>, Query(q): Query<SessionQuery>) -> Response {
    let now = web.ctx.clock.now_ms();
    let r = session_page(&web, now, &q).await;
    respond(&web, r, now)
}

async fn session_page(web: &Web, now: i64, q: &SessionQuery) -> Result<Html<String>, PageError> {
    let store = &web.ctx.store;
    let Some(s) = store.session(&q.stream, &q.id).await? else {
        return Err(PageError::NotFound(format!(
            "No session {:?} in stream {:?}.",
            q.id, q.stream
        )));
    };
    let events = store
        .session_events(&q.stream, &q.id, super::session_view::PAGE_EVENTS)
        .await?;
    let mut ctx = context(&format!("Session {}", q.id), now);
    ctx.insert("v", &super::session_view::build_session(&s, &events));
    web.render("session.html", &ctx)
}

pub async fn alerts(State(web): State<Web>) -> Response {
    let now = web.ctx.clock.now_ms();
    let r = alerts_page(&web, now).await;
    respond(&web, r, now)
}

async fn alerts_page(web: &Web, now: i64) -> Result<Html<String>, PageError> {
    let rows = web.alert_rows(500).await?;
    // Evidence (the worst examples) for the open alerts: one query each, so bounded.
    let cfg = crate::config::alert_settings(&web.ctx.live.current().config);
    let mut examples = BTreeMap::new();
    let open = rows
        .iter()
        .flatten()
        .filter(|a| a.state == "firing" || a.state == "pending");
    let open: Vec<&AlertRow> = open.take(MAX_EVIDENCE).collect();
    let triage = triage_lines(web, &open, now).await;
    for a in open {
        match crate::alert::evidence::examples(&web.ctx.store, a, &cfg, now).await {
            Ok(ex) => {
                examples.insert(a.id, ex);
            }
            Err(e) => tracing::warn!(alert = a.id, error = %e, "cannot gather alert evidence"),
        }
    }
    let mut ctx = context("Alerts", now);
    ctx.insert("installed", &rows.is_some());
    ctx.insert(
        "alerts",
        &detail::build_alerts_with(rows.as_deref().unwrap_or_default(), &examples, &triage, now),
    );
    web.render("alerts.html", &ctx)
}

/// The post-mortem of one alert as a Markdown download (the same text as
/// `canaryd incident export`); a page route, so behind the page login.
pub async fn postmortem(State(web): State<Web>, Path(id): Path<String>) -> Response {
    let now = web.ctx.clock.now_ms();
    let not_found = || PageError::NotFound(format!("No alert with id {id:?}."));
    let Ok(alert_id) = id.parse::<i64>() else {
        return web.fail(not_found(), now);
    };
    let mut inc = match crate::incident::gather(&web.ctx.store, alert_id, now).await {
        Ok(inc) => inc,
        Err(crate::incident::IncidentError::NoAlert(_)) => return web.fail(not_found(), now),
        Err(e) => {
            return web.fail(
                PageError::Internal(format!("reading the incident: {e}")),
                now,
            );
        }
    };
    let models: Vec<(String, String)> = web
        .ctx
        .live
        .current()
        .config
        .models
        .iter()
        .map(|(name, m)| (name.clone(), m.value.model.clone()))
        .collect();
    inc.targets = crate::incident::targets_for(&inc, &models);
    let case = crate::incident::case::derive(&inc);
    let md = crate::incident::render::markdown(&inc, case.as_ref());
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/markdown; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"alert-{alert_id}-postmortem.md\""),
            ),
        ],
        md,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::Clock;
    use crate::live::{Live, Shared};

    /// The page's time comes from the injected clock, not the wall clock.
    #[tokio::test]
    async fn a_page_is_built_at_the_time_of_the_injected_clock() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::store::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let config =
            crate::config::from_str(std::path::Path::new("/x/canaryd.yaml"), "{}\n").unwrap();
        let live = Shared::new(Live {
            config: Arc::new(config),
            judges: Arc::new(vec![]),
            providers: Default::default(),
            ingest_tokens: Arc::new(vec![]),
            api_tokens: Arc::new(vec![]),
            generation: 0,
        });
        // 2001-09-09 01:46:40 UTC.
        let clock = Clock::fixed(1_000_000_000_000);
        let web = Web {
            ctx: crate::web::Ctx { store, live, clock },
            tera: Arc::new(crate::web::templates().unwrap()),
        };
        let resp = overview(State(web), Query(RangeQuery { hours: None })).await;
        assert_eq!(resp.status(), axum::http::StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let html = String::from_utf8_lossy(&body);
        assert!(html.contains("Generated 2001-09-09 01:46 UTC"), "{html}");
    }
}
