//! Text every subsystem formats the same way: error chains, timestamps
//! for people, marked truncation and cutting text at a byte bound.

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

/// Cuts `s` to at most `max` characters at a word boundary when one is
/// near, marking the cut with `…` so nobody mistakes it for the whole text.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    let at = cut
        .rfind(char::is_whitespace)
        .filter(|&i| i * 5 >= cut.len() * 4)
        .unwrap_or(cut.len());
    format!("{}…", cut[..at].trim_end())
}

/// The text a judge reads of chat messages: `role: content` lines (the
/// record's `input` when it is a message list).
pub fn messages_text(msgs: &[serde_json::Value]) -> String {
    msgs.iter()
        .map(|m| {
            let role = m
                .get("role")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("user");
            format!("{role}: {}", content_text(m.get("content")))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Text of a chat `content`: a string, or the `text` of content parts.
pub fn content_text(content: Option<&serde_json::Value>) -> String {
    match content {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                serde_json::Value::String(s) => Some(s.as_str()),
                p => p
                    .get("text")
                    .or_else(|| p.get("content"))
                    .and_then(serde_json::Value::as_str),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
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
