//! Change annotations: deployment events (a deploy, a prompt change, an
//! index refresh, a tool schema change, a model update) that a person or a
//! pipeline records so the charts show them and an alert can say "this
//! started 12 min after `deploy v2.3`".
//!
//! Validation lives here, not in the API or the CLI, so both refuse the
//! same input with the same words. What "near" means for an alert is here
//! too, as a pure function.

/// Longest text accepted, in bytes: enough for a commit subject and a
/// link, small enough that a page of them stays cheap to render and mail.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Longest stream name accepted.
pub const MAX_STREAM_BYTES: usize = 200;
/// The stream value that applies an annotation to every stream.
pub const ALL_STREAMS: &str = "*";

/// An alert cites annotations from this long before its first pending time:
/// detectors compare windows of an hour or more, so a change usually
/// precedes the first firing evaluation by up to about that much.
pub const NEAR_BEFORE_MS: i64 = 2 * 3_600_000;
/// ... and up to this long after it: a pipeline that records its deploy a
/// few minutes late still gets cited.
pub const NEAR_AFTER_MS: i64 = 5 * 60_000;
/// Most annotations cited by one notification (the latest ones).
pub const MAX_CITED: usize = 5;

/// What changed.
pub const KINDS: [&str; 5] = ["deploy", "prompt", "index", "tool", "model"];
/// Who recorded it.
pub const SOURCES: [&str; 3] = ["api", "cli", "auto"];

/// One stored annotation. The store reads and writes it as it is (this
/// module is below the store, which imports the domain types it stores).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Annotation {
    pub id: i64,
    /// A stream name, or `*` for every stream.
    pub stream: String,
    pub kind: String,
    pub text: String,
    pub ts_ms: i64,
    pub source: String,
    pub created_ms: i64,
}

/// Why an annotation was refused; the message is shown to the client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Checks a new annotation's fields; returns the text trimmed.
pub fn validate(stream: &str, kind: &str, text: &str) -> Result<String, Invalid> {
    let stream = stream.trim();
    if stream.is_empty() {
        return Err(Invalid(
            "stream must be a stream name, or \"*\" for all streams".into(),
        ));
    }
    if stream.len() > MAX_STREAM_BYTES || stream.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "stream must be at most {MAX_STREAM_BYTES} bytes without control characters"
        )));
    }
    if !KINDS.contains(&kind) {
        return Err(Invalid(format!(
            "kind must be one of {}, got {kind:?}",
            KINDS.join(", ")
        )));
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(Invalid("text must not be empty".into()));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Invalid(format!(
            "text is {} bytes; at most {MAX_TEXT_BYTES} are accepted",
            text.len()
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Invalid(
            "text must not contain control characters other than newline and tab".into(),
        ));
    }
    Ok(text.to_string())
}

/// The stream an identity scope belongs to: `stream:NAME` → `NAME`,
/// `suite:SUITE:TARGET` → `suite:SUITE` (the name its alerts carry).
pub fn stream_of_scope(scope: &str) -> String {
    if let Some(name) = scope.strip_prefix("stream:") {
        return name.to_string();
    }
    match scope
        .strip_prefix("suite:")
        .and_then(|r| r.rsplit_once(':'))
    {
        Some((suite, _target)) => format!("suite:{suite}"),
        None => scope.to_string(),
    }
}

/// The text of the annotation recorded by itself for a model change seen
/// in the answers, cut to [`MAX_TEXT_BYTES`] like any other.
pub fn model_change_text(requested: &str, old: Option<&str>, new: Option<&str>) -> String {
    let t = format!(
        "{requested}: {} → {} (seen in the answers)",
        old.unwrap_or("?"),
        new.unwrap_or("?")
    );
    crate::text::truncate(&t, MAX_TEXT_BYTES / 4)
}

/// The text of the annotation recorded by itself when a stream's traffic
/// shows a prompt version for the first time (`previous`: the version seen
/// most recently before it). Control characters become spaces and the text
/// is cut like any other, since versions are the application's labels.
pub fn prompt_version_text(version: &str, previous: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let t = format!(
        "prompt version {} first seen in traffic (after {})",
        clean(version),
        clean(previous)
    );
    crate::text::truncate(&t, MAX_TEXT_BYTES / 4)
}

/// True for the annotations the daemon records itself for a model change:
/// alerts and charts already show model changes, so these are listed but
/// not cited or drawn a second time.
pub fn is_auto_model(a: &Annotation) -> bool {
    a.source == "auto" && a.kind == "model"
}

/// Parses the time of a change: an RFC 3339 time, or a duration ago
/// (`15m` = fifteen minutes before `now_ms`). Times more than a day in the
/// future are refused: they are a typo, and would be cited by nothing.
pub fn parse_at(s: &str, now_ms: i64) -> Result<i64, Invalid> {
    let s = s.trim();
    let at = if let Some(d) = crate::duration::parse_duration(s) {
        i64::try_from(d.as_millis())
            .ok()
            .map(|d| now_ms.saturating_sub(d))
    } else {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    };
    match at {
        Some(t) if t <= now_ms + 24 * 3_600_000 => Ok(t),
        Some(_) => Err(Invalid(format!(
            "at {s:?} is more than a day in the future"
        ))),
        None => Err(Invalid(format!(
            "at {s:?}: use an RFC 3339 time (2026-12-01T21:40:00Z) or a duration ago (15m)"
        ))),
    }
}

/// The annotations an alert whose episode began at `pending_ms` cites: those
/// in `[pending_ms - NEAR_BEFORE_MS, pending_ms + NEAR_AFTER_MS]`, latest
/// first, at most [`MAX_CITED`]. `all` may hold others; they are skipped,
/// as are the automatic model-change ones (the message has its model events).
pub fn near(all: &[Annotation], pending_ms: i64) -> Vec<Annotation> {
    let mut out: Vec<Annotation> = all
        .iter()
        .filter(|a| !is_auto_model(a))
        .filter(|a| {
            a.ts_ms >= pending_ms.saturating_sub(NEAR_BEFORE_MS)
                && a.ts_ms <= pending_ms.saturating_add(NEAR_AFTER_MS)
        })
        .cloned()
        .collect();
    out.sort_by_key(|a| std::cmp::Reverse((a.ts_ms, a.id)));
    out.truncate(MAX_CITED);
    out
}

/// "12 min before", "3 min after", "at the same time" — the annotation's
/// time relative to the start of the change.
pub fn relative(ts_ms: i64, start_ms: i64) -> String {
    let d = start_ms - ts_ms;
    let mins = d.abs() / 60_000;
    let amount = if mins >= 120 {
        format!("{} h", mins / 60)
    } else {
        format!("{mins} min")
    };
    match d {
        d if d.abs() < 60_000 => "at the start".into(),
        d if d > 0 => format!("{amount} before the start"),
        _ => format!("{amount} after the start"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(id: i64, ts_ms: i64) -> Annotation {
        Annotation {
            id,
            stream: "s".into(),
            kind: "deploy".into(),
            text: format!("v{id}"),
            ts_ms,
            source: "api".into(),
            created_ms: ts_ms,
        }
    }

    #[test]
    fn validation_names_the_field_and_what_was_expected() {
        assert_eq!(validate(" s ", "deploy", " v2 ").unwrap(), "v2");
        assert!(validate("*", "model", "x").is_ok());
        let e = validate("s", "release", "x").unwrap_err().0;
        assert!(e.contains("kind must be one of deploy, prompt") && e.contains("release"));
        let e = validate("s", "deploy", &"a".repeat(MAX_TEXT_BYTES + 1))
            .unwrap_err()
            .0;
        assert!(e.contains("1025 bytes") && e.contains("1024"), "{e}");
        assert!(validate("s", "deploy", &"a".repeat(MAX_TEXT_BYTES)).is_ok());
        assert!(
            validate("", "deploy", "x")
                .unwrap_err()
                .0
                .contains("stream")
        );
        assert!(
            validate("s", "deploy", "  ")
                .unwrap_err()
                .0
                .contains("empty")
        );
        assert!(validate("s", "deploy", "a\u{1b}[31m").is_err());
        assert!(validate("s", "deploy", "line\nline").is_ok());
    }

    #[test]
    fn near_is_two_hours_before_to_five_minutes_after() {
        let start = 10 * 3_600_000;
        let all = [
            ann(1, start - NEAR_BEFORE_MS - 1),
            ann(2, start - NEAR_BEFORE_MS),
            ann(3, start - 60_000),
            ann(4, start + NEAR_AFTER_MS),
            ann(5, start + NEAR_AFTER_MS + 1),
        ];
        let ids: Vec<i64> = near(&all, start).iter().map(|a| a.id).collect();
        assert_eq!(ids, vec![4, 3, 2]);
        let many: Vec<Annotation> = (0..9).map(|i| ann(i, start - i * 1000)).collect();
        assert_eq!(near(&many, start).len(), MAX_CITED);
        assert_eq!(near(&many, start)[0].id, 0, "latest first");
    }

    #[test]
    fn at_is_rfc3339_or_a_duration_ago() {
        let now = 1_764_625_200_000; // 2025-12-01T21:40:00Z
        assert_eq!(parse_at("15m", now).unwrap(), now - 15 * 60_000);
        assert_eq!(parse_at("2025-12-01T21:40:00Z", now).unwrap(), now);
        assert!(
            parse_at("yesterday", now)
                .unwrap_err()
                .0
                .contains("RFC 3339")
        );
        assert!(parse_at("2035-01-01T00:00:00Z", now).is_err());
    }

    #[test]
    fn automatic_model_annotations_belong_to_the_stream_and_are_not_cited_twice() {
        assert_eq!(stream_of_scope("stream:support-bot"), "support-bot");
        assert_eq!(stream_of_scope("stream:a:b"), "a:b");
        assert_eq!(stream_of_scope("suite:refunds:live"), "suite:refunds");
        assert_eq!(
            model_change_text("gpt-4o", Some("a"), Some("b")),
            "gpt-4o: a → b (seen in the answers)"
        );
        let mut auto = ann(1, 0);
        auto.source = "auto".into();
        auto.kind = "model".into();
        assert!(near(&[auto.clone()], 0).is_empty());
        auto.kind = "deploy".into();
        assert_eq!(near(&[auto], 0).len(), 1);
    }

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(0, 12 * 60_000), "12 min before the start");
        assert_eq!(relative(3 * 60_000, 0), "3 min after the start");
        assert_eq!(relative(0, 30_000), "at the start");
        assert_eq!(relative(0, 3 * 3_600_000), "3 h before the start");
    }
}
