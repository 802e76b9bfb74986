//! How well SmolLM2-135M-Instruct, served by llama.cpp, grades groundedness
//! with the shipped `groundedness` judge: 44 labelled pairs
//! (`tests/data/grounded_pairs.jsonl`, 22 answers the context supports and
//! 22 it contradicts), each scored once through `judge::call::score` (the
//! daemon's code: structured output, lenient parse, one retry).
//!
//! A score above the scale's midpoint counts as "grounded", below as "not
//! grounded", the midpoint itself and judge errors as disagreement. Prints
//! agreement, errors, the mean score per label and the score histogram.
//!
//! `cargo bench --bench judge_agreement` (add `--profile dev` to reuse the
//! debug build). Installs the model into target/tmp/llama-venv when missing.

// The integration tests' support, for its llama.cpp server and labelled pairs.
#[path = "../tests/it/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use support::llama;

use std::collections::BTreeMap;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let py = llama::python().unwrap_or_else(|e| panic!("cannot install the model: {e}"));
    let server = llama::LlamaServer::start(&py, &[]).await;
    let (providers, judge) = llama::providers_and_judge(&server, "groundedness");
    let pairs = llama::labelled_pairs();
    let mid = (judge.scale.min + judge.scale.max) / 2.0;
    let started = Instant::now();
    let (mut agree, mut errors, mut undecided) = (0usize, 0usize, 0usize);
    let mut sums: BTreeMap<bool, (f64, usize)> = BTreeMap::new();
    let mut histogram: BTreeMap<String, usize> = BTreeMap::new();
    let (mut tp, mut fp, mut tn, mut fneg) = (0usize, 0usize, 0usize, 0usize);
    for pair in &pairs {
        match canaryd::judge::call::score(&providers, &judge, &pair.judge_input()).await {
            Ok(v) => {
                *histogram.entry(format!("{}", v.score)).or_default() += 1;
                let e = sums.entry(pair.grounded).or_default();
                e.0 += v.score;
                e.1 += 1;
                if v.score == mid {
                    undecided += 1;
                    continue;
                }
                let said = v.score > mid;
                match (said, pair.grounded) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, false) => tn += 1,
                    (false, true) => fneg += 1,
                }
                if said == pair.grounded {
                    agree += 1;
                }
            }
            Err(e) => {
                errors += 1;
                eprintln!("judge error: {e}");
            }
        }
    }
    let n = pairs.len();
    println!(
        "judge_agreement: {n} pairs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "  agreement {agree}/{n} = {:.1} % (chance 50 %); judge errors {errors}; midpoint scores {undecided}",
        100.0 * agree as f64 / n as f64
    );
    println!(
        "  said grounded: {tp} right, {fp} wrong; said not grounded: {tn} right, {fneg} wrong"
    );
    for (label, (sum, k)) in &sums {
        println!(
            "  mean score of {} answers: {:.2} over {k}",
            if *label { "grounded" } else { "ungrounded" },
            sum / *k as f64
        );
    }
    println!("  scores: {histogram:?}");
}
