//! `canaryd incident export ALERT_ID`: the post-mortem skeleton of one
//! alert as Markdown (`crate::incident`), on stdout or to `--out FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::alerts::open_store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Write a Markdown post-mortem of one alert: timeline, triage, the
    /// evidence records and a ready-to-paste canary case.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The alert's id (see `canaryd alerts`).
    pub alert_id: i64,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Database URL; overrides the config file and $CANARYD_DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

pub async fn run(config_flag: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let Sub::Export(args) = args.command;
    let now = crate::clock::Clock::system().now_ms();
    // The case's targets come from the config's models when it loads; a
    // `--database` export without a config still works (targets: `live`).
    let models: Vec<(String, String)> =
        crate::config::load(&crate::config::resolve_path(config_flag))
            .map(|l| {
                l.config
                    .models
                    .iter()
                    .map(|(name, m)| (name.clone(), m.value.model.clone()))
                    .collect()
            })
            .unwrap_or_else(|_| vec![("live".into(), String::new())]);
    let store = open_store(config_flag, args.database).await?;
    let gathered = crate::incident::gather(&store, args.alert_id, now).await;
    store.close().await;
    let mut inc = gathered?;
    inc.targets = crate::incident::targets_for(&inc, &models);
    let case = crate::incident::case::derive(&inc);
    let md = crate::incident::render::markdown(&inc, case.as_ref());
    match args.out {
        Some(path) => {
            std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "post-mortem of alert {} written to {}",
                args.alert_id,
                path.display()
            );
        }
        None => print!("{md}"),
    }
    Ok(ExitCode::SUCCESS)
}
