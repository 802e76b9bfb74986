//! `model_change`: the `response_model` or `system_fingerprint` answering
//! for a requested model changed within the window. Informational on its
//! own (providers roll fingerprints routinely); `evaluate` raises it to a
//! warning when another detector fires for the same stream.

use std::collections::BTreeMap;

use super::finding::{Rule, Severity};
use super::verdict::{Decision, Subject, Verdict, verdict};
use super::window::{Windows, contains};

/// A recorded change of model identity (stored by `store/models.rs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelEvent {
    pub id: i64,
    pub at_ms: i64,
    pub scope: String,
    pub requested_model: String,
    pub old_model: Option<String>,
    pub new_model: Option<String>,
    pub old_fingerprint: Option<String>,
    pub new_fingerprint: Option<String>,
}

impl ModelEvent {
    /// What answered before the change, as a person names it: the model,
    /// else its fingerprint, else `?`.
    pub fn before(&self) -> String {
        identity(&self.old_model, &self.old_fingerprint)
    }

    /// What answers after the change (see [`ModelEvent::before`]).
    pub fn after(&self) -> String {
        identity(&self.new_model, &self.new_fingerprint)
    }
}

fn identity(model: &Option<String>, fingerprint: &Option<String>) -> String {
    model
        .clone()
        .or_else(|| fingerprint.clone())
        .unwrap_or_else(|| "?".into())
}

/// The stream a model-event scope belongs to: `stream:<name>` → `<name>`,
/// `suite:<suite>:<target>` → `suite:<suite>` (dimension: the target).
pub fn scope_subject(scope: &str, requested_model: &str) -> (String, String) {
    if let Some(s) = scope.strip_prefix("stream:") {
        return (s.to_string(), requested_model.to_string());
    }
    if let Some(rest) = scope.strip_prefix("suite:")
        && let Some((suite, target)) = rest.rsplit_once(':')
    {
        return (format!("suite:{suite}"), target.to_string());
    }
    (scope.to_string(), requested_model.to_string())
}

/// One verdict per (stream, dimension) with events in the window or the
/// baseline; `subjects` get an "ok" verdict when nothing changed for them.
pub fn model_change(events: &[ModelEvent], subjects: &[String], w: &Windows) -> Vec<Verdict> {
    let mut groups: BTreeMap<(String, String), (Vec<&ModelEvent>, u64)> = BTreeMap::new();
    for e in events {
        let key = scope_subject(&e.scope, &e.requested_model);
        let g = groups.entry(key).or_default();
        if contains(w.current, e.at_ms) && e.at_ms <= w.now_ms {
            g.0.push(e);
        } else if contains(w.baseline, e.at_ms) {
            g.1 += 1;
        }
    }
    let mut out = Vec::new();
    for ((stream, dim), (recent, before)) in &groups {
        let summary = match recent.last() {
            Some(e) => format!(
                "{}: {} → {}{}",
                e.requested_model,
                e.old_model.as_deref().unwrap_or("?"),
                e.new_model.as_deref().unwrap_or("?"),
                match (&e.old_fingerprint, &e.new_fingerprint) {
                    (Some(a), Some(b)) if a != b => format!(" (fingerprint {a} → {b})"),
                    _ => String::new(),
                }
            ),
            None => format!("{dim}: no change in the window"),
        };
        out.push(verdict(
            Subject {
                rule: Rule::ModelChange,
                stream,
                dimension: Some(dim),
                at_ms: w.now_ms,
                samples: recent.len() as u64,
                baseline_samples: *before,
            },
            Decision {
                value: recent.len() as f64,
                baseline: *before as f64,
                threshold: 1.0,
                p_value: None,
                severity: Severity::Info,
                window_effect: false,
                direct: !recent.is_empty(),
                resolve: true,
                alpha: 0.0,
                summary,
            },
        ));
    }
    for s in subjects {
        if !groups.keys().any(|(g, _)| g == s) {
            out.push(verdict(
                Subject {
                    rule: Rule::ModelChange,
                    stream: s,
                    dimension: None,
                    at_ms: w.now_ms,
                    samples: 0,
                    baseline_samples: 0,
                },
                Decision {
                    value: 0.0,
                    baseline: 0.0,
                    threshold: 1.0,
                    p_value: None,
                    severity: Severity::Info,
                    window_effect: false,
                    direct: false,
                    resolve: true,
                    alpha: 0.0,
                    summary: "no model change seen".into(),
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::window::HOUR_MS;
    use crate::signals::{DetectorConfig, Status};

    fn event(scope: &str, at_ms: i64) -> ModelEvent {
        ModelEvent {
            id: 1,
            at_ms,
            scope: scope.into(),
            requested_model: "gpt-4o".into(),
            old_model: Some("gpt-4o-2024-08-06".into()),
            new_model: Some("gpt-4o-2024-11-20".into()),
            old_fingerprint: None,
            new_fingerprint: None,
        }
    }

    #[test]
    fn a_recent_change_is_informational_and_an_old_one_is_not_reported() {
        let now = 100 * HOUR_MS;
        let w = Windows::new(now, &DetectorConfig::default());
        let v = model_change(
            &[
                event("stream:bot", now - HOUR_MS),
                event("suite:refunds:live", now - 48 * HOUR_MS),
            ],
            &["bot".into(), "quiet".into()],
            &w,
        );
        let bot = v.iter().find(|x| x.finding.stream == "bot").unwrap();
        assert_eq!(bot.finding.status, Status::Firing);
        assert_eq!(bot.finding.severity, Severity::Info);
        let suite = v
            .iter()
            .find(|x| x.finding.stream == "suite:refunds")
            .unwrap();
        assert_eq!(suite.finding.status, Status::Ok);
        assert_eq!(suite.finding.dimension.as_deref(), Some("live"));
        assert_eq!(
            v.iter()
                .find(|x| x.finding.stream == "quiet")
                .unwrap()
                .finding
                .status,
            Status::Ok
        );
    }
}
