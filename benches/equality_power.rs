//! Power and false alarms of the canary equality test (issue 17, point 6),
//! by simulation: the simulator's own answer generator (`canaryd::sim`,
//! the code `canaryd sim` answers with) produces pinned and live samples
//! for hourly runs, the production test (`equality::mmd::run_test`, 999
//! permutations, Fisher) scores each run, and the production alarm
//! (`signals::model_drift::cusum`, threshold ln(8760): one false alarm per
//! target-year of hourly runs) decides.
//!
//! `cargo bench --bench equality_power [-- TRIALS NULL_RUNS]` (defaults 30
//! and 3000). Prints, for the quiet swap (`reword` 0.1–0.3) and a grid of
//! samples per case × cases per suite, the share of trials detected within
//! 24 hourly runs and the median runs to detection; then the null: the
//! per-run p-value calibration on sim answers, false alarms over NULL_RUNS
//! hourly runs, and the alarm alone on exact uniform p-values over 1,000
//! simulated years. Figures go in BENCHMARKS.md.

use std::time::Instant;

use canaryd::equality::mmd::{self, CaseSamples, PERMUTATIONS};
use canaryd::signals::model_drift::cusum;
use canaryd::sim::behave::{self, Draws, Prompt};
use canaryd::sim::scenario::{Length, Profile};

const RUNS_PER_DAY: usize = 24;

/// Cases: alternately grounded in three context passages and free text.
fn cases(n: usize) -> Vec<Prompt> {
    let topics = [
        (
            "refund",
            "Refunds are accepted within 30 days of delivery.",
            "A refund is paid back to the original card within 5 days.",
            "Items must be unused and in the original box.",
        ),
        (
            "shipping",
            "Standard shipping takes 3 to 5 days.",
            "Express shipping arrives the next day for orders before noon.",
            "Shipping is free on orders above 50 euros.",
        ),
        (
            "warranty",
            "The warranty covers defects for 2 years.",
            "Repairs are done at the Lyon service centre.",
            "Damage by water is not covered by the warranty.",
        ),
        (
            "account",
            "Passwords must have at least 12 characters.",
            "Accounts are locked after 5 failed attempts.",
            "A locked account is unlocked by support within 1 hour.",
        ),
    ];
    let free = [
        "Explain how a cache improves performance.",
        "How should a team organise code reviews?",
        "What makes a good incident report?",
        "Describe a sensible backup strategy.",
        "How can a team reduce meeting time?",
        "What should a deployment checklist contain?",
    ];
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                let (t, a, b, c) = topics[(i / 2) % topics.len()];
                Prompt {
                    question: format!("What is the {t} policy? (variant {i})"),
                    context: vec![a.into(), b.into(), c.into()],
                }
            } else {
                Prompt {
                    question: format!("{} (variant {i})", free[(i / 2) % free.len()]),
                    context: vec![],
                }
            }
        })
        .collect()
}

fn profile() -> Profile {
    Profile {
        vary_answers: true,
        tokens: Length {
            mean: 40.0,
            sd: 15.0,
            min: 10,
            max: 120,
        },
        ..Profile::default()
    }
}

const NO_DRAW: Draws = Draws {
    refuse: 0.99,
    drop: 0.99,
    truncate: 0.99,
    cut_at: 0.5,
};

/// `k` answers of `model` to `prompt` at occurrences `occ..occ+k`.
fn answers(
    p: &Profile,
    seed: u64,
    model: &str,
    prompt: &Prompt,
    occ: u64,
    k: usize,
    reword: f64,
) -> Vec<String> {
    let content = mmd::hash_str(&format!("{model}\u{0}{}", prompt.question));
    (0..k as u64)
        .map(|j| {
            let s = behave::text_seed(seed, content, 0, Some(occ + j));
            let a = behave::answer(p, prompt, s, NO_DRAW, None);
            if reword > 0.0 {
                canaryd::sim::reword::reword(&a.text, reword, mmd::mix(s, occ + j))
            } else {
                a.text
            }
        })
        .collect()
}

/// ln e of one run's test (live vs pinned), for run `run` of trial `seed`.
fn run_log_e(
    p: &Profile,
    prompts: &[Prompt],
    k: usize,
    seed: u64,
    run: u64,
    reword: f64,
) -> (f64, f64) {
    let occ = run * k as u64;
    let data: Vec<(Vec<String>, Vec<String>)> = prompts
        .iter()
        .map(|q| {
            (
                answers(p, seed, "gpt-4o", q, occ, k, reword),
                answers(p, seed, "gpt-4o-2024-08-06", q, occ, k, 0.0),
            )
        })
        .collect();
    let ids: Vec<String> = (0..prompts.len()).map(|i| format!("case-{i}")).collect();
    let samples: Vec<CaseSamples<'_>> = data
        .iter()
        .zip(&ids)
        .map(|((l, r), id)| CaseSamples {
            case_id: id,
            live: l.iter().map(String::as_str).collect(),
            reference: r.iter().map(String::as_str).collect(),
        })
        .collect();
    let t = mmd::run_test(&samples, mmd::mix(seed, run), PERMUTATIONS).expect("tested");
    (t.p_value, t.log_e)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let trials = args.first().copied().unwrap_or(30);
    let null_runs = args.get(1).copied().unwrap_or(3000);
    let h = canaryd::equality::threshold(RUNS_PER_DAY as f64, 1);
    let p = profile();
    println!(
        "equality power: threshold h = ln(8760) = {h:.2}; {trials} trials per cell, detection within {RUNS_PER_DAY} hourly runs after the swap\n"
    );
    println!(
        "| reword | samples/case | cases | detected ≤ 24 runs | median runs to detect | calls/day (2 targets) |"
    );
    println!("|---|---|---|---|---|---|");
    let t0 = Instant::now();
    for reword in [0.1, 0.2, 0.3] {
        for (k, c) in [(5, 4), (10, 4), (5, 8), (10, 8), (20, 8), (10, 16)] {
            let prompts = cases(c);
            let mut delays = Vec::new();
            for trial in 0..trials as u64 {
                let seed = 1_000 + trial;
                let mut s = Vec::new();
                for run in 0..RUNS_PER_DAY as u64 {
                    s.push(run_log_e(&p, &prompts, k, seed, run, reword).1);
                    if cusum(&s).0 >= h {
                        delays.push(run + 1);
                        break;
                    }
                }
            }
            delays.sort_unstable();
            let median = if delays.len() * 2 > trials {
                delays[trials / 2].to_string()
            } else {
                "—".to_string()
            };
            println!(
                "| {reword} | {k} | {c} | {:.0} % ({}/{trials}) | {median} | {} |",
                100.0 * delays.len() as f64 / trials as f64,
                delays.len(),
                k * c * 2 * RUNS_PER_DAY
            );
        }
    }
    println!("\npower grid: {:.1} s\n", t0.elapsed().as_secs_f64());

    // The null: unchanged live, hourly runs.
    let t0 = Instant::now();
    {
        let (k, c) = (10, 8);
        let prompts = cases(c);
        let mut logs = Vec::new();
        let mut ps = Vec::new();
        let mut alarms = 0;
        for run in 0..null_runs as u64 {
            let (pv, le) = run_log_e(&p, &prompts, k, 77, run, 0.0);
            ps.push(pv);
            logs.push(le);
            if cusum(&logs).0 >= h {
                alarms += 1;
                logs.clear();
            }
        }
        let share = |a: f64| ps.iter().filter(|p| **p <= a).count() as f64 / ps.len() as f64;
        let mean_e = logs_mean_e(&ps);
        println!(
            "null, {k} samples × {c} cases, {null_runs} hourly runs ({:.2} years): {alarms} false alarms; P(p ≤ 0.05) = {:.3}, P(p ≤ 0.01) = {:.4}, P(p ≤ 0.001) = {:.4}, mean e-value {mean_e:.3} ({:.1} s)",
            null_runs as f64 / 8760.0,
            share(0.05),
            share(0.01),
            share(0.001),
            t0.elapsed().as_secs_f64()
        );
    }
    // The alarm alone, on exact uniform p-values: 1,000 years.
    let t0 = Instant::now();
    let years = 1_000u64;
    let mut state = 0x1234_5678_u64;
    let mut s = 0.0f64;
    let mut alarms = 0u64;
    for _ in 0..years * 8760 {
        state = mmd::mix(state, 1);
        let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        s = (s + mmd::log_e_value(u)).max(0.0);
        if s >= h {
            alarms += 1;
            s = 0.0;
        }
    }
    println!(
        "alarm on uniform p-values: {alarms} false alarms in {years} simulated years of hourly runs = {:.3} per target-year (budget 1) ({:.1} s)",
        alarms as f64 / years as f64,
        t0.elapsed().as_secs_f64()
    );
}

fn logs_mean_e(ps: &[f64]) -> f64 {
    ps.iter().map(|p| mmd::log_e_value(*p).exp()).sum::<f64>() / ps.len().max(1) as f64
}
