//! canaryd watches production LLM systems for the failures that throw no
//! errors. See ARCHITECTURE.md for the map of this crate.

pub mod alert;
pub mod annotations;
pub mod canary;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod current;
pub mod daemon;
pub mod demo;
pub mod diag;
pub mod duration;
pub mod equality;
pub mod http;
pub mod incident;
pub mod ingest;
pub mod judge;
pub mod live;
pub mod provider;
pub mod secret;
pub mod sessions;
pub mod signals;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod tokens;
pub mod tool_calls;
pub mod web;
pub mod yaml;
