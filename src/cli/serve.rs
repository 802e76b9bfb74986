//! `canaryd serve`: the daemon.

use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(config_flag: Option<&Path>, _args: Args) -> anyhow::Result<ExitCode> {
    let path = crate::config::resolve_path(config_flag);
    let loaded = crate::config::load(&path).map_err(|d| anyhow::anyhow!("invalid config:\n{d}"))?;
    crate::cli::init_logging(&loaded.config.log);
    crate::daemon::run(loaded).await?;
    Ok(ExitCode::SUCCESS)
}
