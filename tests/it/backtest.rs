//! `canaryd backtest` end to end: generated weeks of traffic for several
//! streams with known change points go through the real binary (the ingest
//! code path into a scratch database, then the daemon's detectors at every
//! simulated hour). Each change must be reported within one evaluation
//! window of its start and resolve after the revert; the stationary stream
//! and a surge of apologetic-but-helpful answers must raise nothing.

use crate::support;
use std::collections::BTreeMap;

use canaryd::signals::Rule;
use canaryd::signals::synth::{records, scenario};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// 2026-03-01T00:00:00Z
const START: i64 = 1_772_323_200_000;

fn parse_time(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .timestamp_millis()
}

#[test]
fn planted_changes_are_caught_within_a_window_and_resolve_and_nothing_else_fires() {
    let days = 15;
    let (specs, planted) = scenario(START, days, 60.0);
    assert_eq!(planted.len(), 4, "every planted change must fit the span");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("traffic.jsonl");
    let lines: Vec<String> = records(&specs, START, START + days * DAY_MS, 42)
        .iter()
        .map(Value::to_string)
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    // A config with no providers is valid for a backtest; its database must stay untouched.
    std::fs::write(
        dir.path().join("canaryd.yaml"),
        "database: sqlite://users.db\ndetectors:\n  window_hours: 24\n",
    )
    .unwrap();

    let started = std::time::Instant::now();
    let (code, stdout, stderr) = support::run_cli(
        &[
            "backtest",
            "--input",
            input.to_str().unwrap(),
            "--config",
            "canaryd.yaml",
            "--every",
            "1h",
        ],
        dir.path(),
        &[],
    );
    let elapsed = started.elapsed();
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(
        !dir.path().join("users.db").exists(),
        "the backtest touched the configured database"
    );
    eprintln!(
        "{} records in {elapsed:.1?}: {}",
        lines.len(),
        stderr.trim()
    );

    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    for e in &events {
        for field in [
            "event",
            "rule",
            "stream",
            "at",
            "value",
            "baseline",
            "threshold",
            "samples",
        ] {
            assert!(e.get(field).is_some(), "{field} missing in {e}");
        }
    }
    // Group by (rule, stream, dimension): alternating firing/resolved times.
    let mut timeline: BTreeMap<(String, String, String), Vec<(String, i64)>> = BTreeMap::new();
    for e in &events {
        let key = (
            e["rule"].as_str().unwrap().to_string(),
            e["stream"].as_str().unwrap().to_string(),
            e["dimension"].as_str().unwrap_or("").to_string(),
        );
        timeline.entry(key).or_default().push((
            e["event"].as_str().unwrap().to_string(),
            parse_time(e["at"].as_str().unwrap()),
        ));
    }

    let mut delays = Vec::new();
    let mut problems = Vec::new();
    for p in &planted {
        let key = timeline
            .keys()
            .find(|(r, s, _)| *r == p.rule.as_str() && *s == p.stream)
            .cloned();
        let Some(key) = key else {
            problems.push(format!(
                "{} on {} was never reported",
                p.rule.as_str(),
                p.stream
            ));
            continue;
        };
        let t = &timeline[&key];
        let first = t
            .iter()
            .find(|(kind, at)| kind == "firing" && *at >= p.from_ms);
        match first {
            Some((_, at)) if *at <= p.from_ms + 24 * HOUR_MS => delays.push((
                p.stream.clone(),
                p.rule,
                (*at - p.from_ms) as f64 / HOUR_MS as f64,
            )),
            other => problems.push(format!(
                "{} on {}: first firing {other:?}, change at {}",
                p.rule.as_str(),
                p.stream,
                p.from_ms
            )),
        }
        if t.iter()
            .any(|(kind, at)| kind == "firing" && *at < p.from_ms)
        {
            problems.push(format!(
                "{} on {} fired before its change: {t:?}",
                p.rule.as_str(),
                p.stream
            ));
        }
        match t.last() {
            Some((kind, at)) if kind == "resolved" && *at > p.to_ms => {}
            other => problems.push(format!(
                "{} on {} did not resolve after the revert at {}: last {other:?}",
                p.rule.as_str(),
                p.stream,
                p.to_ms
            )),
        }
    }
    // Anything else that fired is a false alarm — except another symptom of
    // a planted change on the same stream while its data is in the window
    // (a refusal spike also shortens answers: refusals are short).
    let explained = |r: &str, s: &str, at: i64| {
        planted.iter().any(|p| {
            p.stream == s
                && (p.rule.as_str() == r || (at >= p.from_ms && at <= p.to_ms + 24 * HOUR_MS))
        })
    };
    let mut co_symptoms = Vec::new();
    let false_alarms: Vec<_> = timeline
        .iter()
        .filter(|((r, s, _), t)| {
            let starts: Vec<i64> = t
                .iter()
                .filter(|(k, _)| k == "firing")
                .map(|(_, at)| *at)
                .collect();
            if starts.iter().all(|&at| explained(r, s, at)) {
                if !planted
                    .iter()
                    .any(|p| p.stream == *s && p.rule.as_str() == *r)
                {
                    co_symptoms.push(format!("{r} on {s}"));
                }
                false
            } else {
                true
            }
        })
        .collect();
    eprintln!("co-symptoms of planted changes: {co_symptoms:?}");
    for d in &delays {
        eprintln!(
            "detection delay {:>5.1} h  {} on {}",
            d.2,
            d.1.as_str(),
            d.0
        );
    }
    eprintln!("false alarms: {}", false_alarms.len());
    for (k, t) in &false_alarms {
        problems.push(format!("false alarm {k:?}: {t:?}"));
    }
    assert!(problems.is_empty(), "{problems:#?}\nall events:\n{stdout}");
    let mut hours: Vec<f64> = delays.iter().map(|d| d.2).collect();
    hours.sort_by(f64::total_cmp);
    let median = (hours[1] + hours[2]) / 2.0;
    assert!(
        median <= 3.0,
        "median detection delay {median} h over 3 h: {delays:?}"
    );
    // Within the window (the module doc's promise). A near-threshold change
    // (support-bot's −0.4 latent shift is about −0.35 on the clamped 1–5
    // scale) fires only once its estimated effect clears the 0.3 threshold
    // with a margin (issue 13, point 1), which takes longer than 12 h.
    assert!(
        hours[3] <= 24.0,
        "a detection took {} h: {delays:?}",
        hours[3]
    );
    let _ = Rule::ALL;
}

/// Issue 13's repro: one stream, 10 days, 20 records an hour, the model
/// switching on day 8 — and a second stream whose `system_fingerprint`
/// alone changes. Both are model changes the backtest must report, at the
/// first evaluation after them.
#[test]
fn model_and_fingerprint_changes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("models.jsonl");
    let switch = START + 8 * DAY_MS + 30 * 60_000;
    let mut lines = Vec::new();
    for i in 0..10 * 24 * 20 {
        let ts = START + i * 180_000;
        let after = ts >= switch;
        for (stream, model, fp) in [
            (
                "models",
                if after {
                    "gpt-4o-2024-11-20"
                } else {
                    "gpt-4o-2024-08-06"
                },
                "fp_a",
            ),
            (
                "fingerprints",
                "gpt-4o-2024-08-06",
                if after { "fp_b" } else { "fp_a" },
            ),
        ] {
            lines.push(
                serde_json::json!({
                    "id": format!("{stream}-{i}"),
                    "stream": stream,
                    "timestamp": chrono::DateTime::from_timestamp_millis(ts).unwrap().to_rfc3339(),
                    "request_model": "gpt-4o",
                    "response_model": model,
                    "system_fingerprint": fp,
                    "output": "Your refund was issued to the original card.",
                })
                .to_string(),
            );
        }
    }
    std::fs::write(&input, lines.join("\n")).unwrap();
    let (code, stdout, stderr) = support::run_cli(
        &[
            "backtest",
            "--input",
            input.to_str().unwrap(),
            "--every",
            "1h",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(code, 0, "stderr: {stderr}");
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for stream in ["models", "fingerprints"] {
        let fired: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["rule"] == "model_change" && e["stream"] == stream && e["event"] == "firing"
            })
            .collect();
        assert_eq!(fired.len(), 1, "{stream}: {stdout}");
        let at = parse_time(fired[0]["at"].as_str().unwrap());
        assert!(
            at > switch && at <= switch + HOUR_MS,
            "{stream}: reported at {at}, change at {switch}"
        );
    }
}

#[test]
fn a_bad_record_names_its_line_and_a_missing_file_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.jsonl");
    std::fs::write(&input, "{\"stream\":\"a\",\"output\":\"x\",\"timestamp\":\"2026-03-01T00:00:00Z\"}\n{\"output\":\"no stream\"}\n").unwrap();
    let (code, _, stderr) = support::run_cli(
        &["backtest", "--input", input.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("bad.jsonl:2"), "{stderr}");
    let (code, _, stderr) =
        support::run_cli(&["backtest", "--input", "nope.jsonl"], dir.path(), &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("nope.jsonl"), "{stderr}");
}

/// Writes the standard scenario (21 days, about 150,000 records) to
/// `$CANARYD_SCENARIO_OUT`, for timing a release build by hand:
/// `CANARYD_SCENARIO_OUT=/tmp/s.jsonl cargo test --test it backtest::write_scenario -- --ignored`
/// then `time target/release/canaryd backtest --input /tmp/s.jsonl`.
#[test]
#[ignore]
fn write_scenario() {
    let out = std::env::var("CANARYD_SCENARIO_OUT").expect("set CANARYD_SCENARIO_OUT");
    let (specs, _) = scenario(START, 21, 50.0);
    let lines: Vec<String> = records(&specs, START, START + 21 * DAY_MS, 7)
        .iter()
        .map(Value::to_string)
        .collect();
    std::fs::write(&out, lines.join("\n")).unwrap();
    eprintln!("{} records written to {out}", lines.len());
}

/// Ten days of three streams at 20 records an hour: a model switch on day 8
/// (`models`), a refusal jump 1 % → 33 % on day 8 (`refusals`, the
/// refusals short and in plain words, so the classifier counts them) and a
/// fingerprint change on day 8 (`fingerprints`).
fn expect_history(dir: &std::path::Path) -> (std::path::PathBuf, i64) {
    let input = dir.join("history.jsonl");
    let switch = START + 8 * DAY_MS + 30 * 60_000;
    let mut lines = Vec::new();
    for i in 0..10 * 24 * 20 {
        let ts = START + i * 180_000;
        let after = ts >= switch;
        let refused = if after { i % 3 == 0 } else { i % 100 == 0 };
        for (stream, model, fp, output) in [
            (
                "models",
                if after {
                    "gpt-4o-2024-11-20"
                } else {
                    "gpt-4o-2024-08-06"
                },
                "fp_a",
                "Your refund was issued to the original card.",
            ),
            (
                "fingerprints",
                "gpt-4o-2024-08-06",
                if after { "fp_b" } else { "fp_a" },
                "Your refund was issued to the original card.",
            ),
            (
                "refusals",
                "gpt-4o-2024-08-06",
                "fp_a",
                if refused {
                    "I can't help with that request."
                } else {
                    "Your refund was issued to the original card."
                },
            ),
        ] {
            lines.push(
                serde_json::json!({
                    "id": format!("{stream}-{i}"),
                    "stream": stream,
                    "timestamp": chrono::DateTime::from_timestamp_millis(ts).unwrap().to_rfc3339(),
                    "request_model": "gpt-4o",
                    "response_model": model,
                    "system_fingerprint": fp,
                    "output": output,
                })
                .to_string(),
            );
        }
    }
    std::fs::write(&input, lines.join("\n")).unwrap();
    (input, switch)
}

/// `canaryd backtest --expect FILE` scores the replay against the listed
/// changes with the corpus's scorer: detected with its delay, a co-symptom
/// not counted, a quiet stream that fires is a false alarm, a change nothing
/// reported is missed, and the exit status says whether all of it held.
#[test]
fn expect_scores_planted_changes_and_fails_on_misses_and_false_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let (input, switch) = expect_history(dir.path());
    let at = canaryd::signals::fmt_time(switch);
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        format!(
            "changes:\n  - stream: models\n    rule: model_change\n    at: {at}\n    within: 1h\n  - stream: fingerprints\n    rule: model_change\n    at: {at}\n    within: 1h\n  - stream: refusals\n    rule: refusal_rate_shift\n    at: {at}\n    within: 6h\n"
        ),
    )
    .unwrap();
    let input = input.to_str().unwrap();
    let (code, stdout, stderr) = support::run_cli(
        &["backtest", "--input", input, "--expect", "good.yaml"],
        dir.path(),
        &[],
    );
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr: {stderr}");
    for stream in ["models", "fingerprints", "refusals"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(stream))
            .unwrap_or_else(|| panic!("no row for {stream}:\n{stdout}"));
        assert!(row.contains("detected"), "{row}\n{stdout}");
    }
    assert!(
        stdout.contains("detected in time 3/3, late 0, missed 0, false alarms 0, flaps 0"),
        "{stdout}"
    );

    // The fingerprint change left out (its stream listed as quiet) and a
    // change that never happened: a false alarm and a miss, exit 1.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "changes:\n  - stream: models\n    rule: model_change\n    at: {at}\n    within: 1h\n  - stream: refusals\n    rule: truncation_rate\n    at: {at}\n    within: 2h\nquiet: [fingerprints]\n"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = support::run_cli(
        &[
            "backtest", "--input", input, "--expect", "bad.yaml", "--format", "json",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr: {stderr}");
    let card: Value = serde_json::from_str(&stdout).expect("one JSON document");
    let rows = card["changes"].as_array().unwrap();
    let row = |stream: &str| {
        rows.iter()
            .find(|r| r["stream"] == stream)
            .unwrap_or_else(|| panic!("no row for {stream}: {card:#}"))
    };
    assert_eq!(row("models")["result"], "detected", "{card:#}");
    assert_eq!(row("models")["delay_hours"].as_f64(), Some(0.5), "{card:#}");
    assert_eq!(row("refusals")["result"], "missed", "{card:#}");
    // The refusal spike is a co-symptom of the change listed on its stream,
    // not a false alarm.
    assert_eq!(
        row("refusals")["false_alarms"],
        serde_json::json!([]),
        "{card:#}"
    );
    let fp = row("fingerprints")["false_alarms"].as_array().unwrap();
    assert_eq!(fp.len(), 1, "{card:#}");
    assert!(
        fp[0].as_str().unwrap().starts_with("model_change"),
        "{card:#}"
    );
    assert_eq!(card["totals"]["missed"], 1, "{card:#}");

    // A broken expectations file names its line before anything is replayed.
    std::fs::write(
        dir.path().join("broken.yaml"),
        "changes:\n  - stream: models\n    rule: model_changed\n    at: 2026-03-09T00:30:00Z\n    within: 1h\n",
    )
    .unwrap();
    let (code, _, stderr) = support::run_cli(
        &["backtest", "--input", input, "--expect", "broken.yaml"],
        dir.path(),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("broken.yaml:3") && stderr.contains("model_change"),
        "{stderr}"
    );
}
