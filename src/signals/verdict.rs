//! What one detector returns before false-discovery control: the finding
//! plus how it may fire. A window test fires only if its effect is large
//! enough *and* its p-value survives Benjamini–Hochberg across everything
//! evaluated together; a sequential alarm or deterministic evidence (a
//! canary case flipping, a recorded model change) fires on its own.

use super::finding::{Finding, Rule, Severity, Status};

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub finding: Finding,
    /// The window effect reaches the configured threshold (needs significance too).
    pub window_effect: bool,
    /// Fires regardless of the window test (sequential alarm, canary flip, model event).
    pub direct: bool,
}

impl Verdict {
    /// Sets the status from the FDR-corrected window decision.
    pub fn resolve(&mut self, window_significant: bool) {
        if self.finding.status == Status::InsufficientData {
            return;
        }
        let firing = self.direct || (self.window_effect && window_significant);
        self.finding.status = if firing { Status::Firing } else { Status::Ok };
    }

    /// A verdict with nothing to say yet (value and baseline 0: JSON has no NaN).
    #[allow(clippy::too_many_arguments)]
    pub fn insufficient(
        rule: Rule,
        stream: &str,
        dimension: Option<&str>,
        at_ms: i64,
        threshold: f64,
        samples: u64,
        baseline_samples: u64,
        why: String,
    ) -> Verdict {
        Verdict {
            finding: Finding {
                rule,
                stream: stream.to_string(),
                dimension: dimension.map(str::to_string),
                status: Status::InsufficientData,
                severity: Severity::Info,
                at_ms,
                value: 0.0,
                baseline: 0.0,
                threshold,
                p_value: None,
                samples,
                baseline_samples,
                summary: why,
            },
            window_effect: false,
            direct: false,
        }
    }
}

/// A finding with the usual fields; status is provisional (uncorrected alpha)
/// until [`Verdict::resolve`].
#[allow(clippy::too_many_arguments)]
pub fn verdict(
    rule: Rule,
    stream: &str,
    dimension: Option<&str>,
    at_ms: i64,
    (value, baseline, threshold): (f64, f64, f64),
    p_value: Option<f64>,
    (samples, baseline_samples): (u64, u64),
    severity: Severity,
    window_effect: bool,
    direct: bool,
    alpha: f64,
    summary: String,
) -> Verdict {
    let significant = p_value.is_some_and(|p| p < alpha);
    let firing = direct || (window_effect && significant);
    Verdict {
        finding: Finding {
            rule,
            stream: stream.to_string(),
            dimension: dimension.map(str::to_string),
            status: if firing { Status::Firing } else { Status::Ok },
            severity,
            at_ms,
            value,
            baseline,
            threshold,
            p_value,
            samples,
            baseline_samples,
            summary,
        },
        window_effect,
        direct,
    }
}
