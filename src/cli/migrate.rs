//! `canaryd migrate`: apply the schema and exit.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database URL; overrides the config file and $CANARYD_DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

pub async fn run(config_flag: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let url = match args.database {
        Some(url) => url,
        None => {
            let path = config::resolve_path(config_flag);
            config::load(&path)
                .map_err(|d| anyhow::anyhow!("{d}"))?
                .config
                .database
        }
    };
    let store = Store::connect(&url).await?;
    store.migrate().await.context("applying migrations")?;
    let tables = store.tables().await?;
    println!(
        "database {} is at the current schema ({} tables)",
        crate::secret::redact_url(&url),
        tables.len()
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
