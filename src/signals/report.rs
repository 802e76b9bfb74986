//! The status report behind `canaryd status` and `GET /api/v1/status`: per
//! stream and suite, the health score, every detector's current verdict
//! (value, baseline, threshold, status), the state of its alert, and what
//! is firing. A verdict can be `ok` while its alert still fires — the
//! hysteresis holds it until the effect has fallen clearly back and stayed
//! there — so what a person reads ([`shown`]) is the alert's state when one
//! is open: "firing (recovering)", never a bare "ok".

use std::collections::BTreeMap;

use serde::Serialize;

use super::finding::{Finding, Status};
use super::health::health_scores;
use super::{DetectorConfig, QuietKey, fmt_time};

/// The state (`pending` or `firing`) of every open alert, by its key
/// (rule, stream, dimension).
pub type OpenAlerts = BTreeMap<QuietKey, String>;

/// What a person reads for one detector: a state (the CSS class of the
/// pages: `firing`, `pending`, `ok`, `warming_up`, `insufficient_data`) and
/// a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub state: &'static str,
    pub label: String,
}

/// The verdict, unless its alert is open and the verdict no longer fires:
/// then the alert's state, with why they differ ("firing (recovering)": the
/// effect is below the threshold but not yet clearly back for
/// `resolve_after_hours`; "firing (warming up)" or "(insufficient data)":
/// the detector cannot say, and the alert keeps its state).
pub fn shown(status: Status, alert: Option<&str>) -> Shown {
    let why = match status {
        Status::Firing => None,
        Status::Ok => Some("recovering"),
        Status::WarmingUp => Some("warming up"),
        Status::InsufficientData => Some("insufficient data"),
    };
    match (alert, why) {
        (Some(a @ ("firing" | "pending")), Some(why)) => Shown {
            state: if a == "firing" { "firing" } else { "pending" },
            label: format!("{a} ({why})"),
        },
        _ => Shown {
            state: status.as_str(),
            label: status.as_str().replace('_', " "),
        },
    }
}

/// One detector in the report: its finding (flattened, as before) and the
/// state of its alert.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorStatus {
    #[serde(flatten)]
    pub finding: Finding,
    /// `pending` or `firing` while the detector's alert is open, else null.
    pub alert: Option<String>,
    /// What to show: the verdict, or the open alert's state when they differ.
    pub shown: Shown,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub at: String,
    pub at_ms: i64,
    pub window_hours: u32,
    pub baseline_days: u32,
    pub subjects: Vec<SubjectStatus>,
}

/// One stream or suite (`suite:<name>`).
#[derive(Debug, Clone, Serialize)]
pub struct SubjectStatus {
    pub stream: String,
    pub health: f64,
    /// Findings that fire, and those whose alert still fires (recovering).
    pub firing: Vec<Finding>,
    pub detectors: Vec<DetectorStatus>,
}

/// Groups `findings` by subject with their health scores and the states of
/// their open alerts.
pub fn build(
    findings: Vec<Finding>,
    open: &OpenAlerts,
    now_ms: i64,
    cfg: &DetectorConfig,
) -> StatusReport {
    let health = health_scores(&findings, &cfg.health);
    let mut by: BTreeMap<String, Vec<DetectorStatus>> = BTreeMap::new();
    for f in findings {
        let alert = open
            .get(&(f.rule, f.stream.clone(), f.dimension.clone()))
            .cloned();
        by.entry(f.stream.clone())
            .or_default()
            .push(DetectorStatus {
                shown: shown(f.status, alert.as_deref()),
                alert,
                finding: f,
            });
    }
    StatusReport {
        at: fmt_time(now_ms),
        at_ms: now_ms,
        window_hours: cfg.window_hours,
        baseline_days: cfg.baseline_days,
        subjects: by
            .into_iter()
            .map(|(stream, detectors)| SubjectStatus {
                health: health.get(&stream).copied().unwrap_or(100.0),
                firing: detectors
                    .iter()
                    .filter(|d| d.shown.state == "firing")
                    .map(|d| d.finding.clone())
                    .collect(),
                stream,
                detectors,
            })
            .collect(),
    }
}

/// The report as a person reads it.
pub fn render_text(r: &StatusReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "status at {} (window {} h, baseline {} d)",
        r.at, r.window_hours, r.baseline_days
    );
    if r.subjects.is_empty() {
        let _ = writeln!(s, "no streams or suites with data yet");
    }
    for subj in &r.subjects {
        let _ = writeln!(
            s,
            "\n{}  health {:.0}/100{}",
            subj.stream,
            subj.health,
            if subj.firing.is_empty() {
                String::new()
            } else {
                format!("  — {} firing", subj.firing.len())
            }
        );
        for d in &subj.detectors {
            let f = &d.finding;
            let status = match (f.status, d.shown.state) {
                (Status::Firing, _) => format!("FIRING ({})", f.severity.as_str()),
                (_, "firing") => format!("FIRING {}", d.shown.label.trim_start_matches("firing ")),
                _ => d.shown.label.clone(),
            };
            let name = match &f.dimension {
                Some(d) => format!("{}[{d}]", f.rule.as_str()),
                None => f.rule.as_str().to_string(),
            };
            let _ = writeln!(s, "  {name:<40} {status:<20} {}", f.summary);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{Rule, Severity};

    fn finding(status: Status) -> Finding {
        Finding {
            rule: Rule::JudgeScoreDrop,
            stream: "s".into(),
            dimension: Some("groundedness".into()),
            status,
            severity: Severity::Warning,
            at_ms: 0,
            value: 3.6,
            baseline: 3.8,
            threshold: 0.3,
            p_value: None,
            samples: 100,
            baseline_samples: 1000,
            summary: "groundedness 3.80 → 3.60 over the recent hours".into(),
            resolve: false,
        }
    }

    #[test]
    fn an_ok_verdict_whose_alert_still_fires_reads_firing_recovering() {
        let key = (
            Rule::JudgeScoreDrop,
            "s".to_string(),
            Some("groundedness".to_string()),
        );
        let open: OpenAlerts = [(key, "firing".to_string())].into();
        let r = build(
            vec![finding(Status::Ok)],
            &open,
            0,
            &DetectorConfig::default(),
        );
        let d = &r.subjects[0].detectors[0];
        assert_eq!(d.shown.label, "firing (recovering)");
        assert_eq!(d.alert.as_deref(), Some("firing"));
        assert_eq!(r.subjects[0].firing.len(), 1, "still firing");
        let text = render_text(&r);
        assert!(text.contains("FIRING (recovering)"), "{text}");
        assert!(!text.contains(" ok "), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        let j = &json["subjects"][0]["detectors"][0];
        assert_eq!(
            (j["status"].as_str(), j["alert"].as_str()),
            (Some("ok"), Some("firing"))
        );
        assert_eq!(j["shown"]["label"], "firing (recovering)");

        // Without an open alert, ok is ok.
        let r = build(
            vec![finding(Status::Ok)],
            &OpenAlerts::new(),
            0,
            &DetectorConfig::default(),
        );
        assert_eq!(r.subjects[0].detectors[0].shown.label, "ok");
        assert!(r.subjects[0].firing.is_empty());
    }

    #[test]
    fn every_combination_is_labelled() {
        assert_eq!(shown(Status::Firing, Some("firing")).label, "firing");
        assert_eq!(shown(Status::Firing, None).label, "firing");
        assert_eq!(
            shown(Status::WarmingUp, Some("firing")).label,
            "firing (warming up)"
        );
        assert_eq!(
            shown(Status::InsufficientData, Some("pending")),
            Shown {
                state: "pending",
                label: "pending (insufficient data)".into()
            }
        );
        assert_eq!(
            shown(Status::InsufficientData, None).label,
            "insufficient data"
        );
        assert_eq!(shown(Status::Ok, Some("resolved")).label, "ok");
    }
}
