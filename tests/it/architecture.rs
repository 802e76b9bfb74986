//! The module seams ARCHITECTURE.md states as invariants, checked on the
//! source text of `src/` (code lines only; comments are skipped):
//!
//! - no subsystem imports the daemon (the composition root): only the
//!   daemon itself and the binary's edges above it (`cli`, `demo`, `main`,
//!   `lib`) name `daemon::`, so nothing below can reach `App`;
//! - only `store/` runs SQL: `sqlx::query*` and `sqlx::raw_sql` appear
//!   nowhere else;
//! - detectors are pure: `signals/` imports neither the store nor tokio or
//!   sqlx (the store depends on the detectors' types, never the reverse).

use std::path::{Path, PathBuf};

/// Modules allowed to name the daemon: itself and what sits above it.
const ABOVE_THE_DAEMON: &[&str] = &[
    "src/daemon/",
    "src/cli/",
    "src/demo/",
    "src/main.rs",
    "src/lib.rs",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// (path relative to the crate, line number, code line) of every line of
/// `src/` that is not a comment.
fn code_lines() -> Vec<(String, usize, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("").trim();
            if !code.is_empty() {
                out.push((rel.clone(), i + 1, code.to_string()));
            }
        }
    }
    assert!(out.len() > 10_000, "found only {} lines of src/", out.len());
    out
}

fn violations(
    lines: &[(String, usize, String)],
    applies: impl Fn(&str) -> bool,
    forbidden: &[&str],
) -> Vec<String> {
    lines
        .iter()
        .filter(|(f, _, _)| applies(f))
        .filter(|(_, _, code)| forbidden.iter().any(|w| code.contains(w)))
        .map(|(f, n, code)| format!("{f}:{n}: {code}"))
        .collect()
}

#[test]
fn no_subsystem_imports_the_daemon() {
    let v = violations(
        &code_lines(),
        |f| !ABOVE_THE_DAEMON.iter().any(|a| f.starts_with(a)),
        &["daemon::", "crate::daemon", "daemon::App"],
    );
    assert!(
        v.is_empty(),
        "subsystems naming the daemon:\n{}",
        v.join("\n")
    );
}

#[test]
fn only_the_store_runs_sql() {
    let v = violations(
        &code_lines(),
        |f| !f.starts_with("src/store/"),
        &["sqlx::query", "sqlx::raw_sql", "query_as(", "query_scalar("],
    );
    assert!(v.is_empty(), "SQL outside src/store/:\n{}", v.join("\n"));
}

#[test]
fn detectors_do_no_io() {
    let v = violations(
        &code_lines(),
        |f| f.starts_with("src/signals/"),
        &["crate::store", "tokio", "sqlx"],
    );
    assert!(v.is_empty(), "I/O in src/signals/:\n{}", v.join("\n"));
}

#[test]
fn the_scan_sees_a_violation() {
    let lines = vec![
        (
            "src/web/x.rs".to_string(),
            1,
            "use crate::daemon::App;".to_string(),
        ),
        (
            "src/alert/y.rs".to_string(),
            2,
            "sqlx::query(\"SELECT 1\")".to_string(),
        ),
    ];
    assert_eq!(violations(&lines, |_| true, &["crate::daemon"]).len(), 1);
    assert_eq!(
        violations(&lines, |f| !f.starts_with("src/store/"), &["sqlx::query"]).len(),
        1
    );
}
