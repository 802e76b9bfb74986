//! `canaryd check`: validate everything a deployment reads, report every problem.

use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(config_flag: Option<&Path>, _args: Args) -> anyhow::Result<ExitCode> {
    let path = crate::config::resolve_path(config_flag);
    let now = crate::clock::Clock::system().now_ms();
    let report = crate::check::check_all(&path, now).await;
    if !report.costs.is_empty() {
        print!("{}", crate::canary::cost::render(&report.costs));
    }
    for d in &report.diagnostics.0 {
        eprintln!("{d}");
    }
    let errors = report.diagnostics.0.iter().filter(|d| d.is_error()).count();
    let warnings = report.diagnostics.0.len() - errors;
    eprintln!(
        "checked {} config, {} suites, {} judges: {errors} errors, {warnings} warnings",
        path.display(),
        report.suites,
        report.judges
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
