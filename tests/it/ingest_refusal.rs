//! Precision and recall of the refusal classifier on the labelled set in
//! `tests/data/refusals.jsonl` (refusals in many phrasings, and hard
//! negatives: apologetic-but-helpful answers, third-party rules, "I can't
//! wait to…"). The minimums are below the measured figures so a regression
//! fails the test.

use canaryd::ingest::is_refusal;

#[test]
fn refusal_classifier_meets_precision_and_recall_on_labelled_set() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/refusals.jsonl"
    ))
    .expect("labelled set");
    let (mut tp, mut fp, mut fneg, mut tn) = (0, 0, 0, 0);
    // The "heldout" lines were written after the classifier and never tuned on.
    let mut heldout = [0usize; 4];
    let mut mistakes = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("jsonl line");
        let t = v["text"].as_str().unwrap();
        let label = v["refusal"].as_bool().unwrap();
        let got = is_refusal(t);
        if v["set"] == "heldout" {
            heldout[usize::from(label) * 2 + usize::from(got)] += 1;
        }
        match (label, got) {
            (true, true) => tp += 1,
            (false, true) => {
                fp += 1;
                mistakes.push(format!("false positive: {t}"));
            }
            (true, false) => {
                fneg += 1;
                mistakes.push(format!("missed: {t}"));
            }
            (false, false) => tn += 1,
        }
    }
    let n = tp + fp + fneg + tn;
    assert!(n >= 100, "labelled set has {n} lines");
    assert!(
        tp + fneg >= 40 && tn + fp >= 40,
        "both classes are represented"
    );
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fneg) as f64;
    eprintln!(
        "refusal classifier on {n} labelled answers: precision {precision:.3}, recall {recall:.3} (tp {tp}, fp {fp}, fn {fneg}, tn {tn})"
    );
    let [h_tn, h_fp, h_fn, h_tp] = heldout;
    eprintln!(
        "  of which held out: {} answers, precision {:.3}, recall {:.3}",
        h_tn + h_fp + h_fn + h_tp,
        h_tp as f64 / (h_tp + h_fp).max(1) as f64,
        h_tp as f64 / (h_tp + h_fn).max(1) as f64
    );
    for m in &mistakes {
        eprintln!("  {m}");
    }
    assert!(precision >= 0.95, "precision {precision:.3}");
    assert!(recall >= 0.90, "recall {recall:.3}");
}

#[test]
fn the_apologetic_refund_answer_is_not_a_refusal() {
    assert!(!is_refusal(
        "I'm so sorry to hear about the delay — I've refunded the fee"
    ));
}
