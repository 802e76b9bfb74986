//! Text helpers of every alert channel and of the evidence: numbers at a
//! readable precision, one-line sanitising and truncation.

pub use crate::text::truncate;

/// Numbers at a precision a person reads: `4.22`, `0.113`, `1840`.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Replaces control characters (CR, LF, tabs, NUL...) with spaces and
/// collapses runs, so the text is one line: safe as a mail header and
/// unable to forge headers or Slack blocks.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = c == ' ';
        }
    }
    out.trim().to_string()
}
