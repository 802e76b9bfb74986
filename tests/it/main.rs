//! canaryd's integration tests, one module per area, in one test binary:
//! each binary links the whole dependency tree, so one binary instead of 25
//! saves 24 links on every change. Shared support (databases on both
//! backends, the spawned daemon and simulator, receivers, polling) lives in
//! `support/`. Run one area with `cargo test --test it AREA::`.

mod support;

mod alerts_cli;
mod alerts_evidence;
mod alerts_flow;
mod alerts_render;
mod annotations;
mod architecture;
mod backtest;
mod browser;
mod canary_logprob;
mod canary_run;
mod canary_schedule;
mod check_ranges;
mod check_types;
mod cli_foundation;
mod cli_help;
mod demo;
mod detectors_store;
mod equality;
mod http_auth;
mod incident_export;
mod ingest_api;
mod ingest_limits;
mod ingest_otlp;
mod ingest_otlp_logs;
mod ingest_refusal;
mod ingest_store;
mod judge_drift;
mod judge_leases;
mod judge_queue;
mod judge_sim;
mod ops_lifecycle;
mod ops_metrics;
mod ops_replicas;
mod readme;
mod real_logprob;
mod real_model;
mod schema_parity;
mod sessions_json;
mod sessions_otlp;
mod sessions_page;
mod sessions_spend;
mod sessions_store;
mod sim;
mod store;
mod triage;
mod web_pages;
