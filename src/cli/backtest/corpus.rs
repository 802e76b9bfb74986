//! The scenario corpus and its scorer: seeded histories at the roll-up
//! level (what the detectors read) with planted changes — stationary
//! streams (flat, diurnal, weekly, very low traffic), every change type with
//! and without revert, gradual ramps, a shift confined to one prompt version,
//! sub-threshold shifts that must not fire, young baselines and co-symptoms —
//! replayed hourly through [`replay`] (the daemon's detectors and alert
//! lifecycle) and scored: detected / missed / false alarms / flaps / delay
//! per change. `cargo bench --bench corpus` prints it with the stationary
//! year; the lighter tests below run with the suite.

use super::replay::replay;
use super::score::{Expectation, Score};
use crate::alert::AlertsConfig;
use crate::signals::rollup::{EmbeddingSum, HourCounts, StreamRollups, length_bin};
use crate::signals::stats::Moments;
use crate::signals::synth::{EMBED_DIMS, Gen, embedding};
use crate::signals::window::HOUR_MS;
use crate::signals::{DetectorConfig, Rule, Snapshot};
use crate::store::ModelEvent;

const DAY_MS: i64 = 24 * HOUR_MS;
/// 2026-03-02T00:00:00Z, a Monday.
pub const START: i64 = 1_772_409_600_000;

/// What a planted change does to the records it affects.
#[derive(Debug, Clone, PartialEq)]
pub enum Shift {
    /// Added to the judge-score mean.
    Score(f64),
    /// The refusal rate becomes this.
    Refusal(f64),
    /// The truncation rate becomes this.
    Truncation(f64),
    /// Output lengths are multiplied by this.
    Length(f64),
    /// Embeddings come from other topics.
    Topic,
    /// A model change event (`true`: the system fingerprint alone).
    Model { fingerprint_only: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Planted {
    pub shift: Shift,
    pub from_ms: i64,
    /// The revert, if any.
    pub to_ms: Option<i64>,
    /// Hours over which the shift ramps from nothing to its full size.
    pub ramp_hours: u32,
    /// Share of the stream's traffic affected (a prompt version's share).
    pub share: f64,
}

/// A stream's levels before any change: the standard corpus keeps them
/// fixed, the held-out-style histories (`varied.rs`) draw them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Base {
    pub refusal: f64,
    pub truncation: f64,
    pub score: f64,
    pub length: f64,
    /// Judges scoring every record: groundedness (the one a `Score` shift
    /// moves), then completion and consistency at the same level.
    pub judges: usize,
}

impl Default for Base {
    fn default() -> Self {
        Base {
            refusal: 0.01,
            truncation: 0.004,
            score: 3.8,
            length: 160.0,
            judges: 1,
        }
    }
}

const JUDGES: [&str; 3] = ["groundedness", "completion", "consistency"];

/// What a stream does every day or once in a while without anything
/// having changed: its signals swing with the hour (opposite to a diurnal
/// volume's swing — the night's users are not the day's), and its volume
/// jumps for a while (a launch, an outage). None of it may fire.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rhythm {
    /// Output length × (1 − length · swing).
    pub length: f64,
    /// Refusal rate × (1 − refusal · swing).
    pub refusal: f64,
    /// Judge mean − score · swing.
    pub score: f64,
    /// Spans `[from, to)` whose volume is multiplied by the factor.
    pub volume: Vec<(i64, i64, f64)>,
}

/// One stream of the corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamCase {
    pub name: String,
    pub per_hour: f64,
    /// Diurnal amplitude of the volume (0 = flat).
    pub diurnal: f64,
    /// Weekends half as busy with answers 15 % longer.
    pub weekly: bool,
    /// Data starts this many days after the corpus start.
    pub starts_day: i64,
    /// Refused records are short and score low (refusal co-symptoms).
    pub co_symptoms: bool,
    /// The stream's levels before any change.
    pub base: Base,
    /// Daily rhythms of its signals and spans of unusual volume.
    pub rhythm: Rhythm,
    pub changes: Vec<Planted>,
    /// The rule that must fire for the change and how soon (hours), or
    /// `None`: nothing may fire.
    pub expect: Option<(Rule, f64)>,
}

impl StreamCase {
    pub fn stationary(name: &str, per_hour: f64) -> StreamCase {
        StreamCase {
            name: name.into(),
            per_hour,
            diurnal: 0.0,
            weekly: false,
            starts_day: 0,
            co_symptoms: false,
            base: Base::default(),
            rhythm: Rhythm::default(),
            changes: Vec::new(),
            expect: None,
        }
    }

    pub fn with(mut self, shift: Shift, from_ms: i64, to_ms: Option<i64>) -> StreamCase {
        self.changes.push(Planted {
            shift,
            from_ms,
            to_ms,
            ramp_hours: 0,
            share: 1.0,
        });
        self
    }

    pub fn expect(mut self, rule: Rule, hours: f64) -> StreamCase {
        self.expect = Some((rule, hours));
        self
    }
}

const USUAL: [usize; 3] = [0, 1, 2];
const SHIFTED: [usize; 3] = [3, 4, 1];

/// The stream's roll-ups and model events over `[START, end)`.
pub fn generate(case: &StreamCase, end_ms: i64, seed: u64) -> (StreamRollups, Vec<ModelEvent>) {
    let mut g = Gen::new(seed);
    let mut data = StreamRollups::default();
    let mut events = Vec::new();
    let from = START + case.starts_day * DAY_MS;
    for t in (from..end_ms).step_by(HOUR_MS as usize) {
        let weekend = crate::signals::sequential::day_class(t) == 1;
        let hour_of_day = ((t / HOUR_MS) % 24) as f64;
        let swing = (2.0 * std::f64::consts::PI * hour_of_day / 24.0).sin();
        let mut volume = case.per_hour * (1.0 + case.diurnal * swing);
        if case.weekly && weekend {
            volume *= 0.5;
        }
        for &(a, b, f) in &case.rhythm.volume {
            if t >= a && t < b {
                volume *= f;
            }
        }
        let r = &case.rhythm;
        let n = g.poisson(volume.max(0.0));
        let mut hour = HourCounts::default();
        let mut bins = [0u64; crate::signals::rollup::BINS];
        let mut score = Moments::default();
        let mut others = [Moments::default(); 2];
        let mut emb = EmbeddingSum {
            n: 0,
            sum: vec![0.0; EMBED_DIMS],
        };
        for _ in 0..n {
            let b = case.base;
            let (mut refusal, mut trunc, mut len, mut mean) = (
                b.refusal * (1.0 - r.refusal * swing),
                b.truncation,
                b.length * (1.0 - r.length * swing),
                b.score - r.score * swing,
            );
            let mut topics: &[usize] = &USUAL;
            if case.weekly && weekend {
                len *= 1.15;
            }
            for c in &case.changes {
                let active = t >= c.from_ms && c.to_ms.is_none_or(|r| t < r);
                if !active {
                    continue;
                }
                let ramp = if c.ramp_hours == 0 {
                    1.0
                } else {
                    (((t - c.from_ms) / HOUR_MS + 1) as f64 / f64::from(c.ramp_hours)).min(1.0)
                };
                if !g.chance(c.share) {
                    continue;
                }
                match c.shift {
                    Shift::Score(d) => mean += d * ramp,
                    Shift::Refusal(p) => refusal += (p - refusal) * ramp,
                    Shift::Truncation(p) => trunc += (p - trunc) * ramp,
                    Shift::Length(f) => len *= 1.0 + (f - 1.0) * ramp,
                    Shift::Topic => topics = &SHIFTED,
                    Shift::Model { .. } => {}
                }
            }
            let refused = g.chance(refusal);
            let (tokens, s) = if refused && case.co_symptoms {
                ((20.0 + 5.0 * g.normal()).max(1.0), g.score(1.5))
            } else {
                ((len + 0.3 * len * g.normal()).max(1.0), g.score(mean))
            };
            let tokens = tokens.round();
            hour.n += 1;
            hour.refusals += u64::from(refused);
            hour.truncations += u64::from(g.chance(trunc));
            hour.tokens.add(Moments {
                n: 1.0,
                sum: tokens,
                sumsq: tokens * tokens,
            });
            bins[length_bin(tokens as i64)] += 1;
            score.add(Moments {
                n: 1.0,
                sum: s,
                sumsq: s * s,
            });
            for (a, x) in emb.sum.iter_mut().zip(embedding(&mut g, topics)) {
                *a += x;
            }
            emb.n += 1;
            // Drawn last, so one judge's histories stay what they were.
            let level = b.score - r.score * swing;
            for o in others.iter_mut().take(b.judges.saturating_sub(1)) {
                let s = g.score(if refused && case.co_symptoms {
                    1.5
                } else {
                    level
                });
                o.add(Moments {
                    n: 1.0,
                    sum: s,
                    sumsq: s * s,
                });
            }
        }
        if n > 0 {
            data.hours.insert(t, hour);
            data.length.insert(t, bins);
            data.scores
                .entry(JUDGES[0].into())
                .or_default()
                .insert(t, score);
            for (name, m) in JUDGES[1..]
                .iter()
                .zip(others)
                .take(case.base.judges.saturating_sub(1))
            {
                data.scores.entry((*name).into()).or_default().insert(t, m);
            }
            data.embedding.insert(t, emb);
        }
    }
    for c in &case.changes {
        if let Shift::Model { fingerprint_only } = c.shift {
            let (old, new) = if fingerprint_only {
                ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06")
            } else {
                ("gpt-4o-2024-08-06", "gpt-4o-2024-11-20")
            };
            events.push(ModelEvent {
                id: events.len() as i64 + 1,
                at_ms: c.from_ms,
                scope: format!("stream:{}", case.name),
                requested_model: "gpt-4o".into(),
                old_model: Some(old.into()),
                new_model: Some(new.into()),
                old_fingerprint: Some("fp_a".into()),
                new_fingerprint: Some(if fingerprint_only { "fp_b" } else { "fp_c" }.into()),
            });
        }
    }
    (data, events)
}

/// The standard corpus: 28 days, changes on day 14 (a full baseline
/// behind them), reverts four days later.
pub fn corpus() -> (Vec<StreamCase>, i64) {
    let at = START + 14 * DAY_MS + 5 * HOUR_MS;
    let revert = Some(at + 4 * DAY_MS);
    let s = StreamCase::stationary;
    let mut ramp = s("judge-ramp", 30.0)
        .with(Shift::Score(-0.8), at, None)
        .expect(Rule::JudgeScoreDrop, 24.0);
    ramp.changes[0].ramp_hours = 24;
    let mut version = s("prompt-version-third", 30.0)
        .with(Shift::Score(-1.5), at, revert)
        .expect(Rule::JudgeScoreDrop, 6.0);
    version.changes[0].share = 1.0 / 3.0;
    let mut spike = s("refusal-spike-co-symptoms", 30.0)
        .with(Shift::Refusal(0.15), at, revert)
        .expect(Rule::RefusalRateShift, 3.0);
    spike.co_symptoms = true;
    let cases = vec![
        s("stationary-flat", 30.0),
        StreamCase {
            diurnal: 0.6,
            ..s("stationary-diurnal", 30.0)
        },
        StreamCase {
            weekly: true,
            ..s("stationary-weekly", 30.0)
        },
        s("stationary-very-low", 0.4),
        StreamCase {
            starts_day: 25,
            ..s("young-baseline", 30.0)
        },
        s("judge-drop", 30.0)
            .with(Shift::Score(-0.5), at, revert)
            .expect(Rule::JudgeScoreDrop, 3.0),
        s("judge-drop-kept", 20.0)
            .with(Shift::Score(-0.5), at, None)
            .expect(Rule::JudgeScoreDrop, 3.0),
        s("length-halved", 30.0)
            .with(Shift::Length(0.5), at, revert)
            .expect(Rule::LengthDrift, 2.0),
        s("truncation", 30.0)
            .with(Shift::Truncation(0.10), at, revert)
            .expect(Rule::TruncationRate, 2.0),
        s("embedding", 30.0)
            .with(Shift::Topic, at, revert)
            .expect(Rule::EmbeddingDrift, 3.0),
        s("refusal-1-to-6", 40.0)
            .with(Shift::Refusal(0.06), at, revert)
            .expect(Rule::RefusalRateShift, 6.0),
        // No delay target in the issue: "must alert"; a day is asked here.
        s("refusal-low-traffic", 2.0)
            .with(Shift::Refusal(0.30), at, None)
            .expect(Rule::RefusalRateShift, 24.0),
        s("model-change", 30.0)
            .with(
                Shift::Model {
                    fingerprint_only: false,
                },
                at,
                None,
            )
            .expect(Rule::ModelChange, 1.0),
        s("fingerprint-change", 30.0)
            .with(
                Shift::Model {
                    fingerprint_only: true,
                },
                at,
                None,
            )
            .expect(Rule::ModelChange, 1.0),
        ramp,
        version,
        spike,
        s("sub-threshold-score", 40.0).with(Shift::Score(-0.15), at, None),
        s("sub-threshold-refusal", 40.0).with(Shift::Refusal(0.02), at, None),
        s("sub-threshold-length", 40.0).with(Shift::Length(1.05), at, None),
        // An apologetic surge, as the roll-ups see it once the classifier
        // does not count it: answers 10 % longer, refusals unchanged.
        s("apologetic-surge", 30.0).with(Shift::Length(1.10), at, revert),
    ];
    (cases, START + 28 * DAY_MS)
}

/// What `case` must do, for the one scorer (`score.rs`): its first planted
/// change with the rule that must fire for it, or a quiet stream.
pub fn expectation(case: &StreamCase) -> Expectation {
    match case.changes.first() {
        None => Expectation::quiet(&case.name),
        Some(c) => Expectation {
            stream: case.name.clone(),
            rule: case.expect.map(|e| e.0),
            dimension: None,
            from_ms: Some(c.from_ms),
            to_ms: c.to_ms,
            within_hours: case.expect.map(|e| e.1),
        },
    }
}

/// Replays one stream and scores its events.
pub fn score(case: &StreamCase, end_ms: i64, seed: u64, cfg: &DetectorConfig) -> Score {
    let (data, events) = generate(case, end_ms, seed);
    let mut snap = Snapshot {
        model_events: events,
        ..Default::default()
    };
    snap.streams.insert(case.name.clone(), data);
    let from = START + (case.starts_day + 1) * DAY_MS;
    let evs = replay(
        snap,
        (from, end_ms, HOUR_MS),
        cfg,
        &AlertsConfig::default(),
        |_, _| {},
    );
    if std::env::var("CANARYD_CORPUS_EVENTS").is_ok_and(|s| s == case.name) {
        for e in &evs {
            eprintln!("{} {} {} {}", e.at, e.event, e.rule.as_str(), e.summary);
        }
    }
    super::score::score(&[expectation(case)], &evs)
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!("one expectation, one row"))
}

/// Scores every stream of `cases` and renders the table.
pub fn run(
    cases: &[StreamCase],
    end_ms: i64,
    seed: u64,
    cfg: &DetectorConfig,
) -> (Vec<Score>, String) {
    let scores: Vec<Score> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| score(c, end_ms, seed.wrapping_add(i as u64 * 7919), cfg))
        .collect();
    let table = super::score::render(&scores);
    (scores, table)
}

/// Stationary streams (flat, diurnal, weekly; 20–40 records an hour) over
/// `days`: the false alarms of every rule together, per stream-year.
pub fn stationary(streams: usize, days: i64, seed: u64, cfg: &DetectorConfig) -> (usize, f64) {
    let end = START + days * DAY_MS;
    let mut alarms = 0;
    for i in 0..streams {
        let base = StreamCase::stationary(&format!("stationary-{i}"), 20.0 + (i % 3) as f64 * 10.0);
        let case = match i % 3 {
            0 => base,
            1 => StreamCase {
                diurnal: 0.6,
                ..base
            },
            _ => StreamCase {
                weekly: true,
                ..base
            },
        };
        alarms += score(&case, end, seed.wrapping_add(i as u64), cfg)
            .false_alarms
            .len();
    }
    let stream_years = streams as f64 * (days - 1) as f64 / 365.0;
    (alarms, alarms as f64 / stream_years)
}

/// A count from the environment of the ignored measurement runs (seeds).
#[cfg(test)]
pub(super) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_detected_in_time_without_false_alarms_flaps_or_unresolved_reverts() {
        let (cases, end) = corpus();
        let (scores, table) = run(&cases, end, 1, &DetectorConfig::default());
        eprintln!("{table}");
        // The floor: every change within four times its target delay (the table
        // and BENCHMARKS.md show which are within the target itself).
        for x in &scores {
            assert!(x.expected.is_none() || x.within(4.0), "{table}");
            assert!(x.false_alarms.is_empty(), "{table}");
            assert_eq!(x.flaps, 0, "{table}");
            assert_ne!(x.revert_resolved, Some(false), "{table}");
        }
    }

    /// The stationary year of BENCHMARKS.md (20 streams × 365 days, about
    /// ten minutes in a debug build): `cargo test --lib stationary_year --
    /// --ignored --nocapture`, or `cargo bench --bench corpus`.
    #[test]
    #[ignore]
    fn stationary_year() {
        let t = std::time::Instant::now();
        let (alarms, per_year) = stationary(20, 365, 1_000, &DetectorConfig::default());
        eprintln!(
            "stationary: 20 streams × 365 days: {alarms} false alarms, {per_year:.3} per stream-year, {:.0} s",
            t.elapsed().as_secs_f64()
        );
        assert!(
            per_year <= 1.0,
            "{alarms} false alarms ({per_year:.2} per stream-year)"
        );
    }

    /// The delay distribution of the changes with a speed target, and how
    /// often the sub-threshold shifts fire, over many seeds (one seed says
    /// little about a delay near the information limit):
    /// `cargo test --lib corpus::tests::delays_over_seeds -- --ignored --nocapture`
    /// (`CANARYD_SEEDS`, default 20; `CANARYD_CASES`, a comma list of name prefixes).
    #[test]
    #[ignore]
    fn delays_over_seeds() {
        let seeds = env_u64("CANARYD_SEEDS", 20);
        // `CANARYD_SEED_FROM=10`: fresh seeds beyond the first ones measured.
        let first = env_u64("CANARYD_SEED_FROM", 0);
        let (cases, end) = corpus();
        let cfg = DetectorConfig::default();
        // `CANARYD_CASES=truncation,refusal`: only streams whose name starts so.
        let only = std::env::var("CANARYD_CASES").unwrap_or_default();
        for case in &cases {
            if !(case.expect.is_some_and(|(r, _)| r != Rule::ModelChange)
                || case.name.starts_with("sub-threshold"))
                || !(only.is_empty() || only.split(',').any(|p| case.name.starts_with(p)))
            {
                continue;
            }
            let mut delays = Vec::new();
            let (mut in_time, mut false_alarms, mut flaps, mut unresolved) = (0, 0, 0, 0);
            for seed in first..first + seeds {
                let x = score(case, end, 10_000 + seed * 31, &cfg);
                if std::env::var("CANARYD_VERBOSE").is_ok() {
                    eprintln!(
                        "  {} seed {seed}: delay {:?}, false alarms {}, flaps {}, revert resolved {:?}",
                        case.name,
                        x.delay_hours,
                        x.false_alarms.len(),
                        x.flaps,
                        x.revert_resolved
                    );
                }
                if let Some(d) = x.delay_hours {
                    delays.push(d);
                }
                in_time += usize::from(x.detected());
                false_alarms += x.false_alarms.len();
                flaps += x.flaps;
                unresolved += usize::from(x.revert_resolved == Some(false));
            }
            delays.sort_by(f64::total_cmp);
            let q = |p: f64| {
                delays
                    .get(((delays.len() as f64 - 1.0) * p).round() as usize)
                    .map_or("-".to_string(), |d| format!("{d:.0}"))
            };
            eprintln!(
                "{:<28} target {:>4} h: detected {}/{seeds}, in time {in_time}, delay median {} p90 {} max {}; false alarms {false_alarms}, flaps {flaps}, reverts unresolved in 24 h {unresolved}",
                case.name,
                case.expect.map_or("-".into(), |e| format!("{:.0}", e.1)),
                delays.len(),
                q(0.5),
                q(0.9),
                q(1.0),
            );
        }
    }

    #[test]
    fn stationary_streams_stay_quiet_for_two_months() {
        // 6 streams × 60 days: at the budget of one false alarm per stream
        // per year this expects about one; the charts are conservative.
        let (alarms, per_year) = stationary(6, 60, 3, &DetectorConfig::default());
        assert!(
            alarms <= 1,
            "{alarms} false alarms ({per_year:.2} per stream-year)"
        );
    }
}
