//! The health score: 0–100 per stream (and suite). Each rule that fires
//! takes its configured weight off 100 — once per rule however many
//! dimensions fire, a warning in full, a critical finding one and a half
//! times, an informational one (a lone model change) not at all. A stream
//! where nothing fires scores 100, including one with insufficient data:
//! the score measures evidence of trouble, not coverage.

use std::collections::BTreeMap;

use super::finding::{Finding, Rule, Severity, Status};
use super::settings::HealthWeights;

/// Health per stream named in `findings`.
pub fn health_scores(findings: &[Finding], weights: &HealthWeights) -> BTreeMap<String, f64> {
    let mut penalty: BTreeMap<&str, BTreeMap<Rule, f64>> = BTreeMap::new();
    for f in findings {
        let p = penalty.entry(&f.stream).or_default();
        let factor = match (f.status, f.severity) {
            (Status::Firing, Severity::Warning) => 1.0,
            (Status::Firing, Severity::Critical) => 1.5,
            _ => 0.0,
        };
        let e = p.entry(f.rule).or_insert(0.0);
        *e = e.max(factor * weights.of(f.rule));
    }
    penalty
        .into_iter()
        .map(|(s, rules)| {
            (
                s.to_string(),
                (100.0 - rules.values().sum::<f64>()).clamp(0.0, 100.0),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(stream: &str, rule: Rule, status: Status, severity: Severity) -> Finding {
        Finding {
            rule,
            stream: stream.into(),
            dimension: None,
            status,
            severity,
            at_ms: 0,
            value: 0.0,
            baseline: 0.0,
            threshold: 0.0,
            p_value: None,
            samples: 0,
            baseline_samples: 0,
            summary: String::new(),
            resolve: true,
        }
    }

    #[test]
    fn weights_come_off_100_once_per_rule() {
        let w = HealthWeights::default();
        let h = health_scores(
            &[
                f("a", Rule::JudgeScoreDrop, Status::Firing, Severity::Warning),
                f("a", Rule::JudgeScoreDrop, Status::Firing, Severity::Warning),
                f("a", Rule::ModelChange, Status::Firing, Severity::Info),
                f(
                    "a",
                    Rule::RefusalRateShift,
                    Status::Firing,
                    Severity::Critical,
                ),
                f(
                    "b",
                    Rule::LengthDrift,
                    Status::InsufficientData,
                    Severity::Info,
                ),
            ],
            &w,
        );
        assert_eq!(
            h["a"],
            100.0 - w.judge_score_drop - 1.5 * w.refusal_rate_shift
        );
        assert_eq!(h["b"], 100.0);
    }
}
