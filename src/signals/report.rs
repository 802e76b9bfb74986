//! The status report behind `canaryd status` and `GET /api/v1/status`: per
//! stream and suite, the health score, every detector's current verdict
//! (value, baseline, threshold, status) and what is firing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::finding::{Finding, Status};
use super::health::health_scores;
use super::{DetectorConfig, fmt_time};

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
    pub firing: Vec<Finding>,
    pub detectors: Vec<Finding>,
}

/// Groups `findings` by subject with their health scores.
pub fn build(findings: Vec<Finding>, now_ms: i64, cfg: &DetectorConfig) -> StatusReport {
    let health = health_scores(&findings, &cfg.health);
    let mut by: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    for f in findings {
        by.entry(f.stream.clone()).or_default().push(f);
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
                    .filter(|f| f.status == Status::Firing)
                    .cloned()
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
        for f in &subj.detectors {
            let status = match f.status {
                Status::Firing => format!("FIRING ({})", f.severity.as_str()),
                Status::Ok => "ok".into(),
                Status::InsufficientData => "insufficient data".into(),
                Status::WarmingUp => "warming up".into(),
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
