//! YAML parsing with positions and helpful messages, shared by the config,
//! canary suites, judges and simulator scenarios.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::diag::Diagnostic;

/// Parses `text` (read from `path`) into `T`.
///
/// Errors carry the file, line and column, and an unknown key gets a
/// "did you mean" hint when a known key is close. YAML 1.1 booleans
/// (`yes`, `no`, `on`) are rejected so that `refusal: no` is not a silent bool.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Diagnostic> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<T>(text, options).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        Diagnostic::error(
            path,
            line,
            column,
            humanize(&e.without_snippet().to_string()),
        )
    })
}

/// Reads and parses a file; an unreadable file is a diagnostic too.
pub fn parse_file<T: DeserializeOwned>(path: &Path) -> Result<T, Diagnostic> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::error(path, 0, 0, format!("cannot read file: {e}")))?;
    parse(path, &text)
}

/// Removes the crate's own position suffix (we print ours in front) and adds a
/// "did you mean" hint to unknown-field messages.
fn humanize(message: &str) -> String {
    let mut msg = strip_position(message).trim().to_string();
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
