//! `model_drift`: a target no longer answers like its reference (the pinned
//! target, or its own recent history) although its name and fingerprint are
//! unchanged — distinct from pass/fail regressions: every check may still
//! pass.
//!
//! Input: one stored equality test per (target, reference) and run, each
//! with an e-value `e_t` (`equality::mmd`, E[e_t] ≤ 1 under "same model",
//! independent across runs for a same-run reference). The alarm is an
//! e-CUSUM: `S_t = max(0, S_{t−1} + ln e_t)`, recomputed from zero over the
//! last [`LOOKBACK_MS`] at each evaluation (no stored state: a backtest step
//! equals a daemon tick), firing at `S ≥ h` with `h = ln(runs a year ×
//! references)` stored with each test. `S_t ≥ h` means the product of the
//! e-values since some run `s` reached `e^h`; for each start `s` that
//! happens with probability at most `e^{−h}` (Ville's inequality), so the
//! expected number of false alarms over a year of runs is at most one per
//! target. A single decisive run fires at once; several moderately unusual
//! runs add up, which is what makes a quiet swap visible within a day.
//! Hysteresis: an open alert resolves when `S` falls below `h / 3`.

use std::collections::BTreeMap;

use super::finding::{Rule, Severity};
use super::verdict::{Decision, Subject, Verdict, verdict};
use crate::equality::mmd::CaseTest;

/// How far back the alarm is recomputed: a week of runs.
pub const LOOKBACK_MS: i64 = 7 * 24 * 3_600_000;
/// `S` below this fraction of `h` lets an open alert resolve.
pub const RESOLVE_FRACTION: f64 = 1.0 / 3.0;

/// One stored equality test, as the detector needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct EqualityObs {
    pub run_id: i64,
    pub target: String,
    /// `target:pinned` or `history:7d`.
    pub reference: String,
    pub at_ms: i64,
    pub p_value: f64,
    pub log_e: f64,
    /// The alarm threshold `h` in force for this run.
    pub threshold: f64,
    pub cases: u64,
    pub top: Vec<CaseTest>,
}

/// The e-CUSUM over `log_e` in order: the statistic after the last value,
/// and the index where its current excursion began (`None` if it is 0).
pub fn cusum(log_e: &[f64]) -> (f64, Option<usize>) {
    let mut s = 0.0f64;
    let mut start = None;
    for (i, l) in log_e.iter().enumerate() {
        if s <= 0.0 {
            start = Some(i);
        }
        s = (s + l).max(0.0);
        if s <= 0.0 {
            start = None;
        }
    }
    (s, start)
}

/// One verdict per target of the suite with equality tests; stream
/// `suite:<name>`, dimension the target.
pub fn model_drift(suite: &str, obs: &[EqualityObs], now_ms: i64) -> Vec<Verdict> {
    let stream = format!("suite:{suite}");
    let mut by_target: BTreeMap<&str, BTreeMap<&str, Vec<&EqualityObs>>> = BTreeMap::new();
    for o in obs
        .iter()
        .filter(|o| o.at_ms <= now_ms && o.at_ms > now_ms - LOOKBACK_MS)
    {
        by_target
            .entry(&o.target)
            .or_default()
            .entry(&o.reference)
            .or_default()
            .push(o);
    }
    let mut out = Vec::new();
    for (target, refs) in by_target {
        let mut worst: Option<(f64, f64, &str, Vec<&EqualityObs>)> = None;
        let mut all_resolved = true;
        let mut runs = 0u64;
        for (reference, mut rows) in refs {
            rows.sort_by_key(|o| (o.at_ms, o.run_id));
            runs = runs.max(rows.len() as u64);
            let logs: Vec<f64> = rows.iter().map(|o| o.log_e).collect();
            let (s, start) = cusum(&logs);
            let h = rows.last().map_or(f64::INFINITY, |o| o.threshold);
            if s >= h * RESOLVE_FRACTION {
                all_resolved = false;
            }
            let excursion: Vec<&EqualityObs> = match start {
                Some(i) => rows[i..].to_vec(),
                None => Vec::new(),
            };
            if worst.as_ref().is_none_or(|w| s / h > w.0 / w.1) {
                worst = Some((s, h, reference, excursion));
            }
        }
        let Some((s, h, reference, excursion)) = worst else {
            continue;
        };
        let firing = s >= h;
        let latest_p = excursion.last().map(|o| o.p_value);
        let moved = moved_most(&excursion);
        let against = reference
            .strip_prefix("target:")
            .map(str::to_string)
            .unwrap_or_else(|| format!("its own {}", reference.replace(':', " ")));
        let summary = if firing {
            format!(
                "{target} no longer answers like {against}: evidence e^{s:.1} over {} run{} reached the budget e^{h:.1}{}{}",
                excursion.len(),
                if excursion.len() == 1 { "" } else { "s" },
                latest_p.map_or(String::new(), |p| format!(" (latest run p={})", fmt_p(p))),
                if moved.is_empty() {
                    String::new()
                } else {
                    format!("; moved most: {}", moved.join(", "))
                }
            )
        } else {
            format!(
                "{target} answers like {against} (evidence e^{s:.1} of the budget e^{h:.1} over {runs} runs)"
            )
        };
        out.push(verdict(
            Subject {
                rule: Rule::ModelDrift,
                stream: &stream,
                dimension: Some(target),
                at_ms: now_ms,
                samples: excursion.iter().map(|o| o.cases).sum(),
                baseline_samples: runs,
            },
            Decision {
                value: s,
                baseline: 0.0,
                threshold: h,
                p_value: None,
                severity: Severity::Warning,
                window_effect: false,
                direct: firing,
                resolve: all_resolved,
                alpha: 0.0,
                summary,
            },
        ));
    }
    out
}

/// The cases with the most evidence over the excursion (Σ −ln p), best first.
fn moved_most(rows: &[&EqualityObs]) -> Vec<String> {
    let mut per: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for o in rows {
        for c in &o.top {
            let e = per.entry(&c.case_id).or_default();
            e.0 += -c.p_value.max(1e-300).ln();
            e.1 = e.1.max(c.mmd2);
        }
    }
    let mut v: Vec<_> = per.into_iter().collect();
    v.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then(a.0.cmp(b.0)));
    v.into_iter()
        .take(3)
        .map(|(c, (_, mmd))| format!("{c} (MMD² {mmd:.3})"))
        .collect()
}

fn fmt_p(p: f64) -> String {
    if p < 1e-3 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::equality::mmd::log_e_value;
    use crate::signals::Status;

    const H: i64 = 3_600_000;

    fn is_firing(v: &Verdict) -> bool {
        v.finding.status == Status::Firing
    }

    fn obs(i: i64, p: f64) -> EqualityObs {
        EqualityObs {
            run_id: i,
            target: "live".into(),
            reference: "target:pinned".into(),
            at_ms: i * H,
            p_value: p,
            log_e: log_e_value(p),
            threshold: crate::equality::threshold(24.0, 1),
            cases: 10,
            top: vec![CaseTest {
                case_id: "refund".into(),
                mmd2: 0.1,
                p_value: p.max(0.001),
                live_samples: 10,
                reference_samples: 10,
                live_example: "after".into(),
                reference_example: "before".into(),
            }],
        }
    }

    #[test]
    fn cusum_restarts_at_zero() {
        assert_eq!(cusum(&[-1.0, -1.0]), (0.0, None));
        let (s, start) = cusum(&[3.0, -5.0, 2.0, 2.0]);
        assert_eq!((s, start), (4.0, Some(2)));
    }

    #[test]
    fn uniform_p_values_do_not_fire_and_a_run_of_small_ones_does() {
        // A day of unremarkable runs.
        let quiet: Vec<_> = (0..24)
            .map(|i| obs(i, 0.1 + 0.8 * ((i * 7) % 10) as f64 / 10.0))
            .collect();
        let v = model_drift("s", &quiet, 24 * H);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].finding.status, Status::Ok, "{:?}", v[0].finding);
        assert!(v[0].finding.resolve);
        // Then four runs at p = 1e-3: ln e ≈ 3.0 each passes ln(8760) ≈ 9.1 after the fourth.
        let mut drift = quiet.clone();
        drift.extend((24..28).map(|i| obs(i, 1e-3)));
        let v = model_drift("s", &drift, 28 * H);
        assert_eq!(v[0].finding.status, Status::Firing, "{:?}", v[0].finding);
        assert_eq!(v[0].finding.rule, Rule::ModelDrift);
        assert_eq!(v[0].finding.dimension.as_deref(), Some("live"));
        assert!(
            v[0].finding
                .summary
                .contains("no longer answers like pinned")
                && v[0].finding.summary.contains("refund"),
            "{}",
            v[0].finding.summary
        );
        assert!(!v[0].finding.resolve);
    }

    #[test]
    fn a_century_of_unchanged_hourly_runs_stays_within_the_budget() {
        // Exact uniform p-values (the permutation p-values are super-uniform,
        // so this is the worst case): at most one false alarm a year allowed.
        let h = crate::equality::threshold(24.0, 1);
        let (mut s, mut alarms, mut state) = (0.0f64, 0u32, 99u64);
        let years = 100;
        for _ in 0..years * 8760 {
            state = crate::equality::mmd::mix(state, 1);
            let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            s = (s + log_e_value(u)).max(0.0);
            if s >= h {
                alarms += 1;
                s = 0.0;
            }
        }
        assert!(alarms <= years, "{alarms} false alarms in {years} years");
    }

    #[test]
    fn old_tests_fall_out_of_the_lookback() {
        let drift: Vec<_> = (0..4).map(|i| obs(i, 1e-4)).collect();
        assert!(is_firing(&model_drift("s", &drift, 4 * H)[0]));
        assert!(model_drift("s", &drift, 4 * H + LOOKBACK_MS).is_empty());
    }
}
