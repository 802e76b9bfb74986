//! Text every subsystem formats the same way: error chains and timestamps
//! for people, and cutting text at a byte bound.

/// `outer: cause: root cause`: an error with every `source()` below it, for
/// messages that must say why, not only what.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The largest index at or below `max` that is a character boundary of
/// `s` (`s.len()` when `s` is shorter): where a byte bound may cut text.
/// `str::floor_char_boundary` is newer than the crate's MSRV.
pub fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `2026-11-23 23:40 UTC` for a UTC millisecond timestamp (the raw number
/// when it is out of range).
pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Tera 1 registers `get_env` everywhere; a template must never read the
/// daemon's environment (API keys live there). Every `Tera` canaryd builds
/// goes through this.
pub fn disable_tera_env(tera: &mut tera::Tera) {
    tera.register_function(
        "get_env",
        |_: &std::collections::HashMap<String, tera::Value>| -> tera::Result<tera::Value> {
            Err(tera::Error::msg("get_env is disabled in canaryd templates"))
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_and_times() {
        let inner = std::io::Error::other("root");
        let outer = tera::Error::chain("outer", inner);
        assert_eq!(error_chain(&outer), "outer: root");
        assert_eq!(fmt_time(0), "1970-01-01 00:00 UTC");
    }
}
