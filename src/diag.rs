//! Diagnostics that point at a place in a user's file.
//!
//! Every user-facing validation problem becomes a `Diagnostic` so that
//! `canaryd check` can print them all as `path:line:column: message`, the
//! format editors and CI annotators already understand.

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is: errors fail `check`, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in one file, with a 1-based position (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub line: u64,
    pub column: u64,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn error(path: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            column,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(path: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(path, line, column, message)
        }
    }

    /// A diagnostic at the position of a spanned YAML value.
    pub fn at<T>(
        path: &Path,
        spanned: &serde_saphyr::Spanned<T>,
        message: impl Into<String>,
    ) -> Self {
        let loc = spanned.referenced;
        Self::error(path, loc.line(), loc.column(), message)
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.path.display(),
            self.line.max(1),
            self.column.max(1),
            sev,
            self.message
        )
    }
}

/// Several diagnostics, so that one bad file reports everything wrong with it.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Checks the identity every versioned file (suite, judge) carries: a
    /// non-empty name and a positive version, since results are recorded
    /// under (name, version).
    pub fn check_name_version(
        &mut self,
        path: &Path,
        kind: &str,
        name: &serde_saphyr::Spanned<String>,
        version: &serde_saphyr::Spanned<i64>,
    ) {
        if name.value.trim().is_empty() {
            self.push(Diagnostic::at(
                path,
                name,
                format!("{kind} name must not be empty"),
            ));
        }
        if version.value < 1 {
            self.push(Diagnostic::at(
                path,
                version,
                "version must be a positive integer",
            ));
        }
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}
