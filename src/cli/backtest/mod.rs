//! `canaryd backtest`: replay recorded traffic (ingest-format JSON lines)
//! through the detectors in a scratch database and print one event per line
//! when an alert would have started or resolved — or, with `--expect FILE`,
//! score those events against the changes the file lists (detected /
//! missed / false alarms / flaps / delay per change; `score.rs`, the same
//! scorer as the scenario corpus).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

pub mod corpus;
pub mod expect;
pub mod load;
pub mod replay;
pub mod score;
pub mod varied;

use replay::Event;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON lines in the ingest record format, with `timestamp`s.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Step of simulated time between evaluations (e.g. 1h, 30m).
    #[arg(long, default_value = "1h", value_parser = parse_every)]
    pub every: i64,
    /// Score the replay against the planted changes listed in this YAML
    /// file (docs/backtest.md) and print a scorecard instead of the events;
    /// exit 1 when a change is missed or late, an alarm is false, an alert
    /// flaps or a revert does not resolve.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// Output format: one JSON object per event (default), or a line of
    /// text; with `--expect`, a table (default) or one JSON document.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Json,
    Text,
}

/// `90s`, `30m`, `1h`, `1d` → milliseconds.
pub(crate) fn parse_every(s: &str) -> Result<i64, String> {
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
    let expected = match &args.expect {
        Some(p) => {
            Some(expect::load(p).map_err(|d| anyhow::anyhow!("invalid expectations:\n{d}"))?)
        }
        None => None,
    };
    let now = crate::clock::Clock::system().now_ms();
    let mut events: Vec<Event> = Vec::new();
    let format = args.format;
    let scoring = expected.is_some();
    let summary = load::run(&args.input, &config, args.every, now, |e: &Event| {
        if scoring {
            events.push(e.clone());
            return;
        }
        match format.unwrap_or(Format::Json) {
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
        }
    })
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
    let Some(expected) = expected else {
        return Ok(ExitCode::SUCCESS);
    };
    let scores = score::score(&expected, &events);
    match format.unwrap_or(Format::Text) {
        Format::Text => print!("{}", score::render(&scores)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "changes": scores,
                "totals": score::totals(&scores),
            }))?
        ),
    }
    Ok(if scores.iter().all(score::Score::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
