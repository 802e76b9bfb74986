//! Silences: matchers with an end time that mute notifications.
//!
//! A silence never stops detection: the lifecycle still moves alerts between
//! states and stores them; only the notification step skips silenced alerts.
//! A firing alert that was silenced and is still firing when the silence
//! ends is notified then (it was never notified). Its resolve notice is sent
//! only if its firing was notified: nobody needs to hear "resolved" about an
//! alert they never heard of.

use super::route::{Labels, matches};
use crate::store::SilenceRow;

/// True when `silence` is in force at `now_ms` and matches these labels.
pub fn silences(silence: &SilenceRow, labels: Labels<'_>, now_ms: i64) -> bool {
    silence.starts_ms <= now_ms
        && now_ms < silence.ends_ms
        && matches(silence.rule.as_deref(), labels.rule)
        && matches(silence.stream.as_deref(), labels.stream)
        && matches(silence.severity.as_deref(), labels.severity)
}

/// The first silence muting these labels, if any.
pub fn find<'a>(all: &'a [SilenceRow], labels: Labels<'_>, now_ms: i64) -> Option<&'a SilenceRow> {
    all.iter().find(|s| silences(s, labels, now_ms))
}

/// Checks a silence's matchers: at least one, and exact rule/severity
/// values must exist (a typo would silently mute nothing).
pub fn check_matchers(
    rule: Option<&str>,
    stream: Option<&str>,
    severity: Option<&str>,
) -> Result<(), String> {
    if rule.is_none() && stream.is_none() && severity.is_none() {
        return Err(
            "give at least one of rule, stream, severity (stream \"*\" mutes everything)".into(),
        );
    }
    if let Some(s) = severity
        && !s.contains(['*', '?'])
        && !["info", "warning", "critical"].contains(&s)
    {
        return Err(format!(
            "severity must be info, warning or critical, got {s:?}"
        ));
    }
    if let Some(r) = rule
        && !r.contains(['*', '?'])
        && crate::signals::Rule::parse(r).is_none()
    {
        let names: Vec<&str> = crate::signals::Rule::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        return Err(format!(
            "unknown rule {r:?}; rules are {}",
            names.join(", ")
        ));
    }
    Ok(())
}

/// Parses `--until`: a duration from now (`2h`, `30m`) or an RFC 3339 time.
pub fn parse_until(s: &str, now_ms: i64) -> Option<i64> {
    if let Some(d) = crate::duration::parse_duration(s) {
        return Some(now_ms + i64::try_from(d.as_millis()).ok()?);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(stream: Option<&str>, ends_ms: i64) -> SilenceRow {
        SilenceRow {
            id: 1,
            rule: None,
            stream: stream.map(String::from),
            severity: None,
            starts_ms: 0,
            ends_ms,
            comment: String::new(),
            created_by: String::new(),
            created_ms: 0,
        }
    }

    #[test]
    fn matchers_and_time() {
        let l = Labels {
            rule: "length_drift",
            stream: "support-bot",
            severity: "warning",
        };
        assert!(silences(&silence(Some("support-*"), 100), l, 50));
        assert!(
            !silences(&silence(Some("support-*"), 100), l, 100),
            "ends is exclusive"
        );
        assert!(!silences(&silence(Some("sales"), 100), l, 50));
        assert!(silences(&silence(None, 100), l, 0));
    }

    #[test]
    fn until() {
        assert_eq!(parse_until("2h", 1000), Some(1000 + 7_200_000));
        assert_eq!(
            parse_until("2026-01-01T00:00:00Z", 0),
            Some(1_767_225_600_000)
        );
        assert_eq!(parse_until("tomorrow", 0), None);
    }
}
