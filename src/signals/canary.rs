//! `canary_regression`, per suite and target (pinned and live apart): a case
//! that passed its recent runs now fails, or the pass rate of the window is
//! significantly and materially below the baseline's, or the live target
//! stops agreeing with the pinned one. Provider errors are not results.

use std::collections::BTreeMap;

use super::DetectorConfig;
use super::finding::{Rule, Severity};
use super::stats::fisher_exact;
use super::verdict::{Decision, Subject, Verdict, verdict};
use super::window::{Windows, contains};

/// One stored case result, as the detector needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryObs {
    pub run_id: i64,
    pub case_id: String,
    pub target: String,
    /// pass | fail | provider_error
    pub outcome: String,
    pub agrees_with_pinned: Option<bool>,
    pub at_ms: i64,
}

/// Verdicts for one suite; `obs` in any order. The finding's stream is
/// `suite:<name>` and its dimension the target.
pub fn canary_regression(
    suite: &str,
    obs: &[CanaryObs],
    w: &Windows,
    cfg: &DetectorConfig,
) -> Vec<Verdict> {
    let c = &cfg.canary_regression;
    let stream = format!("suite:{suite}");
    let mut by_target: BTreeMap<&str, Vec<&CanaryObs>> = BTreeMap::new();
    for o in obs
        .iter()
        .filter(|o| o.outcome != "provider_error" && o.at_ms < w.current.1)
    {
        by_target.entry(&o.target).or_default().push(o);
    }
    let mut out = Vec::new();
    for (target, mut rs) in by_target {
        rs.sort_by_key(|o| (o.at_ms, o.run_id));
        let count = |span, f: &dyn Fn(&CanaryObs) -> Option<bool>| {
            rs.iter()
                .filter(|o| contains(span, o.at_ms))
                .filter_map(|o| f(o))
                .fold((0u64, 0u64), |(n, k), ok| (n + 1, k + u64::from(ok)))
        };
        let pass = |o: &CanaryObs| Some(o.outcome == "pass");
        let agree = |o: &CanaryObs| o.agrees_with_pinned;
        let (n1, k1) = count(w.current, &pass);
        let (n0, k0) = count(w.baseline, &pass);
        if n1 == 0 {
            out.push(Verdict::insufficient(
                Subject {
                    rule: Rule::CanaryRegression,
                    stream: &stream,
                    dimension: Some(target),
                    at_ms: w.now_ms,
                    samples: 0,
                    baseline_samples: n0,
                },
                c.min_pass_rate_drop,
                format!("{target}: no canary results in the window"),
            ));
            continue;
        }
        // Cases now failing after `recent_passes` passes in a row, the flip inside the window.
        let mut per_case: BTreeMap<&str, Vec<&CanaryObs>> = BTreeMap::new();
        for o in &rs {
            per_case.entry(&o.case_id).or_default().push(o);
        }
        let mut flipped = Vec::new();
        for (case, hist) in &per_case {
            let fails_at_end = hist
                .iter()
                .rev()
                .take_while(|o| o.outcome != "pass")
                .count();
            if fails_at_end == 0 || fails_at_end == hist.len() {
                continue;
            }
            let first_fail = hist[hist.len() - fails_at_end];
            let passes_before = hist[..hist.len() - fails_at_end]
                .iter()
                .rev()
                .take_while(|o| o.outcome == "pass")
                .count();
            let base: Vec<_> = hist
                .iter()
                .filter(|o| contains(w.baseline, o.at_ms))
                .collect();
            let base_fail = base.iter().filter(|o| o.outcome != "pass").count() as f64
                / base.len().max(1) as f64;
            if passes_before >= c.recent_passes as usize
                && first_fail.at_ms >= w.current.0
                && base_fail <= c.max_flaky_rate
            {
                flipped.push(*case);
            }
        }
        let (r1, r0) = (
            k1 as f64 / n1 as f64,
            if n0 > 0 {
                k0 as f64 / n0 as f64
            } else {
                f64::NAN
            },
        );
        let p_pass = (n0 > 0).then(|| fisher_exact(k1, n1 - k1, k0, n0 - k0));
        let rate_effect = n0 > 0 && r0 - r1 >= c.min_pass_rate_drop;
        let (a1, ak1) = count(w.current, &agree);
        let (a0, ak0) = count(w.baseline, &agree);
        let agreement_drop = a1 > 0 && a0 > 0 && {
            let (g1, g0) = (ak1 as f64 / a1 as f64, ak0 as f64 / a0 as f64);
            g0 - g1 >= c.min_agreement_drop
                && fisher_exact(ak1, a1 - ak1, ak0, a0 - ak0) < cfg.alpha
        };
        let mut reasons = Vec::new();
        if !flipped.is_empty() {
            reasons.push(format!(
                "now failing after {} passes: {}",
                c.recent_passes,
                flipped.join(", ")
            ));
        }
        if agreement_drop {
            reasons.push(format!(
                "agreement with pinned {:.0} % → {:.0} %",
                100.0 * ak0 as f64 / a0 as f64,
                100.0 * ak1 as f64 / a1 as f64
            ));
        }
        let direct = !flipped.is_empty() || agreement_drop;
        let severity = if flipped.len() > 1 || r0 - r1 >= 2.0 * c.min_pass_rate_drop {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let rate = if n0 > 0 {
            format!(
                "pass rate {:.0} % → {:.0} % (n={n1})",
                100.0 * r0,
                100.0 * r1
            )
        } else {
            format!("pass rate {:.0} % (n={n1}; no baseline runs)", 100.0 * r1)
        };
        // The reason comes first: a flipped case in a suite whose pass rate
        // did not fall must not read as a pass-rate regression.
        let summary = if reasons.is_empty() {
            format!("{target}: {rate}")
        } else {
            format!("{target}: {} ({rate})", reasons.join("; "))
        };
        out.push(verdict(
            Subject {
                rule: Rule::CanaryRegression,
                stream: &stream,
                dimension: Some(target),
                at_ms: w.now_ms,
                samples: n1,
                baseline_samples: n0,
            },
            Decision {
                value: r1,
                baseline: r0,
                threshold: c.min_pass_rate_drop,
                p_value: p_pass,
                severity,
                window_effect: rate_effect,
                direct,
                resolve: !(direct || n0 > 0 && r0 - r1 >= 0.5 * c.min_pass_rate_drop),
                alpha: cfg.alpha,
                summary,
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Status;
    use crate::signals::window::HOUR_MS;

    const NOW: i64 = 5_000 * HOUR_MS;

    /// Hourly runs of `cases` cases on pinned and live for 8 days; `fail`
    /// decides a live outcome from (case, hours before now).
    fn runs(cases: usize, fail: impl Fn(usize, i64) -> bool) -> Vec<CanaryObs> {
        let mut out = Vec::new();
        for ago in (0..192).rev() {
            for case in 0..cases {
                for target in ["pinned", "live"] {
                    let failed = target == "live" && fail(case, ago);
                    out.push(CanaryObs {
                        run_id: 192 - ago,
                        case_id: format!("case-{case}"),
                        target: target.into(),
                        outcome: if failed { "fail" } else { "pass" }.into(),
                        agrees_with_pinned: (target == "live").then_some(!failed),
                        at_ms: NOW - ago * HOUR_MS - 1,
                    });
                }
            }
        }
        out
    }

    fn eval(obs: &[CanaryObs]) -> Vec<Verdict> {
        let cfg = DetectorConfig::default();
        let mut v = canary_regression("refunds", obs, &Windows::new(NOW, &cfg), &cfg);
        for x in &mut v {
            x.resolve(x.finding.p_value.is_some_and(|p| p < cfg.alpha));
        }
        v
    }

    #[test]
    fn a_new_suite_without_baseline_runs_says_so() {
        // Only the last 5 hours exist (a suite added today); case 1 flips.
        let recent: Vec<CanaryObs> = runs(3, |case, ago| case == 1 && ago == 0)
            .into_iter()
            .filter(|o| o.at_ms > NOW - 5 * HOUR_MS)
            .collect();
        let v = eval(&recent);
        let live = v
            .iter()
            .find(|x| x.finding.dimension.as_deref() == Some("live"))
            .unwrap();
        assert_eq!(live.finding.status, Status::Firing, "{:?}", live.finding);
        assert!(
            live.finding.summary.contains("no baseline runs")
                && !live.finding.summary.contains("NaN"),
            "{}",
            live.finding.summary
        );
    }

    #[test]
    fn steady_flaky_cases_give_no_verdict() {
        // One case fails every fifth run throughout: flaky, not a regression.
        let v = eval(&runs(5, |case, ago| case == 0 && ago % 5 == 0));
        assert!(v.iter().all(|x| x.finding.status == Status::Ok), "{v:?}");
    }

    #[test]
    fn a_case_that_passed_and_now_fails_fires_for_live_only() {
        let v = eval(&runs(5, |case, ago| case == 2 && ago < 2));
        let live = v
            .iter()
            .find(|x| x.finding.dimension.as_deref() == Some("live"))
            .unwrap();
        let pinned = v
            .iter()
            .find(|x| x.finding.dimension.as_deref() == Some("pinned"))
            .unwrap();
        assert_eq!(live.finding.status, Status::Firing, "{:?}", live.finding);
        assert!(live.finding.summary.contains("case-2"));
        assert_eq!(pinned.finding.status, Status::Ok);
        assert_eq!(live.finding.stream, "suite:refunds");
    }

    #[test]
    fn no_runs_in_the_window_is_insufficient_data() {
        let obs: Vec<CanaryObs> = runs(3, |_, _| false)
            .into_iter()
            .filter(|o| o.at_ms < NOW - 30 * HOUR_MS)
            .collect();
        assert!(
            eval(&obs)
                .iter()
                .all(|x| x.finding.status == Status::InsufficientData)
        );
    }
}
