//! The scenario corpus and the stationary year, scored through the
//! daemon's detectors and alert lifecycle (`canaryd::cli::backtest`):
//! `cargo bench --bench corpus` (optionally `-- STREAMS DAYS` for the
//! stationary run; default 20 streams × 365 days). Figures go in
//! BENCHMARKS.md.

use std::time::Instant;

use canaryd::cli::backtest::corpus;
use canaryd::signals::DetectorConfig;

fn main() {
    let args: Vec<i64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (streams, days) = (
        args.first().copied().unwrap_or(20) as usize,
        args.get(1).copied().unwrap_or(365),
    );
    let cfg = DetectorConfig::default();
    let (cases, end) = corpus::corpus();
    let t = Instant::now();
    for seed in [1u64, 2, 3] {
        let (_, table) = corpus::run(&cases, end, seed, &cfg);
        println!(
            "corpus, seed {seed} ({} streams × 28 days, hourly):\n{table}",
            cases.len()
        );
    }
    println!(
        "corpus: {:.1} s for three seeds\n",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (alarms, per_year) = corpus::stationary(streams, days, 1_000, &cfg);
    println!(
        "stationary: {streams} streams × {days} days (20–40 records/hour; flat, diurnal, weekly), evaluated hourly: {alarms} false alarms, {per_year:.3} per stream-year (budget 1), {:.1} s",
        t.elapsed().as_secs_f64()
    );
}
