//! The expectations file of `canaryd backtest --expect FILE` (format in
//! `docs/backtest.md`): the changes planted in (or known to be in) a
//! recorded history, each with the rule that must fire for it and how soon,
//! and the streams that must stay quiet. Read into the scorer's
//! [`Expectation`]s; every problem is reported as `file:line:column`.

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::score::Expectation;
use crate::diag::{Diagnostic, Diagnostics};
use crate::signals::Rule;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    changes: Vec<Change>,
    /// Streams on which nothing may fire.
    #[serde(default)]
    quiet: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    stream: String,
    /// The rule that must fire; omitted: nothing may fire for this change.
    #[serde(default)]
    rule: Option<Rule>,
    #[serde(default)]
    dimension: Option<String>,
    /// RFC 3339 start of the change.
    at: Spanned<String>,
    /// RFC 3339 time of the revert, if any.
    #[serde(default)]
    revert: Option<Spanned<String>>,
    /// Target delay (`3h`, `90m`, `1d`); required with `rule`.
    #[serde(default)]
    within: Option<Spanned<String>>,
}

/// Reads `path` into expectations, or every problem found in it.
pub fn load(path: &Path) -> Result<Vec<Expectation>, Diagnostics> {
    let file: File = crate::yaml::parse_file_all(path)?;
    let mut diags = Diagnostics::default();
    let mut out = Vec::new();
    let time = |s: &Spanned<String>, field: &str, diags: &mut Diagnostics| {
        match chrono::DateTime::parse_from_rfc3339(s.value.trim()) {
            Ok(t) => Some(t.timestamp_millis()),
            Err(e) => {
                diags.push(Diagnostic::at(
                    path,
                    s,
                    format!(
                        "{field}: {:?} is not an RFC 3339 time ({e}); expected e.g. 2026-03-15T05:00:00Z",
                        s.value
                    ),
                ));
                None
            }
        }
    };
    for (i, c) in file.changes.iter().enumerate() {
        let from = time(&c.at, &format!("changes[{i}].at"), &mut diags);
        let to = c
            .revert
            .as_ref()
            .and_then(|r| time(r, &format!("changes[{i}].revert"), &mut diags));
        if let (Some(f), Some(t), Some(r)) = (from, to, &c.revert)
            && t <= f
        {
            diags.push(Diagnostic::at(
                path,
                r,
                format!("changes[{i}].revert: {} is not after `at`", r.value),
            ));
        }
        let within = match (&c.within, c.rule) {
            (Some(w), _) => match super::parse_every(w.value.trim()) {
                Ok(ms) => Some(ms as f64 / 3_600_000.0),
                Err(e) => {
                    diags.push(Diagnostic::at(path, w, format!("changes[{i}].within: {e}")));
                    None
                }
            },
            (None, Some(rule)) => {
                diags.push(Diagnostic::at(
                    path,
                    &c.at,
                    format!(
                        "changes[{i}]: `within` is missing: how soon must {} fire (e.g. within: 3h)?",
                        rule.as_str()
                    ),
                ));
                None
            }
            (None, None) => None,
        };
        if c.dimension.is_some() && c.rule.is_none() {
            diags.push(Diagnostic::at(
                path,
                &c.at,
                format!("changes[{i}]: `dimension` needs a `rule`"),
            ));
        }
        out.push(Expectation {
            stream: c.stream.clone(),
            rule: c.rule,
            dimension: c.dimension.clone(),
            from_ms: from,
            to_ms: to,
            within_hours: within,
        });
    }
    out.extend(file.quiet.iter().map(|s| Expectation::quiet(s)));
    if out.is_empty() {
        diags.push(Diagnostic::error(
            path,
            1,
            1,
            "no `changes` and no `quiet` streams: nothing to score",
        ));
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Vec<Expectation>, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("expect.yaml");
        std::fs::write(&p, text).unwrap();
        load(&p)
    }

    #[test]
    fn changes_and_quiet_streams_are_read() {
        let x = load_str(
            "changes:\n  - stream: a\n    rule: judge_score_drop\n    dimension: groundedness\n    at: 2026-03-15T05:00:00Z\n    revert: 2026-03-19T05:00:00Z\n    within: 3h\n  - stream: b\n    at: 2026-03-15T05:00:00Z\nquiet: [c]\n",
        )
        .unwrap();
        assert_eq!(x.len(), 3);
        assert_eq!(x[0].rule, Some(Rule::JudgeScoreDrop));
        assert_eq!(x[0].within_hours, Some(3.0));
        assert_eq!(x[0].to_ms.unwrap() - x[0].from_ms.unwrap(), 4 * 86_400_000);
        assert_eq!((x[1].rule, x[1].within_hours), (None, None));
        assert_eq!(x[2], Expectation::quiet("c"));
    }

    #[test]
    fn mistakes_name_their_line_and_what_was_expected() {
        let e = load_str("changes:\n  - stream: a\n    rule: judge_drop\n    at: 2026-03-15T05:00:00Z\n    within: 3h\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3:") && e.contains("judge_score_drop"), "{e}");
        let e = load_str("changes:\n  - stream: a\n    rule: truncation_rate\n    at: yesterday\n    within: 3 hours\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":4:") && e.contains("RFC 3339"), "{e}");
        assert!(e.contains(":5:") && e.contains("within"), "{e}");
        let e = load_str(
            "changes:\n  - stream: a\n    rule: truncation_rate\n    at: 2026-03-15T05:00:00Z\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`within` is missing"), "{e}");
        let e = load_str("quiet: []\n").unwrap_err().to_string();
        assert!(e.contains("nothing to score"), "{e}");
    }
}
