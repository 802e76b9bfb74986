//! What a suite costs before it is enabled: model calls and tokens per day
//! (calls per run × runs per day from the cron schedule), per part of the
//! suite and per target, priced where the config gives prices. Pure: the
//! caller passes `now` and the prices, `canaryd check` prints it.
//!
//! Parts are listed by [`parts`], the one extension point: a new part of a
//! suite that calls models (e.g. equality samples) adds its per-run usage
//! there and `check` prints it with the others.

use std::collections::BTreeMap;

use serde::Serialize;

use super::expect::EMBEDDER_MODEL;
use super::load::{Suite, SuiteCase};
use super::suite::Expectation;
use super::{probe, request, ticks};
use crate::tokens;

/// Output tokens assumed for a case without `max_tokens` (no bound is
/// known; stated in the printed table).
pub const UNBOUNDED_OUTPUT_TOKENS: u64 = 512;
/// Output tokens a judge call is assumed to answer with (the worker's own
/// reservation per attempt).
const JUDGE_OUTPUT_TOKENS: u64 = 400;

/// Model usage of one part of a suite against one model, per run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PartUsage {
    /// `cases`, `judges`, `embeddings`, `logprob_probe`, …
    pub part: String,
    /// The model name from the config that is called (a target, a judge's
    /// model, the embedder).
    pub model: String,
    pub calls: u64,
    pub input_tokens: u64,
    /// An upper bound: `max_tokens`, or [`UNBOUNDED_OUTPUT_TOKENS`].
    pub output_tokens: u64,
}

/// A suite's cost per day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteCost {
    pub suite: String,
    /// Scheduled runs per day (average over the next 7 days); 0 without a schedule.
    pub runs_per_day: f64,
    /// Per run.
    pub parts: Vec<PartUsage>,
    pub calls_per_day: f64,
    pub input_tokens_per_day: f64,
    pub output_tokens_per_day: f64,
    /// `None` when no model called has a price in the config.
    pub usd_per_day: Option<f64>,
    /// Some case has no `max_tokens`: its output was counted as
    /// [`UNBOUNDED_OUTPUT_TOKENS`].
    pub unbounded_output: bool,
}

/// Prices (USD per million input, output tokens) of a model name; `None`
/// when unpriced.
pub type Prices<'a> = &'a dyn Fn(&str) -> Option<(f64, f64)>;

/// Average scheduled runs per day over the 7 days from `from_ms`; 0 without
/// a (parseable) schedule. At most 100,000 ticks are walked; a denser
/// schedule is extrapolated from them.
pub fn runs_per_day(schedule: Option<&str>, timezone: Option<&str>, from_ms: i64) -> f64 {
    let Some(cron) = schedule.and_then(|s| ticks::parse(s).ok()) else {
        return 0.0;
    };
    let tz = ticks::zone(timezone);
    let end = from_ms + 7 * 86_400_000;
    // From just before `from_ms`, so a tick at that instant counts.
    let (mut t, mut n) = (from_ms - 1, 0u64);
    while n < 100_000 {
        match ticks::next_tick(&cron, tz, t) {
            Some(next) if next < end => {
                n += 1;
                t = next;
            }
            _ => return n as f64 / 7.0,
        }
    }
    n as f64 / ((t - from_ms + 1).max(1) as f64 / 86_400_000.0)
}

/// Every part of one run of `suite`, per model called. The extension point
/// for new parts.
pub fn parts(suite: &Suite) -> (Vec<PartUsage>, bool) {
    let mut out: BTreeMap<(String, String), PartUsage> = BTreeMap::new();
    let mut add = |part: &str, model: &str, calls: u64, input: u64, output: u64| {
        let u = out
            .entry((part.to_string(), model.to_string()))
            .or_insert_with(|| PartUsage {
                part: part.to_string(),
                model: model.to_string(),
                ..PartUsage::default()
            });
        u.calls += calls;
        u.input_tokens += input;
        u.output_tokens += output;
    };
    let mut unbounded = false;
    let input_of = |case: &SuiteCase| -> u64 {
        request::messages(suite, case)
            .map(|(msgs, _)| {
                msgs.iter()
                    .map(|m| tokens::count(&m.content).max(0) as u64 + 4)
                    .sum::<u64>()
                    + 3
            })
            .unwrap_or(0)
    };
    for case in &suite.cases {
        let input = input_of(case);
        let output = match case.max_tokens.or(suite.defaults.max_tokens) {
            Some(m) => u64::from(m),
            None => {
                unbounded = true;
                UNBOUNDED_OUTPUT_TOKENS
            }
        };
        for t in &suite.targets {
            add("cases", t, 1, input, output);
            for e in &case.expect {
                match e {
                    Expectation::Judge(j) => add(
                        "judges",
                        &format!("judge:{}", j.name),
                        1,
                        input + output + 200,
                        JUDGE_OUTPUT_TOKENS,
                    ),
                    Expectation::Similar(_) => add("embeddings", EMBEDDER_MODEL, 1, 2 * output, 0),
                    _ => {}
                }
            }
        }
    }
    if let Some(plan) = &suite.equality {
        for case in &suite.cases {
            let n = u64::from(plan.samples_of(case.equality.as_ref()));
            if n == 0 {
                continue;
            }
            let output = match plan
                .max_tokens
                .or(case.max_tokens)
                .or(suite.defaults.max_tokens)
            {
                Some(m) => u64::from(m),
                None => {
                    unbounded = true;
                    UNBOUNDED_OUTPUT_TOKENS
                }
            };
            let input = input_of(case);
            for t in &suite.targets {
                add("equality", t, n, n * input, n * output);
            }
        }
    }
    if let Some(p) = &suite.logprob_probe {
        let cases = probe::probe_cases(suite, p);
        for t in probe::probe_targets(p, &suite.targets) {
            for c in &cases {
                add("logprob_probe", t, 1, input_of(c), u64::from(p.max_tokens));
            }
        }
    }
    (out.into_values().collect(), unbounded)
}

/// The cost per day of `suite` at `now_ms`.
pub fn suite_cost(suite: &Suite, now_ms: i64, prices: Prices<'_>) -> SuiteCost {
    let runs = runs_per_day(suite.schedule.as_deref(), suite.timezone.as_deref(), now_ms);
    let (parts, unbounded_output) = parts(suite);
    let mut usd = None;
    for p in &parts {
        if let Some((i, o)) = prices(&p.model) {
            *usd.get_or_insert(0.0) +=
                runs * (p.input_tokens as f64 * i + p.output_tokens as f64 * o) / 1e6;
        }
    }
    let sum = |f: fn(&PartUsage) -> u64| runs * parts.iter().map(f).sum::<u64>() as f64;
    SuiteCost {
        suite: suite.name.clone(),
        runs_per_day: runs,
        calls_per_day: sum(|p| p.calls),
        input_tokens_per_day: sum(|p| p.input_tokens),
        output_tokens_per_day: sum(|p| p.output_tokens),
        usd_per_day: usd,
        unbounded_output,
        parts,
    }
}

/// The table `canaryd check` prints.
pub fn render(costs: &[SuiteCost]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "cost per day (runs from each schedule; output tokens are max_tokens, an upper bound):\n",
    );
    for c in costs {
        let _ = writeln!(
            out,
            "  suite {}: {} runs/day, {} calls/day, ~{} input + ≤{} output tokens/day{}",
            c.suite,
            num(c.runs_per_day),
            num(c.calls_per_day),
            num(c.input_tokens_per_day),
            num(c.output_tokens_per_day),
            c.usd_per_day
                .map(|u| format!(", ${u:.2}/day"))
                .unwrap_or_else(|| ", unpriced".into())
        );
        for p in &c.parts {
            let _ = writeln!(
                out,
                "    {:<14} {:<16} {} calls/run = {} calls/day",
                p.part,
                p.model,
                p.calls,
                num(p.calls as f64 * c.runs_per_day)
            );
        }
        if c.unbounded_output {
            let _ = writeln!(
                out,
                "    (cases without max_tokens counted as {UNBOUNDED_OUTPUT_TOKENS} output tokens)"
            );
        }
        if c.runs_per_day == 0.0 {
            let _ = writeln!(out, "    (no schedule: runs only with `canaryd run`)");
        }
    }
    out
}

fn num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::suite::{LogprobProbe, ProbePrompt};

    fn suite() -> Suite {
        Suite {
            name: "s".into(),
            version: 1,
            description: None,
            schedule: Some("0 0 * * * *".into()),
            timezone: None,
            targets: vec!["pinned".into(), "live".into()],
            baseline: None,
            defaults: Default::default(),
            system: None,
            vars: Default::default(),
            concurrency: None,
            timeout_secs: None,
            cases: vec![SuiteCase {
                id: "c".into(),
                prompt: Some("How long do refunds take?".into()),
                messages: None,
                context: vec![],
                system: None,
                temperature: None,
                max_tokens: Some(100),
                stream: None,
                response_format: None,
                expect: vec![],
                equality: None,
            }],
            equality: None,
            logprob_probe: Some(LogprobProbe {
                prompts: vec![
                    ProbePrompt {
                        id: "a".into(),
                        prompt: "The capital of France is".into(),
                    },
                    ProbePrompt {
                        id: "b".into(),
                        prompt: "2 + 2 =".into(),
                    },
                ],
                top_logprobs: 5,
                max_tokens: 1,
                targets: vec!["live".into()],
            }),
            content_hash: String::new(),
            path: Default::default(),
        }
    }

    #[test]
    fn hourly_suite_costs_cases_times_targets_plus_probes_times_24() {
        let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let prices = |m: &str| (m == "live").then_some((1.0, 10.0));
        let c = suite_cost(&suite(), now, &prices);
        assert_eq!(c.runs_per_day, 24.0);
        // 1 case × 2 targets + 2 probes × 1 target, each hour.
        assert_eq!(c.calls_per_day, 24.0 * 4.0);
        let probe: u64 = c
            .parts
            .iter()
            .filter(|p| p.part == "logprob_probe")
            .map(|p| p.output_tokens)
            .sum();
        assert_eq!(probe, 2);
        assert_eq!(c.output_tokens_per_day, 24.0 * (100.0 * 2.0 + 2.0));
        let live_in: u64 = c
            .parts
            .iter()
            .filter(|p| p.model == "live")
            .map(|p| p.input_tokens)
            .sum();
        let want = 24.0 * (live_in as f64 * 1.0 + 102.0 * 10.0) / 1e6;
        assert!((c.usd_per_day.unwrap() - want).abs() < 1e-12);
        assert!(render(&[c]).contains("96 calls/day"));
    }

    #[test]
    fn an_unscheduled_suite_costs_nothing_per_day() {
        let mut s = suite();
        s.schedule = None;
        let c = suite_cost(&s, 0, &|_| None);
        assert_eq!(c.calls_per_day, 0.0);
        assert_eq!(c.usd_per_day, None);
        assert!(render(&[c]).contains("no schedule"));
    }

    #[test]
    fn equality_samples_are_counted_per_case_and_target() {
        let mut s = suite();
        s.logprob_probe = None;
        s.equality = Some(crate::canary::equality::Plan {
            samples: 10,
            temperature: 0.7,
            max_tokens: Some(50),
            reference_target: Some("pinned".into()),
            history_ms: None,
            max_calls_per_day: None,
        });
        let c = suite_cost(&s, 0, &|_| None);
        let eq: Vec<_> = c.parts.iter().filter(|p| p.part == "equality").collect();
        assert_eq!(eq.len(), 2, "one part per target: {eq:?}");
        assert!(eq.iter().all(|p| p.calls == 10 && p.output_tokens == 500));
        // 1 case + 10 samples, on each of 2 targets, each hour.
        assert_eq!(c.calls_per_day, 24.0 * 22.0);
        s.cases[0].equality = Some(crate::canary::equality::CasePlan {
            samples: Some(0),
            temperature: None,
        });
        let c = suite_cost(&s, 0, &|_| None);
        assert!(c.parts.iter().all(|p| p.part != "equality"));
    }
}
