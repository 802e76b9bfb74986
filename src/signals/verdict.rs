//! What one detector returns before false-discovery control: the finding
//! plus how it may fire. Production detectors fire on a sequential alarm
//! whose estimated effect reaches the threshold (`direct`); the canary pass
//! rate is a window test that fires only if its effect reaches the threshold
//! *and* its p-value survives Benjamini–Hochberg across everything evaluated
//! together.

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
        if matches!(
            self.finding.status,
            Status::InsufficientData | Status::WarmingUp
        ) {
            return;
        }
        let firing = self.direct || (self.window_effect && window_significant);
        self.finding.status = if firing { Status::Firing } else { Status::Ok };
    }

    /// A verdict with nothing to say yet (`status` InsufficientData or
    /// WarmingUp). Value and baseline are NaN: unknown, never a number that
    /// could be read as a measurement (alerts store them as unknown).
    pub fn unknown(status: Status, subject: Subject<'_>, threshold: f64, why: String) -> Verdict {
        Verdict {
            finding: Finding {
                rule: subject.rule,
                stream: subject.stream.to_string(),
                dimension: subject.dimension.map(str::to_string),
                status,
                severity: Severity::Info,
                at_ms: subject.at_ms,
                value: f64::NAN,
                baseline: f64::NAN,
                threshold,
                p_value: None,
                samples: subject.samples,
                baseline_samples: subject.baseline_samples,
                summary: why,
                resolve: false,
            },
            window_effect: false,
            direct: false,
        }
    }

    pub fn insufficient(subject: Subject<'_>, threshold: f64, why: String) -> Verdict {
        Verdict::unknown(Status::InsufficientData, subject, threshold, why)
    }

    pub fn warming_up(subject: Subject<'_>, threshold: f64, why: String) -> Verdict {
        Verdict::unknown(Status::WarmingUp, subject, threshold, why)
    }
}

/// What a verdict is about, and the sample sizes behind it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub rule: Rule,
    pub stream: &'a str,
    pub dimension: Option<&'a str>,
    pub at_ms: i64,
    pub samples: u64,
    pub baseline_samples: u64,
}

/// How a detector decided: the parts of a [`Verdict`].
#[derive(Debug, Clone)]
pub struct Decision {
    /// The estimate shown to people: for a sequential alarm, the mean or
    /// rate since the change point, never a diluted window value.
    pub value: f64,
    pub baseline: f64,
    pub threshold: f64,
    pub p_value: Option<f64>,
    pub severity: Severity,
    /// Window effect reaches the threshold (fires with BH significance).
    pub window_effect: bool,
    /// Fires on its own (sequential alarm with the effect at the threshold).
    pub direct: bool,
    /// The recent effect is below the resolve level.
    pub resolve: bool,
    /// Uncorrected level for the provisional status.
    pub alpha: f64,
    pub summary: String,
}

/// A finding with the usual fields; status is provisional (uncorrected alpha)
/// until [`Verdict::resolve`].
pub fn verdict(s: Subject<'_>, d: Decision) -> Verdict {
    let significant = d.p_value.is_some_and(|p| p < d.alpha);
    let firing = d.direct || (d.window_effect && significant);
    Verdict {
        finding: Finding {
            rule: s.rule,
            stream: s.stream.to_string(),
            dimension: s.dimension.map(str::to_string),
            status: if firing { Status::Firing } else { Status::Ok },
            severity: d.severity,
            at_ms: s.at_ms,
            value: d.value,
            baseline: d.baseline,
            threshold: d.threshold,
            p_value: d.p_value,
            samples: s.samples,
            baseline_samples: s.baseline_samples,
            summary: d.summary,
            resolve: d.resolve && !firing,
        },
        window_effect: d.window_effect,
        direct: d.direct,
    }
}
