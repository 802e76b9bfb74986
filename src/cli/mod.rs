//! The command line: one subcommand per file, each a thin layer over the library.

mod alerts;
mod annotate;
pub mod backtest;
mod check;
mod demo;
mod incident;
mod migrate;
mod run;
mod serve;
mod silence;
mod sim;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// canaryd watches production LLM systems for the failures that throw no
/// errors: silent model updates, creeping hallucination, refusal spikes,
/// truncation and runaway behaviour.
#[derive(Debug, Parser)]
#[command(name = "canaryd", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Config file [default: $CANARYD_CONFIG, else ./canaryd.yaml]
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: scheduler, ingest API, judges, detectors and alerts.
    Serve(serve::Args),
    /// Validate the config, every canary suite and every judge; exit 1 on any error.
    Check(check::Args),
    /// Create or update the database schema, then exit.
    Migrate(migrate::Args),
    /// Run one canary suite now and print its results.
    Run(run::Args),
    /// Run the OpenAI-compatible provider simulator.
    Sim(sim::Args),
    /// Replay recorded traffic through the detectors.
    Backtest(backtest::Args),
    /// Show the health of every stream and suite.
    Status(status::Args),
    /// Start a self-contained demo with simulated traffic and a staged model update.
    Demo(demo::Args),
    /// List alerts and their notifications.
    Alerts(alerts::Args),
    /// Mute notifications matching a rule, stream or severity until a time.
    Silence(silence::Args),
    /// Record a change (deploy, prompt, index, tool, model) for the charts and alerts.
    Annotate(annotate::Args),
    /// Post-mortems: `incident export ALERT_ID` writes one as Markdown.
    Incident(incident::Args),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let config = cli.config;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(config.as_deref(), args).await,
            Command::Check(args) => check::run(config.as_deref(), args).await,
            Command::Migrate(args) => migrate::run(config.as_deref(), args).await,
            Command::Backtest(args) => backtest::run(config.as_deref(), args).await,
            Command::Status(args) => status::run(config.as_deref(), args).await,
            Command::Sim(args) => sim::run(args).await,
            Command::Alerts(args) => alerts::run(config.as_deref(), args).await,
            Command::Silence(args) => silence::run(config.as_deref(), args).await,
            Command::Annotate(args) => annotate::run(config.as_deref(), args).await,
            Command::Incident(args) => incident::run(config.as_deref(), args).await,
            Command::Run(args) => run::run(config.as_deref(), args).await,
            Command::Demo(args) => demo::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Sets up `tracing` once: human output on a terminal, JSON otherwise or when asked.
pub fn init_logging(log: &crate::config::LogConfig) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("CANARYD_LOG").unwrap_or_else(|_| EnvFilter::new(&log.level));
    let json = match log.format {
        crate::config::LogFormat::Json => true,
        crate::config::LogFormat::Human => false,
        crate::config::LogFormat::Auto => {
            std::env::var_os("JOURNAL_STREAM").is_some() || !std::io::stderr().is_terminal()
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and every argument a user can type explains itself in
    /// `--help`; clap's own `--help`/`--version` are exempt.
    #[test]
    fn every_command_and_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd
                .get_about()
                .is_none_or(|a| a.to_string().trim().is_empty())
            {
                missing.push(format!("{path}: no description"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg
                    .get_help()
                    .is_none_or(|h| h.to_string().trim().is_empty())
                {
                    missing.push(format!("{path} {id}: no help"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "canaryd", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
