//! YAML parsing with positions and helpful messages, shared by the config,
//! canary suites, judges and simulator scenarios.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::diag::{Diagnostic, Diagnostics};

mod report;

/// Parses `text` (read from `path`) into `T`, reporting the first error.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Diagnostic> {
    parse_all(path, text).map_err(|d| d.0.into_iter().next().expect("a failure has a diagnostic"))
}

/// Parses `text` (read from `path`) into `T`, reporting every type error
/// that can be found (see `report`).
///
/// Errors carry the file, line and column, the field's dotted path, the
/// value found and what was expected; an unknown key gets a "did you mean"
/// hint when a known key is close. YAML 1.1 booleans (`yes`, `no`, `on`)
/// are rejected so that `refusal: no` is not a silent bool.
pub fn parse_all<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Diagnostics> {
    attempt::<T>(text).map_err(|first| report::every_error::<T>(path, text, first))
}

/// One failed parse: where, in which field (`None` at the root or for a
/// syntax error) and the crate's message without its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub line: u64,
    pub column: u64,
    pub field: Option<String>,
    pub message: String,
}

/// One parse with the field path tracked by `serde_path_to_error`, which
/// wraps serde-saphyr's deserializer so the crate's own error (and its
/// position) is kept as is.
pub(super) fn attempt<T: DeserializeOwned>(text: &str) -> Result<T, Failure> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    let mut field = None;
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            field = dotted(e.path());
            e.into_inner()
        })
    })
    .map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        Failure {
            line,
            column,
            field: field.take(),
            message: strip_position(&e.without_snippet().to_string())
                .trim()
                .to_string(),
        }
    })
}

/// Reads and parses a file; an unreadable file is a diagnostic too.
pub fn parse_file<T: DeserializeOwned>(path: &Path) -> Result<T, Diagnostic> {
    parse_file_all(path).map_err(|d| d.0.into_iter().next().expect("a failure has a diagnostic"))
}

/// Reads and parses a file, reporting every error found.
pub fn parse_file_all<T: DeserializeOwned>(path: &Path) -> Result<T, Diagnostics> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::error(path, 0, 0, format!("cannot read file: {e}")))?;
    parse_all(path, &text)
}

/// `judging.sample_rate`, `cases[2].expect[0].contains`; `None` at the root.
/// `Spanned<T>` deserializes as a struct whose `value` holds the field, so
/// a `value` segment is dropped: no YAML-facing type has a field of that
/// name (a map key `value` would lose its name in a message, nothing else).
fn dotted(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } if key == "value" => {}
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    Some(out).filter(|p| !p.is_empty())
}

/// Adds a "did you mean" hint to unknown-field messages.
pub(super) fn humanize(message: &str) -> String {
    let mut msg = message.to_string();
    if let Some(hint) = did_you_mean_from_serde(&msg) {
        msg.push_str(&format!("; did you mean `{hint}`?"));
    }
    msg
}

fn strip_position(message: &str) -> &str {
    // serde-saphyr appends " at line N, column M"; we already print both.
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// serde reports `unknown field `x`, expected one of a, b` (with or without
/// backticks around the names); pick the closest expected name.
fn did_you_mean_from_serde(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let unknown = rest.split('`').next()?;
    let list = rest.split("expected ").nth(1)?;
    let list = list.strip_prefix("one of ").unwrap_or(list);
    let expected: Vec<String> = list
        .split(", ")
        .map(|s| s.trim().trim_matches('`').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    closest(unknown, expected.iter().map(String::as_str))
}

/// `"; did you mean `x`?"` for the closest candidate, or nothing: the
/// suffix every unknown-name message in canaryd ends with.
pub fn hint<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|h| format!("; did you mean `{h}`?"))
        .unwrap_or_default()
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// The `*.yaml` / `*.yml` files of a directory, sorted.
pub fn yaml_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Demo {
        listen: String,
        database: Option<String>,
    }

    #[test]
    fn unknown_key_has_position_and_hint() {
        let err = parse::<Demo>(Path::new("c.yaml"), "listen: x\ndatabse: y\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("did you mean `database`"), "{err}");
    }

    #[test]
    fn wrong_type_has_position() {
        let err = parse::<Demo>(Path::new("c.yaml"), "listen: [1, 2]\n").unwrap_err();
        assert_eq!(err.line, 1, "{err}");
        assert!(err.column >= 9, "{err}");
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse::<Demo>(Path::new("c.yaml"), "listen: \"x\n  foo: [\n").unwrap_err();
        assert!(err.line >= 1, "{err}");
    }
}

/// Where the key at `keys` (e.g. `["judging", "sample_rate"]`) is written
/// in `text`, 1-based, for diagnostics about values serde accepted but
/// validation refused. A textual search: the first key is a top-level key
/// (at column 1); each next key is the first occurrence of `key:` after the
/// previous one within that top-level section, so block and flow style both
/// work. `None` when the key is not written (a default).
pub fn key_position(text: &str, keys: &[&str]) -> Option<(u64, u64)> {
    let (first, rest) = keys.split_first()?;
    let mut offset = 0;
    let mut start = None;
    for line in text.split_inclusive('\n') {
        if start.is_none() {
            if line.starts_with(&format!("{first}:")) {
                start = Some(offset);
            }
        } else if !line.starts_with([' ', '\t', '#', '\n', '\r', '-']) && !line.trim().is_empty() {
            break;
        }
        offset += line.len();
    }
    let start = start?;
    let section = &text[start..offset];
    let mut at = 0;
    for key in rest {
        let mut from = at;
        loop {
            let i = section[from..].find(key)? + from;
            let before = section[..i].chars().next_back();
            let after = section[i + key.len()..].trim_start_matches([' ', '"', '\'']);
            let boundary = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            if boundary && after.starts_with(':') {
                at = i;
                break;
            }
            from = i + key.len();
        }
    }
    let abs = start + at;
    let line = text[..abs].matches('\n').count() as u64 + 1;
    let column = (abs - text[..abs].rfind('\n').map(|i| i + 1).unwrap_or(0)) as u64 + 1;
    Some((line, column))
}

#[cfg(test)]
mod key_position_tests {
    use super::key_position;

    #[test]
    fn finds_keys_in_block_and_flow_style() {
        let t = "listen: x\njudging:\n  floor_per_hour: 3\n  sample_rate: 7\ningest: { max_records: 0 }\n";
        assert_eq!(key_position(t, &["judging", "sample_rate"]), Some((4, 3)));
        assert_eq!(key_position(t, &["ingest", "max_records"]), Some((5, 11)));
        assert_eq!(key_position(t, &["ingest", "max_body_bytes"]), None);
        let t = "alerts:\n  channels:\n    ops-mail:\n      email: {}\n";
        assert_eq!(
            key_position(t, &["alerts", "channels", "ops-mail"]),
            Some((3, 5))
        );
    }
}
