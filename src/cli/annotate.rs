//! `canaryd annotate`: record a change (a deploy, a prompt or index update)
//! so the charts show it and alerts that start near it cite it. Writes to
//! the database directly, like `canaryd silence`, so a deploy pipeline
//! needs no token and no running daemon.

use std::path::Path;
use std::process::ExitCode;

use crate::annotations::{KINDS, parse_at, validate};
use crate::store::Annotation;
use crate::text::fmt_time;

use super::alerts::open_store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stream the change applies to, or "*" for every stream.
    #[arg(long)]
    pub stream: String,
    /// What changed: deploy, prompt, index, tool or model.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(KINDS))]
    pub kind: String,
    /// What happened, e.g. "deploy v2.3 (abc123)"; at most 1024 bytes.
    #[arg(long)]
    pub text: String,
    /// When it happened: an RFC 3339 time or a duration ago (15m); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Database URL; overrides the config file and $CANARYD_DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

pub async fn run(config_flag: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let now = crate::clock::Clock::system().now_ms();
    let text =
        validate(&args.stream, &args.kind, &args.text).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let ts_ms = match args.at.as_deref() {
        Some(at) => parse_at(at, now).map_err(|e| anyhow::anyhow!("--{e}"))?,
        None => now,
    };
    let store = open_store(config_flag, args.database).await?;
    let id = store
        .add_annotation(&Annotation {
            id: 0,
            stream: args.stream.trim().to_string(),
            kind: args.kind,
            text,
            ts_ms,
            source: "cli".into(),
            created_ms: now,
        })
        .await?;
    store.close().await;
    println!("annotation {id} added at {}", fmt_time(ts_ms));
    Ok(ExitCode::SUCCESS)
}
