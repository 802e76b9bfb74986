//! Production responses: the record format, the ingest API, OTLP traces and
//! logs, and the cheap signals computed on every record (token count,
//! refusal, finish reason, model identity).

pub mod api;
mod limits;
pub mod otlp;
pub mod otlp_logs;
pub mod record;
pub mod refusal;
mod settings;
mod state;
pub mod writer;

use sha2::{Digest, Sha256};

/// The tokenizer, a leaf below ingest (the judge worker counts with it too).
pub use record::{Input, Record, RecordError, parse_body, parse_one};
pub use refusal::is_refusal;
pub use settings::IngestConfig;
pub use writer::Writer;

/// What the ingest handlers need from the daemon: the live settings
/// (limits, judges, sampling, prices), the group-commit writer and the clock.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub live: crate::current::Current<dyn Settings>,
    pub writer: Writer,
    pub clock: crate::clock::Clock,
    /// For joining OTLP log events to stored records (`otlp_logs`).
    pub store: crate::store::Store,
}

/// What ingest reads of the reloadable settings (`live::Live` provides it;
/// ingest names neither it nor the config).
pub trait Settings: Send + Sync {
    fn ingest(&self) -> &IngestConfig;
    fn judging(&self) -> &JudgingConfig;
    fn judges(&self) -> &[crate::judge::Judge];
    /// The prices of records without `cost_usd` (`models:` and `prices:`).
    fn prices(&self) -> crate::sessions::cost::Prices;
}

/// The ingest routes, with the body limit (applied after gzip decoding, so
/// a compressed bomb cannot exceed it either), the budget of bytes in
/// flight, and every refusal as the same JSON shape (`limits.rs`), for any
/// daemon state that provides a [`Ctx`].
pub fn routes<S>(config: &IngestConfig) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
    Ctx: axum::extract::FromRef<S>,
{
    use axum::middleware::from_fn_with_state;
    use axum::routing::post;
    let limits = limits::Limits::new(config);
    axum::Router::new()
        .route("/v1/responses", post(api::post_responses))
        .route("/v1/traces", post(otlp::post_traces))
        .route("/v1/logs", post(otlp_logs::post_logs))
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body_bytes))
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .layer(from_fn_with_state(limits.clone(), limits::in_flight))
        .layer(from_fn_with_state(limits, limits::json_errors))
}

use crate::judge::JudgingConfig;
use crate::store::ResponseRow;

/// Turns validated records into rows with their cheap signals: the output
/// token count (given, else o200k_base), the refusal flag (the text, or a
/// provider's content-filter stop), and the
/// rate-based sampling decision (`sampled`; hourly floors and caps are
/// applied by the store, which knows the counts). CPU-bound: run it off the
/// async executor for large batches.
pub fn prepare(records: &[Record], received_ms: i64, judging: &JudgingConfig) -> Vec<ResponseRow> {
    records
        .iter()
        .map(|r| {
            let ts_ms = r.timestamp_ms.unwrap_or(received_ms);
            let output_tokens = r
                .output_tokens
                .unwrap_or_else(|| crate::tokens::count(&r.output));
            let sampled = sample_point(r, ts_ms) < judging.rate(&r.stream);
            ResponseRow {
                id: 0,
                ext_id: r.id.clone(),
                stream: r.stream.clone(),
                ts_ms,
                received_ms,
                prompt_version: r.prompt_version.clone(),
                request_model: r.request_model.clone(),
                response_model: r.response_model.clone(),
                system_fingerprint: r.system_fingerprint.clone(),
                input: r
                    .input
                    .as_ref()
                    .map(|i| serde_json::to_string(i).expect("JSON values serialize")),
                context: (!r.context.is_empty())
                    .then(|| serde_json::to_string(&r.context).expect("strings serialize")),
                output: r.output.clone(),
                finish_reason: r.finish_reason.clone(),
                input_tokens: r.input_tokens,
                output_tokens,
                max_tokens: r.max_tokens,
                labels: (!r.labels.is_empty())
                    .then(|| serde_json::to_string(&r.labels).expect("strings serialize")),
                latency_ms: r.latency_ms,
                session_id: r.session_id.clone(),
                tool_calls: r.tool_calls.as_ref().map(|t| t.to_string()),
                // Validated at parse time: a record that got here has readable tool calls.
                tools: r
                    .tool_calls
                    .as_ref()
                    .and_then(|t| crate::tool_calls::parse_tool_calls(t).ok())
                    .unwrap_or_default(),
                agent: r.agent.clone(),
                user_id: r.user_id.clone(),
                cost_usd: r.cost_usd,
                session_only: r.session_only,
                refusal: is_refusal(&r.output)
                    || refusal::stopped_by_filter(r.finish_reason.as_deref()),
                sampled,
                embedding: r.embedding.as_deref().map(crate::store::embedding_bytes),
                scores: r.scores.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                explanations: r.explanations.clone(),
                judges: Vec::new(),
            }
        })
        .collect()
}

/// A point in [0, 1) fixed by the record: its id when it has one (so every
/// replica and every retry of the same record decides alike), else its
/// stream, time and output.
pub fn sample_point(r: &Record, ts_ms: i64) -> f64 {
    let mut h = Sha256::new();
    match &r.id {
        Some(id) => h.update(id.as_bytes()),
        None => {
            h.update(r.stream.as_bytes());
            h.update([0]);
            h.update(ts_ms.to_le_bytes());
            h.update(r.output.as_bytes());
        }
    }
    let d = h.finalize();
    let x = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_computes_signals_and_samples_by_id() {
        let mut cfg = JudgingConfig {
            sample_rate: 0.5,
            ..Default::default()
        };
        let recs: Vec<Record> = (0..400)
            .map(|i| Record {
                id: Some(format!("r{i}")),
                stream: "s".into(),
                output: "I'm sorry, but I can't help with that.".into(),
                ..Default::default()
            })
            .collect();
        let rows = prepare(&recs, 1000, &cfg);
        assert!(
            rows.iter()
                .all(|r| r.refusal && r.ts_ms == 1000 && r.output_tokens > 5)
        );
        let n = rows.iter().filter(|r| r.sampled).count();
        assert!((150..250).contains(&n), "{n}");
        // Deterministic: the same records sample alike, and a lower rate picks a subset.
        assert_eq!(
            prepare(&recs, 5, &cfg).iter().filter(|r| r.sampled).count(),
            n
        );
        cfg.sample_rate = 0.1;
        let low = prepare(&recs, 5, &cfg);
        assert!(low.iter().zip(&rows).all(|(l, h)| !l.sampled || h.sampled));
        cfg.enabled = false;
        assert!(prepare(&recs, 5, &cfg).iter().all(|r| !r.sampled));
    }

    #[test]
    fn a_provider_content_filter_stop_is_a_refusal_whatever_the_text() {
        let rec = |output: &str, finish: Option<&str>| Record {
            stream: "s".into(),
            output: output.into(),
            finish_reason: finish.map(str::to_string),
            ..Default::default()
        };
        let rows = prepare(
            &[
                rec("", Some("content_filter")),
                rec("Here is the partial", Some("SAFETY")),
                rec("Here is the answer.", Some("stop")),
                rec("Here is the answer.", None),
            ],
            0,
            &JudgingConfig::default(),
        );
        let flags: Vec<bool> = rows.iter().map(|r| r.refusal).collect();
        assert_eq!(flags, [true, true, false, false]);
    }

    #[test]
    fn given_token_counts_win_and_embeddings_round_trip() {
        let r = Record {
            stream: "s".into(),
            output: "hello world".into(),
            output_tokens: Some(99),
            embedding: Some(vec![0.5, -1.0]),
            ..Default::default()
        };
        let row = &prepare(&[r], 0, &JudgingConfig::default())[0];
        assert_eq!(row.output_tokens, 99);
        assert_eq!(
            crate::store::embedding_from_bytes(row.embedding.as_ref().unwrap()),
            vec![0.5, -1.0]
        );
    }
}
