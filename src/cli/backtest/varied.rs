//! Held-out-style histories: the shapes issue 13 describes for the
//! histories the detectors are judged on without ever seeing them — 21
//! days, 11 streams at 20–40 records an hour (one diurnal, one at 0.4 an
//! hour), six planted changes of the sizes, two of them reverted
//! after four days — with everything the standard corpus holds fixed drawn
//! from the seed instead: the day and hour of the change (weekends and the
//! diurnal trough included), each stream's traffic, rhythm and levels. The
//! standard corpus is what the detectors were developed against; these are
//! the check that they were not fitted to its Monday-05:00 changes and its
//! constants.

use super::corpus::{Base, Rhythm, Shift, StreamCase};
use crate::signals::Rule;
use crate::signals::synth::Gen;
use crate::signals::window::HOUR_MS;

const DAY_MS: i64 = 24 * HOUR_MS;
const DAYS: i64 = 21;

/// The change kinds of the issue with the rule that must fire and the
/// target delay (hours).
fn kinds() -> [(&'static str, Shift, Rule, f64); 7] {
    [
        ("judge-drop", Shift::Score(-0.5), Rule::JudgeScoreDrop, 3.0),
        ("length-halved", Shift::Length(0.5), Rule::LengthDrift, 2.0),
        (
            "truncation",
            Shift::Truncation(0.10),
            Rule::TruncationRate,
            2.0,
        ),
        ("embedding", Shift::Topic, Rule::EmbeddingDrift, 3.0),
        (
            "refusal-1-to-6",
            Shift::Refusal(0.06),
            Rule::RefusalRateShift,
            6.0,
        ),
        (
            "model-change",
            Shift::Model {
                fingerprint_only: false,
            },
            Rule::ModelChange,
            1.0,
        ),
        (
            "fingerprint-change",
            Shift::Model {
                fingerprint_only: true,
            },
            Rule::ModelChange,
            1.0,
        ),
    ]
}

/// Levels a stream might have: judge means where a 0.5 drop stays on the
/// scale, answers from terse to long, refusal and truncation rates around
/// the issue's. The streams whose change is a refusal or truncation rate
/// keep the starting rate (1 %, 0.4 %), which its target assumes.
fn base(g: &mut Gen, shift: Option<&Shift>) -> Base {
    let between = |g: &mut Gen, a: f64, b: f64| a + (b - a) * g.uniform();
    Base {
        refusal: match shift {
            Some(Shift::Refusal(_)) => 0.01,
            _ => between(g, 0.005, 0.02),
        },
        truncation: match shift {
            Some(Shift::Truncation(_)) => 0.004,
            _ => between(g, 0.002, 0.01),
        },
        score: between(g, 3.4, 4.2),
        length: between(g, 80.0, 400.0),
        judges: 1,
    }
}

/// A stream's traffic and rhythm: 20–40 records an hour, a diurnal swing
/// or a weekly rhythm a third of the time each.
fn traffic(g: &mut Gen, case: StreamCase) -> StreamCase {
    let per_hour = 20.0 + 20.0 * g.uniform();
    let diurnal = if g.chance(1.0 / 3.0) { 0.4 } else { 0.0 };
    let weekly = g.chance(1.0 / 3.0);
    StreamCase {
        per_hour,
        diurnal,
        weekly,
        ..case
    }
}

/// One held-out-style history: its streams and its end.
pub fn varied(start_ms: i64, seed: u64) -> (Vec<StreamCase>, i64) {
    let mut g = Gen::new(seed ^ 0x005e_ed0f_ba5e);
    let mut cases = Vec::new();
    // Five quiet streams: flat, diurnal, weekly, very low, and one drawn.
    for (name, diurnal, weekly, per_hour) in [
        ("quiet-flat", 0.0, false, 30.0),
        ("quiet-diurnal", 0.6, false, 30.0),
        ("quiet-weekly", 0.0, true, 30.0),
        ("quiet-very-low", 0.0, false, 0.4),
    ] {
        let base = base(&mut g, None);
        cases.push(StreamCase {
            diurnal,
            weekly,
            base,
            ..StreamCase::stationary(name, per_hour)
        });
    }
    let base_drawn = base(&mut g, None);
    cases.push(traffic(
        &mut g,
        StreamCase {
            base: base_drawn,
            ..StreamCase::stationary("quiet-drawn", 30.0)
        },
    ));
    // Six of the seven change kinds, two of them reverted after four days.
    let mut kinds: Vec<_> = kinds().into_iter().collect();
    let skip = (g.uniform() * kinds.len() as f64) as usize % kinds.len();
    kinds.remove(skip);
    // Which two: any of the kinds a revert means something for (a model
    // change is an event), drawn from a source of their own so that the
    // rest of a seed's history stays what it was when first measured.
    let mut pick = Gen::new(seed ^ 0x7e7e_7e7e);
    let revertible: Vec<usize> = (0..kinds.len())
        .filter(|&i| !matches!(kinds[i].1, Shift::Model { .. }))
        .collect();
    let first = revertible[(pick.uniform() * revertible.len() as f64) as usize % revertible.len()];
    let rest: Vec<usize> = revertible.into_iter().filter(|&i| i != first).collect();
    let second = rest[(pick.uniform() * rest.len() as f64) as usize % rest.len()];
    for (i, (name, shift, rule, target)) in kinds.into_iter().enumerate() {
        let day = 8 + (g.uniform() * 7.0) as i64;
        let hour = (g.uniform() * 24.0) as i64;
        let at = start_ms + day * DAY_MS + hour * HOUR_MS;
        let reverted = i == first || i == second;
        let base = base(&mut g, Some(&shift));
        let case = traffic(
            &mut g,
            StreamCase {
                base,
                ..StreamCase::stationary(name, 30.0)
            },
        );
        cases.push(
            case.with(shift, at, reverted.then_some(at + 4 * DAY_MS))
                .expect(rule, target),
        );
    }
    (cases, start_ms + DAYS * DAY_MS)
}

/// The second held-out shape of issue 13: 28 days of the harder cases —
/// a shift carried by one prompt version with a third of the traffic, a
/// stream at 2 records an hour whose refusals go from 1 % to 30 %, a
/// gradual judge ramp, a refusal spike whose refusals are short and score
/// low, a system fingerprint changing alone, a young baseline, an
/// apologetic surge, and sub-threshold shifts of a size drawn between 30
/// and 60 % of each threshold that must never fire.
pub fn varied_hard(start_ms: i64, seed: u64) -> (Vec<StreamCase>, i64) {
    const DAYS_HARD: i64 = 28;
    let mut g = Gen::new(seed ^ 0x0bad_5eed);
    let between = |g: &mut Gen, a: f64, b: f64| a + (b - a) * g.uniform();
    let at = |g: &mut Gen| {
        let day = 9 + (g.uniform() * 10.0) as i64;
        start_ms + day * DAY_MS + (g.uniform() * 24.0) as i64 * HOUR_MS
    };
    let mut cases = Vec::new();
    let drawn = |g: &mut Gen, name: &str, shift: Option<&Shift>| {
        let base = base(g, shift);
        traffic(
            g,
            StreamCase {
                base,
                ..StreamCase::stationary(name, 30.0)
            },
        )
    };
    let t = at(&mut g);
    let mut version = drawn(&mut g, "prompt-version-third", None)
        .with(Shift::Score(-1.5), t, Some(t + 4 * DAY_MS))
        .expect(Rule::JudgeScoreDrop, 6.0);
    version.changes[0].share = 1.0 / 3.0;
    cases.push(version);
    let t = at(&mut g);
    let low = Shift::Refusal(0.30);
    let base_low = base(&mut g, Some(&low));
    cases.push(
        StreamCase {
            base: base_low,
            ..StreamCase::stationary("refusal-low-traffic", 2.0)
        }
        .with(low, t, None)
        .expect(Rule::RefusalRateShift, 24.0),
    );
    let t = at(&mut g);
    let mut ramp = drawn(&mut g, "judge-ramp", None)
        .with(Shift::Score(-0.8), t, None)
        .expect(Rule::JudgeScoreDrop, 24.0);
    ramp.changes[0].ramp_hours = 24;
    cases.push(ramp);
    let t = at(&mut g);
    let spike = Shift::Refusal(0.15);
    let mut co = drawn(&mut g, "refusal-spike-co-symptoms", Some(&spike))
        .with(spike, t, Some(t + 4 * DAY_MS))
        .expect(Rule::RefusalRateShift, 3.0);
    co.co_symptoms = true;
    cases.push(co);
    let t = at(&mut g);
    cases.push(
        drawn(&mut g, "fingerprint-change", None)
            .with(
                Shift::Model {
                    fingerprint_only: true,
                },
                t,
                None,
            )
            .expect(Rule::ModelChange, 1.0),
    );
    let young_from = 20 + (g.uniform() * 6.0) as i64;
    let young = drawn(&mut g, "young-baseline", None);
    cases.push(StreamCase {
        starts_day: young_from,
        ..young
    });
    let t = at(&mut g);
    cases.push(drawn(&mut g, "apologetic-surge", None).with(
        Shift::Length(1.10),
        t,
        Some(t + 4 * DAY_MS),
    ));
    // Sub-threshold: judge drop (threshold 0.3), refusal and truncation
    // (2 points), length (×1.05 is about a third of the KL threshold).
    let frac = between(&mut g, 0.3, 0.6);
    let t = at(&mut g);
    cases.push(drawn(&mut g, "sub-threshold-score", None).with(Shift::Score(-0.3 * frac), t, None));
    let frac = between(&mut g, 0.3, 0.6);
    let t = at(&mut g);
    let sub = Shift::Refusal(0.01 + 0.02 * frac);
    cases.push(drawn(&mut g, "sub-threshold-refusal", Some(&sub)).with(sub, t, None));
    let frac = between(&mut g, 0.3, 0.6);
    let t = at(&mut g);
    let sub = Shift::Truncation(0.004 + 0.02 * frac);
    cases.push(drawn(&mut g, "sub-threshold-truncation", Some(&sub)).with(sub, t, None));
    let t = at(&mut g);
    let f = between(&mut g, 1.02, 1.05);
    cases.push(drawn(&mut g, "sub-threshold-length", None).with(Shift::Length(f), t, None));
    (cases, start_ms + DAYS_HARD * DAY_MS)
}

/// Streams where nothing changes but what a monitor must live with: a
/// launch tripling the traffic for two days, a day at a fifth of it, a
/// 12-hour outage, and signals with a daily rhythm (answers 10 % longer, a
/// refusal rate half again as high, or judge scores 0.15 lower at night —
/// each below its threshold — alone and together with quiet weekends).
/// 21 days; nothing may fire.
pub fn varied_rhythm(start_ms: i64, seed: u64) -> (Vec<StreamCase>, i64) {
    let mut g = Gen::new(seed ^ 0x0d1a_5eed);
    let day = |g: &mut Gen| start_ms + (8 + (g.uniform() * 10.0) as i64) * DAY_MS;
    let mut cases = Vec::new();
    let mut quiet = |g: &mut Gen, name: &str, rhythm: Rhythm| {
        let base = base(g, None);
        let case = traffic(
            g,
            StreamCase {
                base,
                rhythm,
                ..StreamCase::stationary(name, 30.0)
            },
        );
        cases.push(case);
    };
    for (name, factor, hours) in [
        ("launch-surge", 3.0, 48),
        ("quiet-day", 0.2, 24),
        ("outage", 0.0, 12),
    ] {
        let from = day(&mut g) + (g.uniform() * 24.0) as i64 * HOUR_MS;
        let rhythm = Rhythm {
            volume: vec![(from, from + hours * HOUR_MS, factor)],
            ..Rhythm::default()
        };
        quiet(&mut g, name, rhythm);
    }
    let one = |length, refusal, score| Rhythm {
        length,
        refusal,
        score,
        volume: Vec::new(),
    };
    quiet(&mut g, "nightly-length", one(0.10, 0.0, 0.0));
    quiet(&mut g, "nightly-refusal", one(0.0, 0.5, 0.0));
    quiet(&mut g, "nightly-score", one(0.0, 0.0, 0.15));
    quiet(&mut g, "nightly-all", one(0.10, 0.5, 0.15));
    let mut weekly = one(0.10, 0.5, 0.15);
    weekly.volume.clear();
    quiet(&mut g, "nightly-all-weekly", weekly);
    if let Some(last) = cases.last_mut() {
        last.weekly = true;
        last.diurnal = 0.5;
    }
    (cases, start_ms + DAYS * DAY_MS)
}

/// [`varied`] with three judges scoring every record (groundedness,
/// completion, consistency; a score shift moves groundedness alone): more
/// charts share each stream's false-alarm budget, and two of them watch
/// dimensions that never change.
pub fn varied_judges(start_ms: i64, seed: u64) -> (Vec<StreamCase>, i64) {
    let (mut cases, end) = varied(start_ms, seed);
    for c in &mut cases {
        c.base.judges = 3;
    }
    (cases, end)
}

/// The generator seed of stream `stream` of history `history`: one formula
/// for the tallies and the regression tests, which replay single streams of
/// the histories the tallies measured.
#[cfg(test)]
fn stream_seed(history: u64, stream: usize) -> u64 {
    77_000 + history * 131 + stream as u64
}

#[cfg(test)]
mod tests {
    use super::super::corpus::{START, env_u64, score};
    use super::*;
    use crate::signals::DetectorConfig;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Tally {
        runs: usize,
        in_time: usize,
        missed: usize,
        delays: Vec<f64>,
        false_alarms: usize,
        flaps: usize,
        reverts: usize,
        unresolved: usize,
    }

    /// Scores `CANARYD_SEEDS` (default 10) held-out-style histories of each
    /// family and prints, per change kind and for the quiet streams, what
    /// the scorer found: `cargo test --lib varied -- --ignored --nocapture`
    /// (`CANARYD_VERBOSE=1` prints each stream).
    #[test]
    #[ignore]
    fn held_out_style_histories() {
        tally("varied", varied);
    }

    #[test]
    #[ignore]
    fn held_out_style_hard_histories() {
        tally("varied_hard", varied_hard);
    }

    #[test]
    #[ignore]
    fn held_out_style_three_judge_histories() {
        tally("varied_judges", varied_judges);
    }

    #[test]
    #[ignore]
    fn held_out_style_rhythm_histories() {
        tally("varied_rhythm", varied_rhythm);
    }

    fn tally(family: &str, generate: fn(i64, u64) -> (Vec<StreamCase>, i64)) {
        let (seeds, first) = (
            env_u64("CANARYD_SEEDS", 10),
            env_u64("CANARYD_SEED_FROM", 0),
        );
        let cfg = DetectorConfig::default();
        let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
        for seed in first..first + seeds {
            let (cases, end) = generate(START, seed);
            for (i, case) in cases.iter().enumerate() {
                let x = score(case, end, stream_seed(seed, i), &cfg);
                if std::env::var("CANARYD_VERBOSE").is_ok() {
                    let c = case.changes.first();
                    eprintln!(
                        "  seed {seed} {} ({:.0}/h, diurnal {}, weekly {}, change {:?}): delay {:?}, false alarms {:?}, flaps {}, revert resolved {:?}",
                        case.name,
                        case.per_hour,
                        case.diurnal,
                        case.weekly,
                        c.map(|c| crate::signals::fmt_time(c.from_ms)),
                        x.delay_hours,
                        x.false_alarms,
                        x.flaps,
                        x.revert_resolved
                    );
                }
                let key = if case.expect.is_none() && case.name.starts_with("quiet") {
                    "quiet".to_string()
                } else {
                    case.name.clone()
                };
                let t = tally.entry(key).or_default();
                t.runs += 1;
                t.in_time += usize::from(x.detected());
                t.missed += usize::from(case.expect.is_some() && x.delay_hours.is_none());
                t.delays.extend(x.delay_hours);
                t.false_alarms += x.false_alarms.len();
                t.flaps += x.flaps;
                t.reverts += usize::from(x.revert_resolved.is_some());
                t.unresolved += usize::from(x.revert_resolved == Some(false));
            }
        }
        for (name, t) in &mut tally {
            t.delays.sort_by(f64::total_cmp);
            let q = |p: f64| {
                t.delays
                    .get(((t.delays.len() as f64 - 1.0) * p).round() as usize)
                    .map_or("-".to_string(), |d| format!("{d:.0}"))
            };
            eprintln!(
                "{family} {name:<26} runs {:>3}: in time {:>3}, missed {}, delay median {} p90 {} max {}; false alarms {}, flaps {}, reverts {} unresolved in 24 h {}",
                t.runs,
                t.in_time,
                t.missed,
                q(0.5),
                q(0.9),
                q(1.0),
                t.false_alarms,
                t.flaps,
                t.reverts,
                t.unresolved
            );
        }
    }
}

#[cfg(test)]
mod regressions {
    use super::super::corpus::{START, score};
    use super::*;
    use crate::signals::DetectorConfig;

    /// Held-out-style seed 8: refusals 1 % → 6 % at 20 records an hour with
    /// quiet weekends, never reverted. The alarm came 34 hours after the
    /// change; the hours before it entered the baseline and the recovery
    /// test asked for nothing below a day's ln(1/α), so the persisting
    /// change resolved and fired again three times.
    #[test]
    fn a_persisting_low_traffic_refusal_rise_is_one_incident() {
        let (cases, end) = varied(START, 8);
        let (i, case) = cases
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == "refusal-1-to-6")
            .expect("seed 8 plants a refusal rise");
        // As first measured: kept (which changes revert is drawn apart since).
        let mut case = case.clone();
        case.changes[0].to_ms = None;
        let x = score(&case, end, stream_seed(8, i), &DetectorConfig::default());
        assert!(x.delay_hours.is_some(), "{x:?}");
        assert_eq!(x.flaps, 0, "{x:?}");
        assert!(x.false_alarms.is_empty(), "{x:?}");
    }

    /// Hard held-out-style seed 6: answers 10 % longer (an apologetic
    /// surge, true KL ≈ 0.06 against a threshold of 0.15) on a diurnal
    /// stream of ~280-token answers; the segment since the change point
    /// read KL 0.205 on 147 records and fired.
    #[test]
    fn an_apologetic_surge_on_long_answers_does_not_fire() {
        let (cases, end) = varied_hard(START, 6);
        let (i, case) = cases
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == "apologetic-surge")
            .expect("every hard history has one");
        let x = score(case, end, stream_seed(6, i), &DetectorConfig::default());
        assert!(x.false_alarms.is_empty(), "{x:?}");
    }

    /// One history of each held-out-style family, with the suite: no false
    /// alarm, no flap, every revert resolved within a day and every change
    /// detected within four times its target (the corpus's floor; the
    /// ignored tally above has the delays over many seeds).
    #[test]
    fn one_history_of_each_family_meets_the_corpus_floor() {
        let cfg = DetectorConfig::default();
        for generate in [varied, varied_hard, varied_rhythm] {
            let (cases, end) = generate(START, 1);
            for (i, case) in cases.iter().enumerate() {
                let x = score(case, end, stream_seed(1, i), &cfg);
                assert!(x.false_alarms.is_empty(), "{x:?}");
                assert_eq!(x.flaps, 0, "{x:?}");
                assert_ne!(x.revert_resolved, Some(false), "{x:?}");
                assert!(x.expected.is_none() || x.within(4.0), "{x:?}");
            }
        }
    }
}
