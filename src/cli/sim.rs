//! `canaryd sim`: the OpenAI-compatible provider simulator.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::sim::{Scenario, SimError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Scenario file (YAML); without it, the built-in scenario: every model answers well.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Seed of every deterministic choice; overrides the scenario's `seed`.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::cli::init_logging(&crate::config::LogConfig::default());
    let scenario = match &args.scenario {
        Some(path) => match Scenario::from_file(path) {
            Ok(s) => s,
            Err(SimError::Scenario(d)) => anyhow::bail!("invalid scenario:\n{d}"),
            Err(e) => return Err(e.into()),
        },
        None => Scenario::default(),
    };
    let scenario = match args.seed {
        Some(seed) => scenario.with_seed(seed),
        None => scenario,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    crate::daemon::signal_watcher(shutdown.clone());
    tracing::info!(%addr, phases = scenario.phases.len(), seed = scenario.seed, "canaryd sim listening");
    // Scripts and tests wait for this exact line: print it once, flushed.
    let mut out = std::io::stdout().lock();
    writeln!(out, "canaryd sim listening on http://{addr}")?;
    out.flush()?;
    drop(out);
    crate::sim::serve(listener, scenario, shutdown).await?;
    tracing::info!("canaryd sim stopped");
    Ok(ExitCode::SUCCESS)
}
