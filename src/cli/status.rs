//! `canaryd status`: the health of every stream and suite, each detector's
//! current verdict, and what is firing — evaluated now against the database.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::signals::report;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub async fn run(config_flag: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let path = crate::config::resolve_path(config_flag);
    let config = crate::config::load(&path)
        .map_err(|d| anyhow::anyhow!("invalid config:\n{d}"))?
        .config;
    let store = Store::connect(&config.database).await?;
    store.migrate().await.context("applying migrations")?;
    let now = crate::clock::Clock::system().now_ms();
    let cfg = &config.detectors;
    let snap = store
        .detector_snapshot(now, cfg)
        .await
        .context("loading the detectors' data")?;
    let open = crate::alert::open_states(&store.open_alerts().await.context("reading alerts")?);
    let report = report::build(
        crate::signals::evaluate_snapshot(&snap, now, cfg),
        &open,
        now,
        cfg,
    );
    let spend = crate::sessions::spend_text(&store, now)
        .await
        .context("reading spend")?;
    store.close().await;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}{spend}", report::render_text(&report)),
    }
    Ok(ExitCode::SUCCESS)
}
