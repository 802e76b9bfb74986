//! Text formatting shared by the view models: times, numbers, URL path
//! segments. The output is plain text (the templates escape it), except
//! [`enc`], whose output is safe inside a URL path and an attribute.

use crate::store::ModelEvent;

/// Percent-encodes a path segment: everything but RFC 3986 unreserved
/// characters, so `/`, spaces, `<`, `%` and non-ASCII survive a round trip
/// through the router as one segment.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub use crate::text::fmt_time;

/// `5m ago`, `3h ago`, `2d ago` relative to `now_ms` (`in 5m` for the future).
pub fn fmt_ago(now_ms: i64, ms: i64) -> String {
    let d = (now_ms - ms) / 1000;
    let (a, future) = (d.abs(), d < 0);
    let s = if a < 60 {
        format!("{a}s")
    } else if a < 3600 {
        format!("{}m", a / 60)
    } else if a < 48 * 3600 {
        format!("{}h", a / 3600)
    } else {
        format!("{}d", a / 86400)
    };
    if future {
        format!("in {s}")
    } else {
        format!("{s} ago")
    }
}

/// Up to two decimals, trailing zeros dropped.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// `gpt-4o-2024-08-06 → gpt-4o-2024-11-20`, or the fingerprints when the
/// model name stayed the same.
pub fn model_change_label(e: &ModelEvent) -> String {
    let or_unknown = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
    if e.old_model != e.new_model {
        format!(
            "{} → {}",
            or_unknown(&e.old_model),
            or_unknown(&e.new_model)
        )
    } else {
        format!(
            "{}: fingerprint {} → {}",
            or_unknown(&e.new_model),
            or_unknown(&e.old_fingerprint),
            or_unknown(&e.new_fingerprint)
        )
    }
}

/// The first `max` characters of `s` on one line, with `…` when cut.
pub fn snippet(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    let mut out: String = flat.chars().take(max).collect();
    if flat.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(enc("chat/support v2"), "chat%2Fsupport%20v2");
        assert_eq!(
            enc("<script>alert(1)</script>"),
            "%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
        );
        assert_eq!(enc("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(enc("é%"), "%C3%A9%25");
    }

    #[test]
    fn formats_times_and_numbers() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(fmt_ago(10_000, 0), "10s ago");
        assert_eq!(fmt_ago(3 * 3_600_000, 0), "3h ago");
        assert_eq!(fmt_ago(0, 120_000), "in 2m");
        assert_eq!(fmt_ago(5 * 86_400_000, 0), "5d ago");
        assert_eq!(fmt_num(4.0), "4");
        assert_eq!(fmt_num(4.256), "4.26");
        assert_eq!(fmt_num(f64::NAN), "—");
        assert_eq!(snippet("a\nb c", 3), "a b…");
        assert_eq!(snippet("ab", 3), "ab");
    }

    #[test]
    fn labels_model_changes() {
        let mut e = ModelEvent {
            id: 1,
            at_ms: 0,
            scope: "stream:s".into(),
            requested_model: "gpt-4o".into(),
            old_model: Some("a".into()),
            new_model: Some("b".into()),
            old_fingerprint: None,
            new_fingerprint: None,
        };
        assert_eq!(model_change_label(&e), "a → b");
        e.new_model = Some("a".into());
        e.old_fingerprint = Some("fp1".into());
        e.new_fingerprint = Some("fp2".into());
        assert_eq!(model_change_label(&e), "a: fingerprint fp1 → fp2");
    }
}
