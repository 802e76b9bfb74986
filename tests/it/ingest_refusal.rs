//! Precision and recall of the refusal classifier on the labelled set in
//! `tests/data/refusals.jsonl`: refusals in many styles (first person,
//! impersonal, policy, scope, safety, terse, soft preference, redirect,
//! content-filter notices, other languages) and hard negatives
//! (apologetic-but-helpful answers, "can't"/"won't"/"refuse" used while
//! helping, answers about third parties' rules, quoted refusals, code,
//! partial compliance, helpful answers that start with "No").
//!
//! Each line carries `set`: `tune` or `heldout`, assigned by a hash of the
//! text when the lines were written, before the classifier was changed. Only
//! the tuning split's mistakes are printed, so the held-out split stays
//! unseen while tuning; its floors are the figures measured once at the end
//! minus a small margin, so a regression fails.

use canaryd::ingest::refusal::classify;

#[derive(Default)]
struct Counts {
    tp: usize,
    fp: usize,
    fneg: usize,
    tn: usize,
}

impl Counts {
    fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fneg).max(1) as f64
    }
    fn n(&self) -> usize {
        self.tp + self.fp + self.fneg + self.tn
    }
}

fn measure(split: &str) -> (Counts, Vec<String>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/refusals.jsonl"
    ))
    .expect("labelled set");
    let mut c = Counts::default();
    let mut mistakes = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line).expect("jsonl line");
        let set = v["set"].as_str().expect("every line has a set");
        assert!(
            set == "tune" || set == "heldout",
            "line {}: set {set}",
            i + 1
        );
        if set != split {
            continue;
        }
        let t = v["text"].as_str().unwrap();
        let label = v["refusal"].as_bool().unwrap();
        let got = classify(t);
        match (label, &got) {
            (true, Some(_)) => c.tp += 1,
            (false, Some(r)) => {
                c.fp += 1;
                mistakes.push(format!("false positive ({r}): {t}"));
            }
            (true, None) => {
                c.fneg += 1;
                mistakes.push(format!("missed: {t}"));
            }
            (false, None) => c.tn += 1,
        }
    }
    (c, mistakes)
}

fn report(split: &str, c: &Counts) {
    eprintln!(
        "refusal classifier, {split} split: {} answers, precision {:.3}, recall {:.3} (tp {}, fp {}, fn {}, tn {})",
        c.n(),
        c.precision(),
        c.recall(),
        c.tp,
        c.fp,
        c.fneg,
        c.tn
    );
}

#[test]
fn tuning_split_meets_precision_and_recall_floors() {
    let (c, mistakes) = measure("tune");
    report("tune", &c);
    for m in &mistakes {
        eprintln!("  {m}");
    }
    assert!(
        c.tp + c.fneg >= 120 && c.tn + c.fp >= 120,
        "both classes represented"
    );
    assert!(c.precision() >= 0.98, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.97, "recall {:.3}", c.recall());
}

#[test]
fn held_out_split_meets_the_floors_measured_once() {
    let (c, _mistakes_stay_unseen) = measure("heldout");
    report("heldout", &c);
    assert!(
        c.tp + c.fneg >= 70 && c.tn + c.fp >= 70,
        "both classes represented"
    );
    assert!(
        c.precision() >= HELDOUT_PRECISION,
        "precision {:.3}",
        c.precision()
    );
    assert!(c.recall() >= HELDOUT_RECALL, "recall {:.3}", c.recall());
}

/// Measured once on the held-out split at the end of tuning (precision
/// 0.990, 95 of 96; recall 0.969, 95 of 98; see ARCHITECTURE.md), minus a
/// margin of about two answers.
const HELDOUT_PRECISION: f64 = 0.965;
const HELDOUT_RECALL: f64 = 0.945;

#[test]
fn the_labelled_set_is_large_and_split() {
    let (tune, _) = measure("tune");
    let (held, _) = measure("heldout");
    assert!(tune.n() + held.n() >= 400, "{} lines", tune.n() + held.n());
    assert!(held.n() >= 150, "held-out split has {} lines", held.n());
}

#[test]
fn the_apologetic_refund_answer_is_not_a_refusal() {
    assert!(classify("I'm so sorry to hear about the delay — I've refunded the fee").is_none());
}
