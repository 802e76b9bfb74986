//! `canaryd run SUITE`: run one canary suite now, record it, print the result.
//!
//! Exit codes: 0 every case passed (provider errors are reported but are not
//! failures), 1 some case failed, 2 invalid input, a run that did not
//! complete, or no answer at all reached us from the provider.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::canary::expect::Evaluator;
use crate::canary::runner::{RunError, RunSpec, RunStatus, Runner, Started};
use crate::canary::{load, report};
use crate::provider::Providers;
use crate::store::{RunTrigger, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite name, or path to a suite file.
    pub suite: String,
    /// Run only this target (repeatable); default: every target of the suite.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

const INVALID: u8 = 2;

pub async fn run(config_flag: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let path = crate::config::resolve_path(config_flag);
    let loaded = match crate::config::load(&path) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    crate::cli::init_logging(&loaded.config.log);
    let config = loaded.config;
    let judges = crate::judge::load::load_dir(&config.judges, Some(&config.models));
    let names = judges.names();
    let ctx = load::Context {
        models: Some(&config.models),
        judges: Some(&names),
    };
    let suite = match find_suite(&config.canaries, &args.suite, &ctx) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("{msg}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    let providers = match Providers::from_config(&config.providers, &config.models) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    let store = Store::connect(&config.database).await?;
    store.migrate().await.context("applying migrations")?;
    let runner = Runner {
        store: store.clone(),
        eval: Evaluator {
            providers,
            judges: judges
                .judges
                .into_iter()
                .map(|j| (j.name.clone(), j))
                .collect(),
        },
        owner: format!("run:{}", std::process::id()).into(),
        clock: crate::clock::Clock::system(),
    };
    let cancel = CancellationToken::new();
    crate::daemon::signal_watcher(cancel.clone());
    let spec = RunSpec {
        suite: Arc::new(suite),
        only_targets: args.targets,
        trigger: RunTrigger::Manual,
        scheduled_for_ms: None,
        cancel,
    };
    let result = runner.run(&spec).await;
    store.close().await;
    let report = match result {
        Ok(Started::Ran(r)) => r,
        Ok(Started::TickTaken) => unreachable!("manual runs have no tick"),
        Err(RunError::Invalid { suite, message }) => {
            eprintln!("error: suite {suite}: {message}");
            return Ok(ExitCode::from(INVALID));
        }
        Err(e) => return Err(e.into()),
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", report::table(&report)),
    }
    let answered = report.results.iter().any(|r| r.answer.is_some());
    Ok(if report.status == RunStatus::Cancelled {
        ExitCode::from(INVALID)
    } else if report.failed > 0 {
        ExitCode::from(1)
    } else if !answered {
        eprintln!("error: no answer reached canaryd from any target");
        ExitCode::from(INVALID)
    } else {
        ExitCode::SUCCESS
    })
}

/// Finds a suite by name in the canaries directory, or loads the file at
/// `name` when it is a path. A suite that fails validation is reported.
fn find_suite(dir: &Path, name: &str, ctx: &load::Context<'_>) -> Result<load::Suite, String> {
    let as_path = PathBuf::from(name);
    if as_path
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml")
        && as_path.is_file()
    {
        return load::load_file(&as_path, ctx).map_err(|d| d.to_string());
    }
    let loaded = load::load_dir(dir, ctx);
    if let Some(s) = loaded.suites.into_iter().find(|s| s.name == name) {
        return Ok(s);
    }
    // The suite may be in a file that failed validation: show why.
    for failed in &loaded.failed {
        let stem = failed.file_stem().and_then(|s| s.to_str());
        let text = std::fs::read_to_string(failed).unwrap_or_default();
        if stem == Some(name) || text.lines().any(|l| l.trim() == format!("suite: {name}")) {
            return Err(format!(
                "suite `{name}` is invalid:\n{}",
                loaded.diagnostics
            ));
        }
    }
    Err(format!(
        "no suite named `{name}` in {}{}",
        dir.display(),
        if loaded.diagnostics.0.is_empty() {
            String::new()
        } else {
            format!("\n{}", loaded.diagnostics)
        }
    ))
}
