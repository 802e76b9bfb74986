//! The `equality:` block of a suite (and its per-case override): the YAML
//! as written, its validation with positions, the normalised plan the
//! runner follows, and the cost arithmetic `check` prints.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Diagnostics};

/// Temperature of the equality samples when the block does not say: the
/// test compares answer *distributions*, which temperature 0 collapses.
pub const DEFAULT_TEMPERATURE: f32 = 0.7;
/// Most samples one case may ask for per target and run.
pub const MAX_SAMPLES: u32 = 100;
/// Runs a day assumed for a suite without a schedule (`canaryd run` only):
/// an hourly cadence, the one the false-alarm budget is stated for.
pub const UNSCHEDULED_RUNS_PER_DAY: f64 = 24.0;
/// Longest `history:` reference.
pub const MAX_HISTORY_DAYS: u64 = 90;

/// `equality:` on a suite, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EqualityFile {
    /// Answers per case, per target and run.
    #[serde(default)]
    pub samples: Option<Spanned<u32>>,
    #[serde(default)]
    pub temperature: Option<Spanned<f32>>,
    /// Cap on each sample's length; default the case's own `max_tokens`.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub reference: Option<Spanned<ReferenceFile>>,
    #[serde(default)]
    pub budget: Option<Spanned<BudgetFile>>,
}

/// What live is compared with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceFile {
    /// Another target of the suite (typically the baseline, `pinned`):
    /// its samples of the same run.
    #[serde(default)]
    pub target: Option<Spanned<String>>,
    /// The target's own samples of the recent past, e.g. `7d`.
    #[serde(default)]
    pub history: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetFile {
    /// Extra model calls a day this suite's sampling may make; `check`
    /// refuses a suite whose schedule needs more, and a run that would go
    /// over it skips its sampling.
    pub max_calls_per_day: Spanned<u64>,
}

/// The normalised suite-level plan.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub samples: u32,
    pub temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Target whose same-run samples are a reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_target: Option<String>,
    /// Length of the own-history reference, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls_per_day: Option<u64>,
}

/// The per-case override, normalised: `samples: 0` leaves a case out.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct CasePlan {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

/// A reference a target is tested against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Reference {
    /// Another target's samples from the same run.
    Target(String),
    /// The target's own samples of the span before the run, in ms.
    History(i64),
}

impl Reference {
    /// The name stored with a test: `target:pinned`, `history:7d`.
    pub fn label(&self) -> String {
        match self {
            Reference::Target(t) => format!("target:{t}"),
            Reference::History(ms) => format!("history:{}", fmt_span(*ms)),
        }
    }
}

fn fmt_span(ms: i64) -> String {
    if ms % 86_400_000 == 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else {
        format!("{}m", ms / 60_000)
    }
}

impl Plan {
    /// Samples per target and run of a case with override `c`.
    pub fn samples_of(&self, c: Option<&CasePlan>) -> u32 {
        c.and_then(|c| c.samples).unwrap_or(self.samples)
    }

    pub fn temperature_of(&self, c: Option<&CasePlan>) -> f32 {
        c.and_then(|c| c.temperature).unwrap_or(self.temperature)
    }

    /// The references `target` is tested against: the reference target
    /// (not for itself) and its own history.
    pub fn references_for(&self, target: &str) -> Vec<Reference> {
        let mut out = Vec::new();
        if let Some(t) = &self.reference_target
            && t != target
        {
            out.push(Reference::Target(t.clone()));
        }
        if let Some(h) = self.history_ms {
            out.push(Reference::History(h));
        }
        out
    }
}

/// Extra calls one run makes: Σ over cases of their samples × targets.
/// Pure, so `check`, the status page and the runner's budget agree.
pub fn calls_per_run(plan: &Plan, cases: &[Option<&CasePlan>], targets: usize) -> u64 {
    cases
        .iter()
        .map(|c| u64::from(plan.samples_of(*c)))
        .sum::<u64>()
        * targets as u64
}

/// Runs a day of a normalised 6-field cron in `tz`, counted over one week
/// from a fixed Monday (so weekday-only schedules average right and the
/// budget check does not depend on the day `check` runs); no or an
/// unparseable schedule counts as [`UNSCHEDULED_RUNS_PER_DAY`].
pub fn runs_per_day(schedule: Option<&str>, tz: Option<&str>) -> f64 {
    // Monday 2026-01-05T00:00:00Z.
    const MONDAY_MS: i64 = 1_767_571_200_000;
    match schedule.filter(|s| super::ticks::parse(s).is_ok()) {
        None => UNSCHEDULED_RUNS_PER_DAY,
        Some(s) => super::cost::runs_per_day(Some(s), tz, MONDAY_MS),
    }
}

/// Validates the suite-level block; `targets` are the suite's.
pub fn validate(
    path: &Path,
    block: &Spanned<EqualityFile>,
    targets: &[String],
    d: &mut Diagnostics,
) {
    let b = &block.value;
    check_common(path, b.samples.as_ref(), b.temperature.as_ref(), false, d);
    if b.samples.is_none() {
        d.push(Diagnostic::at(
            path,
            block,
            "equality: needs `samples` (answers per case per target and run, e.g. 10)",
        ));
    }
    match &b.reference {
        None => d.push(Diagnostic::at(
            path,
            block,
            "equality: needs a `reference` (`target: pinned` and/or `history: 7d`)",
        )),
        Some(r) => {
            if r.value.target.is_none() && r.value.history.is_none() {
                d.push(Diagnostic::at(
                    path,
                    r,
                    "equality.reference: give `target` (another target of the suite) and/or `history` (e.g. 7d)",
                ));
            }
            if let Some(t) = &r.value.target
                && !targets.contains(&t.value)
            {
                d.push(Diagnostic::at(
                    path,
                    t,
                    format!(
                        "equality.reference.target: `{}` is not a target of this suite (targets: {})",
                        t.value,
                        targets.join(", ")
                    ),
                ));
            }
            if let Some(t) = &r.value.target
                && targets.len() < 2
                && r.value.history.is_none()
            {
                d.push(Diagnostic::at(
                    path,
                    t,
                    "equality.reference.target: the suite has one target, so nothing is compared with it; add a target or use `history`",
                ));
            }
            if let Some(h) = &r.value.history
                && let Err(e) = history_ms(&h.value)
            {
                d.push(Diagnostic::at(path, h, e));
            }
        }
    }
    if let Some(bu) = &b.budget
        && bu.value.max_calls_per_day.value == 0
    {
        d.push(Diagnostic::at(
            path,
            &bu.value.max_calls_per_day,
            "equality.budget.max_calls_per_day: must be at least 1 (remove `equality:` to sample nothing)",
        ));
    }
}

/// Validates a case's override.
pub fn validate_case(path: &Path, block: &Spanned<EqualityFile>, case: &str, d: &mut Diagnostics) {
    let b = &block.value;
    check_common(path, b.samples.as_ref(), b.temperature.as_ref(), true, d);
    if b.reference.is_some() || b.budget.is_some() || b.max_tokens.is_some() {
        d.push(Diagnostic::at(
            path,
            block,
            format!(
                "case `{case}`: equality: a case may set only `samples` and `temperature`; `reference`, `budget` and `max_tokens` belong to the suite's block"
            ),
        ));
    }
}

fn check_common(
    path: &Path,
    samples: Option<&Spanned<u32>>,
    temperature: Option<&Spanned<f32>>,
    case: bool,
    d: &mut Diagnostics,
) {
    if let Some(s) = samples {
        let min = if case { 0 } else { 2 };
        if s.value < min || s.value > MAX_SAMPLES {
            d.push(Diagnostic::at(
                path,
                s,
                format!(
                    "equality.samples: found {}, expected {min} to {MAX_SAMPLES}{}",
                    s.value,
                    if case {
                        " (0 leaves the case out)"
                    } else {
                        " (a distribution needs at least 2 answers)"
                    }
                ),
            ));
        }
    }
    if let Some(t) = temperature
        && !(t.value.is_finite() && (0.0..=2.0).contains(&t.value))
    {
        d.push(Diagnostic::at(
            path,
            t,
            format!(
                "equality.temperature: found {}, expected 0 to 2 (above 0: the test compares answer distributions)",
                t.value
            ),
        ));
    }
}

/// `7d`, `36h` → milliseconds, between one hour and [`MAX_HISTORY_DAYS`].
pub fn history_ms(s: &str) -> Result<i64, String> {
    let d = crate::duration::parse_duration(s).ok_or_else(|| {
        format!("equality.reference.history: found `{s}`, expected a duration such as 7d or 36h")
    })?;
    let ms = d.as_millis() as i64;
    if ms < 3_600_000 || ms > MAX_HISTORY_DAYS as i64 * 86_400_000 {
        return Err(format!(
            "equality.reference.history: found `{s}`, expected between 1h and {MAX_HISTORY_DAYS}d"
        ));
    }
    Ok(ms)
}

/// The plan of a validated block.
pub fn normalise(b: EqualityFile) -> Plan {
    let r = b.reference.map(|r| r.value);
    Plan {
        samples: b.samples.map_or(0, |s| s.value),
        temperature: b.temperature.map_or(DEFAULT_TEMPERATURE, |t| t.value),
        max_tokens: b.max_tokens,
        reference_target: r
            .as_ref()
            .and_then(|r| r.target.as_ref().map(|t| t.value.clone())),
        history_ms: r
            .as_ref()
            .and_then(|r| r.history.as_ref().and_then(|h| history_ms(&h.value).ok())),
        max_calls_per_day: b.budget.map(|bu| bu.value.max_calls_per_day.value),
    }
}

pub fn normalise_case(b: EqualityFile) -> CasePlan {
    CasePlan {
        samples: b.samples.map(|s| s.value),
        temperature: b.temperature.map(|t| t.value),
    }
}

/// The budget diagnostic of a suite whose schedule needs more calls a day
/// than its `budget` allows (an error: `check` refuses it).
pub fn budget_check(
    path: &Path,
    block: &Spanned<EqualityFile>,
    calls_run: u64,
    runs_day: f64,
    d: &mut Diagnostics,
) {
    let Some(bu) = &block.value.budget else {
        return;
    };
    let max = bu.value.max_calls_per_day.value;
    let per_day = calls_run as f64 * runs_day;
    if per_day > max as f64 {
        d.push(Diagnostic::at(
            path,
            &bu.value.max_calls_per_day,
            format!(
                "equality sampling needs {per_day:.0} calls a day ({calls_run} a run × {runs_day:.1} runs a day), above budget.max_calls_per_day {max}: lower `samples`, leave cases out (`equality: {{samples: 0}}`), run less often or raise the budget"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(samples: u32) -> Plan {
        Plan {
            samples,
            temperature: 0.7,
            max_tokens: None,
            reference_target: Some("pinned".into()),
            history_ms: Some(7 * 86_400_000),
            max_calls_per_day: None,
        }
    }

    #[test]
    fn calls_per_run_counts_overrides_and_targets() {
        let off = CasePlan {
            samples: Some(0),
            temperature: None,
        };
        let more = CasePlan {
            samples: Some(20),
            temperature: None,
        };
        assert_eq!(calls_per_run(&plan(10), &[None, None, None], 2), 60);
        assert_eq!(
            calls_per_run(&plan(10), &[None, Some(&off), Some(&more)], 2),
            60
        );
    }

    #[test]
    fn runs_per_day_of_common_schedules() {
        assert_eq!(runs_per_day(Some("0 0 * * * *"), None), 24.0);
        assert_eq!(runs_per_day(Some("0 */15 * * * *"), None), 96.0);
        // Weekdays at 09:00: 5 a week.
        let w = runs_per_day(Some("0 0 9 * * MON-FRI"), None);
        assert!((w - 5.0 / 7.0).abs() < 1e-9, "{w}");
        assert_eq!(runs_per_day(None, None), UNSCHEDULED_RUNS_PER_DAY);
        // Every second: extrapolated from the first 100,000 ticks.
        assert!((runs_per_day(Some("* * * * * *"), None) - 86_400.0).abs() < 1.0);
    }

    #[test]
    fn references_leave_out_the_reference_target_itself() {
        let p = plan(10);
        assert_eq!(
            p.references_for("live"),
            vec![
                Reference::Target("pinned".into()),
                Reference::History(7 * 86_400_000)
            ]
        );
        assert_eq!(
            p.references_for("pinned"),
            vec![Reference::History(7 * 86_400_000)]
        );
        assert_eq!(Reference::History(7 * 86_400_000).label(), "history:7d");
    }

    #[test]
    fn history_durations_are_bounded() {
        assert_eq!(history_ms("36h"), Ok(36 * 3_600_000));
        assert!(history_ms("10m").is_err());
        assert!(history_ms("200d").is_err());
        assert!(history_ms("a week").unwrap_err().contains("7d"));
    }
}
