//! `canaryd backtest`: replay recorded traffic (ingest-format JSON lines)
//! through the detectors in a scratch database and print one event per line
//! when an alert would have started or resolved.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

pub mod corpus;
pub mod load;
pub mod replay;

use replay::Event;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON lines in the ingest record format, with `timestamp`s.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Step of simulated time between evaluations (e.g. 1h, 30m).
    #[arg(long, default_value = "1h", value_parser = parse_every)]
    pub every: i64,
    /// Output format: one JSON object per event, or a line of text.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Json,
    Text,
}

/// `90s`, `30m`, `1h`, `1d` → milliseconds.
fn parse_every(s: &str) -> Result<i64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: use e.g. 1h, 30m"))?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" | "" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("bad duration unit in {s:?}: use s, m, h or d")),
    };
    if n <= 0 {
        return Err("the step must be positive".into());
    }
    Ok(n * ms)
}

pub async fn run(config_flag: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    // A config is optional: without one, every detector uses its defaults.
    let path = crate::config::resolve_path(config_flag);
    let config = if config_flag.is_some() || path.exists() {
        crate::config::load(&path)
            .map_err(|d| anyhow::anyhow!("invalid config:\n{d}"))?
            .config
    } else {
        crate::config::from_str(Path::new("(defaults)"), "{}")
            .map_err(|d| anyhow::anyhow!("{d}"))?
    };
    let now = crate::clock::Clock::system().now_ms();
    let format = args.format;
    let summary = load::run(
        &args.input,
        &config,
        args.every,
        now,
        |e: &Event| match format {
            Format::Json => println!("{}", serde_json::to_string(e).unwrap_or_default()),
            Format::Text => println!(
                "{} {:<9} {:<20} {}{}  {}",
                e.at,
                e.event,
                e.rule.as_str(),
                e.stream,
                e.dimension
                    .as_deref()
                    .map(|d| format!("[{d}]"))
                    .unwrap_or_default(),
                e.summary
            ),
        },
    )
    .await
    .context("backtest failed")?;
    eprintln!(
        "backtest: {} records ({} duplicates) from {} to {}, {} evaluations; ingest {:.1} s, evaluation {:.1} s",
        summary.records,
        summary.duplicates,
        summary.from,
        summary.to,
        summary.steps,
        summary.ingest_secs,
        summary.evaluate_secs
    );
    Ok(ExitCode::SUCCESS)
}
