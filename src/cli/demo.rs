//! `canaryd demo`: the self-contained demo (see `crate::demo`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scratch directory for the config, database and captured notifications
    /// (created; must be empty) [default: a new directory under the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Address of the demo's daemon and dashboard; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Seconds of healthy live traffic before the silent model update is staged.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub update_after: u64,
    /// Seconds to wait after the update for an alert to be detected and delivered.
    #[arg(long, value_name = "SECS", default_value_t = 240)]
    pub timeout: u64,
    /// Keep running after the detection (dashboard stays up) until Ctrl-C.
    #[arg(long)]
    pub forever: bool,
    /// Live production responses sent per second.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub rate: u32,
    /// Hours of past traffic replayed as the detectors' baseline.
    #[arg(long, value_name = "H", default_value_t = 6)]
    pub history_hours: u32,
    /// Replayed responses per hour of history.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub history_per_hour: u32,
    /// Seed of the simulator and the traffic (same seed, same answers).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::cli::init_logging(&crate::config::LogConfig {
        level: "error".into(),
        ..Default::default()
    });
    let summary = crate::demo::run(crate::demo::Options {
        dir: args.dir,
        listen: args.listen,
        update_after: Duration::from_secs(args.update_after),
        timeout: Duration::from_secs(args.timeout),
        forever: args.forever,
        rate: args.rate.max(1),
        history_hours: args.history_hours.clamp(1, 20),
        history_per_hour: args.history_per_hour.max(1),
        seed: args.seed,
    })
    .await?;
    print!("\n{}", crate::demo::watch::render(&summary));
    Ok(if summary.detected {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
