//! Every type error in a YAML file, not only the first.
//!
//! serde stops at the first error. To find the others without a second,
//! hand-written schema, each top-level section (and each item of a
//! top-level block sequence such as a suite's `cases:`) is parsed again on
//! its own into the same type, with every other line blanked so that lines
//! and columns stay those of the real file. An error found that way counts
//! only when it lies inside the part kept and names a field in it; the
//! "missing field" errors that blanking causes at the root name no field
//! and are dropped. One error per part is the resolution: two errors in
//! one mapping section still show one at a time.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::{Failure, attempt, humanize};
use crate::diag::{Diagnostic, Diagnostics};

/// Beyond this many parts a file is not re-parsed part by part (each part
/// costs a parse of the whole text).
const MAX_PARTS: usize = 256;

/// The diagnostics of a file whose parse failed with `first`.
pub(super) fn every_error<T: DeserializeOwned>(
    path: &Path,
    text: &str,
    first: Failure,
) -> Diagnostics {
    let mut found = vec![first.clone()];
    // A syntax error (the text is not YAML at all, whatever the error's
    // path says), or an error at the root, leaves nothing to split; anchors
    // defined in one section and used in another would break when blanked.
    let well_formed = || attempt::<serde::de::IgnoredAny>(text).is_ok();
    if first.field.is_some() && !has_anchor(text) && well_formed() {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        for part in parts(&lines).into_iter().take(MAX_PARTS) {
            let kept: String = lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    if part.keeps(i) || outside_sections(l) {
                        *l
                    } else if l.ends_with('\n') {
                        "\n"
                    } else {
                        ""
                    }
                })
                .collect();
            if let Err(mut f) = attempt::<T>(&kept)
                && let Some(field) = f.field.as_deref()
                && part.names(field)
                && part.keeps((f.line as usize).saturating_sub(1))
            {
                f.field = Some(part.renumber(field));
                if !found.contains(&f) {
                    found.push(f);
                }
            }
        }
    }
    found.sort_by_key(|f| (f.line, f.column));
    Diagnostics(
        found
            .iter()
            .map(|f| Diagnostic::error(path, f.line, f.column, describe(f, text)))
            .collect(),
    )
}

/// A run of lines parsed on its own: a top-level section, or the key line
/// of a block-sequence section plus one of its items.
#[derive(Debug, PartialEq, Eq)]
struct Part {
    key: String,
    key_line: usize,
    /// 0-based line range of the kept value, end exclusive.
    lines: std::ops::Range<usize>,
    /// The item's index when the part is one item of a sequence.
    item: Option<usize>,
}

impl Part {
    fn keeps(&self, line: usize) -> bool {
        line == self.key_line || self.lines.contains(&line)
    }

    fn names(&self, field: &str) -> bool {
        field
            .strip_prefix(self.key.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    }

    /// With the other items blanked, item `i` is parsed as item 0.
    fn renumber(&self, field: &str) -> String {
        match self.item {
            Some(i) => {
                let zero = format!("{}[0]", self.key);
                match field.strip_prefix(&zero) {
                    Some(rest) => format!("{}[{i}]{rest}", self.key),
                    None => field.to_string(),
                }
            }
            None => field.to_string(),
        }
    }
}

/// A top-level key such as `judging:` (not a comment, item or marker).
fn top_level_key(line: &str) -> Option<String> {
    if line.starts_with([' ', '\t', '#', '-', '%', '\n', '\r', '.', '[', '{', '?'])
        || line.trim().is_empty()
    {
        return None;
    }
    let (key, _) = line.split_once(':')?;
    Some(key.trim().trim_matches(['"', '\'']).to_string())
}

/// Document markers and directives stay in every part.
fn outside_sections(line: &str) -> bool {
    line.starts_with("---") || line.starts_with("...") || line.starts_with('%')
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_item(line: &str) -> bool {
    let t = line.trim_start_matches(' ');
    t == "-\n" || t == "-" || t.starts_with("- ") || t.starts_with("-\r")
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

fn parts(lines: &[&str]) -> Vec<Part> {
    let mut sections: Vec<(String, usize)> = Vec::new();
    let mut ends = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(key) = top_level_key(l) {
            if !sections.is_empty() && ends.len() < sections.len() {
                ends.push(i);
            }
            sections.push((key, i));
        } else if outside_sections(l) && ends.len() < sections.len() {
            ends.push(i);
        }
    }
    if ends.len() < sections.len() {
        ends.push(lines.len());
    }
    let mut out = Vec::new();
    for ((key, start), end) in sections.into_iter().zip(ends) {
        let body = start + 1..end;
        let first = body.clone().find(|&i| !is_blank(lines[i]));
        let value_on_key_line = lines[start]
            .split_once(':')
            .map(|(_, v)| !is_blank(v))
            .unwrap_or(false);
        match first {
            Some(f) if !value_on_key_line && is_item(lines[f]) => {
                let d = indent(lines[f]);
                let starts: Vec<usize> = body
                    .clone()
                    .filter(|&i| is_item(lines[i]) && indent(lines[i]) == d)
                    .collect();
                for (n, &s) in starts.iter().enumerate() {
                    let e = starts.get(n + 1).copied().unwrap_or(end);
                    out.push(Part {
                        key: key.clone(),
                        key_line: start,
                        lines: s..e,
                        item: Some(n),
                    });
                }
            }
            _ => out.push(Part {
                key,
                key_line: start,
                lines: body,
                item: None,
            }),
        }
    }
    out
}

/// `&name` after a space, `-` or `:` (outside quotes, roughly): an anchor.
fn has_anchor(text: &str) -> bool {
    text.lines().any(|l| {
        let code = l.split(" #").next().unwrap_or(l);
        code.match_indices('&').any(|(i, _)| {
            let before = code[..i].trim_end().chars().next_back();
            let after = code[i + 1..].chars().next();
            matches!(before, Some(':' | '-' | '[' | ',') | None)
                && after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

/// `field: found X, expected Y` (the shape of the range checks) where the crate's terse message
/// (`invalid u16`, `expected sequence start`) allows it; other messages
/// (serde's own `invalid type: ..., expected ...`, unknown fields) keep
/// their words behind the field.
fn describe(f: &Failure, text: &str) -> String {
    let message = humanize(&f.message);
    let Some(field) = &f.field else {
        return message;
    };
    match (expected(&message), found(text, f.line, f.column)) {
        (Some(expected), Some(found)) => format!("{field}: found {found}, expected {expected}"),
        _ => format!("{field}: {message}"),
    }
}

/// What serde-saphyr's short messages mean the field needed.
fn expected(message: &str) -> Option<String> {
    let kind = message
        .strip_prefix("invalid ")
        .or_else(|| message.strip_prefix("expected "))?;
    let range = |bits: u32, signed: bool| {
        if signed {
            format!("a whole number ({kind})")
        } else {
            let max = if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            format!("a whole number from 0 to {max} ({kind})")
        }
    };
    Some(match kind {
        "u8" => range(8, false),
        "u16" => range(16, false),
        "u32" => range(32, false),
        "u64" | "usize" | "u128" => range(64, false),
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => range(64, true),
        "floating point" | "float literal" | "number" => "a number".into(),
        "bool" => "true or false".into(),
        "string scalar" | "scalar" | "value" => "a single value (text or number)".into(),
        "sequence start" => "a list".into(),
        "mapping start" => "a mapping of keys to values".into(),
        _ => return None,
    })
}

/// The value written at `line:column`, quoted, or the kind of node.
fn found(text: &str, line: u64, column: u64) -> Option<String> {
    let l = text.lines().nth((line as usize).checked_sub(1)?)?;
    let before: String = l
        .chars()
        .take((column as usize).saturating_sub(1))
        .collect();
    let at: String = l
        .chars()
        .skip((column as usize).saturating_sub(1))
        .collect();
    let at = at.trim_end_matches('\r');
    if at.starts_with('[') || is_item(at) {
        return Some("a list".into());
    }
    if at.starts_with('{') {
        return Some("a mapping".into());
    }
    let value = if let Some(q @ ('"' | '\'')) = at.chars().next() {
        let end = at[1..].find(q).map(|i| i + 2).unwrap_or(at.len());
        at[..end].to_string()
    } else {
        let mut v = at.split(" #").next().unwrap_or(at);
        if before.contains(['[', '{']) {
            v = v.split([',', ']', '}']).next().unwrap_or(v);
        }
        let v = v.trim();
        if v.ends_with(':') || v.contains(": ") {
            return Some("a mapping".into());
        }
        v.to_string()
    };
    if value.is_empty() {
        return Some("nothing".into());
    }
    let short: String = value.chars().take(60).collect();
    let ellipsis = if short.len() < value.len() { "…" } else { "" };
    Some(format!("{short}{ellipsis}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sections_and_sequence_items() {
        let text =
            "listen: x\njudging:\n  a: 1\n\ncases:\n  - id: a\n    x: 1\n  - id: b\nother: [1]\n";
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let p = parts(&lines);
        let summary: Vec<(&str, std::ops::Range<usize>, Option<usize>)> = p
            .iter()
            .map(|p| (p.key.as_str(), p.lines.clone(), p.item))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("listen", 1..1, None),
                ("judging", 2..4, None),
                ("cases", 5..7, Some(0)),
                ("cases", 7..8, Some(1)),
                ("other", 9..9, None),
            ]
        );
        assert_eq!(p[3].renumber("cases[0].expect[1]"), "cases[1].expect[1]");
        assert!(p[1].names("judging.sample_rate") && !p[1].names("judging_x"));
    }

    #[test]
    fn names_what_was_found_and_expected() {
        let f = |line, column, field: &str, message: &str, text: &str| {
            describe(
                &Failure {
                    line,
                    column,
                    field: Some(field.into()),
                    message: message.into(),
                },
                text,
            )
        };
        assert_eq!(
            f(
                2,
                16,
                "judging.sample_rate",
                "invalid floating point",
                "x: 1\n  sample_rate: abc # c\n"
            ),
            "judging.sample_rate: found abc, expected a number"
        );
        assert_eq!(
            f(
                1,
                20,
                "e.port",
                "invalid u16",
                "e: { host: h, port: \"x\", to: b }\n"
            ),
            "e.port: found \"x\", expected a whole number from 0 to 65535 (u16)"
        );
        assert_eq!(
            f(1, 9, "listen", "expected string scalar", "listen: [1]\n"),
            "listen: found a list, expected a single value (text or number)"
        );
        assert_eq!(
            f(2, 3, "to", "expected sequence start", "to:\n  a: b\n"),
            "to: found a mapping, expected a list"
        );
    }

    #[test]
    fn anchors_are_noticed() {
        assert!(has_anchor("a: &base\n  x: 1\nb: *base\n"));
        assert!(!has_anchor("a: \"x & y\"\nb: R&D\n"));
    }
}
