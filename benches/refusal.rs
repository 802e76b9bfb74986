//! Cost of the refusal classifier per record, the price every ingested
//! response pays: `cargo bench --bench refusal`.
//!
//! Times `classify` over the labelled answers in `tests/data/refusals.jsonl`
//! (short, as most refusals are), over long helpful answers (about 4 KB, of
//! which the classifier reads its bounded prefix) and over a 1 MB answer,
//! and prints nanoseconds per record. Figures go in BENCHMARKS.md.

use std::hint::black_box;
use std::time::Instant;

use canaryd::ingest::refusal::classify;

fn time(label: &str, texts: &[String], min_records: usize) {
    // Warm up (compiles the cues once).
    for t in texts {
        black_box(classify(t));
    }
    let rounds = min_records.div_ceil(texts.len()).max(1);
    let start = Instant::now();
    let mut refusals = 0usize;
    for _ in 0..rounds {
        for t in texts {
            refusals += usize::from(black_box(classify(black_box(t))).is_some());
        }
    }
    let n = rounds * texts.len();
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    let bytes = texts.iter().map(String::len).sum::<usize>() / texts.len();
    println!(
        "{label}: {n} records (mean {bytes} bytes), {:.2} µs per record, {:.0} records/s ({} refusals)",
        per / 1000.0,
        1e9 / per,
        refusals / rounds
    );
}

fn main() {
    let data = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/refusals.jsonl"
    ))
    .expect("labelled set");
    let labelled: Vec<String> = data
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("jsonl");
            v["text"].as_str().unwrap().to_string()
        })
        .collect();
    time("labelled set", &labelled, 200_000);
    let long: Vec<String> = labelled
        .iter()
        .filter(|t| t.len() > 60)
        .take(50)
        .map(|t| {
            format!(
                "{t} {}",
                "The next step is to check the settings page and save. ".repeat(70)
            )
        })
        .collect();
    time("long answers", &long, 20_000);
    let huge = vec![format!(
        "Sure. {}",
        "Here is more of the generated report text. ".repeat(24_000)
    )];
    time("1 MB answer", &huge, 200);
}
