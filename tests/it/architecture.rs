//! The module seams ARCHITECTURE.md states as invariants, checked on the
//! source text of `src/` (code lines only; comments are skipped):
//!
//! - no subsystem imports the daemon (the composition root): only the
//!   daemon itself and the binary's edges above it (`cli`, `demo`, `main`,
//!   `lib`) name `daemon::`, so nothing below can reach `App`;
//! - only `store/` runs SQL: `sqlx::query*` and `sqlx::raw_sql` appear
//!   nowhere else;
//! - detectors are pure: `signals/` imports neither the store nor tokio or
//!   sqlx (the store depends on the detectors' types, never the reverse);
//! - no import circle between top-level modules (`crate::` paths in code
//!   before a file's first `#[cfg(test)]`): the layers run one way;
//! - no subsystem names `config` or `live` except those listed in
//!   [`ABOVE_THE_CONFIG`]: `config` composes the subsystems' sections, so a
//!   subsystem that named it would sit both below and above it.

use std::path::{Path, PathBuf};

/// Modules allowed to name `config` and `live` (the whole config and the
/// reloadable version that holds it): themselves, the daemon and the
/// binary's edges, and the two subsystems that read a `live::Live` whole
/// (the canary scheduler rescans suites against its models and judges; the
/// pages read several sections). Every other subsystem declares the view it
/// reads (`ingest::Settings`, `http::Settings`, `judge::worker::Settings`)
/// or takes the sections it needs as arguments.
const ABOVE_THE_CONFIG: &[&str] = &[
    "src/config/",
    "src/live.rs",
    "src/daemon/",
    "src/cli/",
    "src/demo/",
    "src/check.rs",
    "src/main.rs",
    "src/lib.rs",
    "src/canary/",
    "src/web/",
];

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
    lines_of_src(false)
}

/// [`code_lines`] without test code: each file up to its first
/// `#[cfg(test)]` (unit tests may build a whole config).
fn code_lines_before_tests() -> Vec<(String, usize, String)> {
    lines_of_src(true)
}

fn lines_of_src(stop_at_tests: bool) -> Vec<(String, usize, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if stop_at_tests && line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
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

/// Edges (from, to) between top-level modules of `src/`, from `crate::x`
/// paths in code before a file's first `#[cfg(test)]`.
fn module_imports() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut graph: std::collections::BTreeMap<_, std::collections::BTreeSet<_>> =
        Default::default();
    for f in files {
        let rel = f
            .strip_prefix(root.join("src"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let from = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            for to in crate_paths(code) {
                if to != from {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    graph
}

/// The top-level module names a line reaches through `crate::`, including
/// `crate::{a, b::c}` groups.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            out.extend(
                inner
                    .split(',')
                    .map(|p| ident(p.trim()))
                    .filter(|s| !s.is_empty()),
            );
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// The modules on a circle with another one: those that reach a module
/// that reaches them back.
fn circles(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Vec<Vec<String>> {
    let reach = |start: &str| {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![start.to_string()];
        while let Some(m) = todo.pop() {
            for n in graph.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reaches: std::collections::BTreeMap<_, _> =
        graph.keys().map(|m| (m.clone(), reach(m))).collect();
    let mut done = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for m in graph.keys() {
        if done.contains(m) || !reaches[m].contains(m) {
            continue;
        }
        let component: Vec<String> = reaches[m]
            .iter()
            .filter(|n| reaches.get(*n).is_some_and(|r| r.contains(m)))
            .cloned()
            .collect();
        done.extend(component.iter().cloned());
        out.push(component);
    }
    out
}

#[test]
fn no_import_circle() {
    let graph = module_imports();
    let found = circles(&graph);
    let report: Vec<String> = found
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    graph[a]
                        .iter()
                        .filter(|b| c.contains(b))
                        .map(move |b| format!("  {a} -> {b}"))
                })
                .collect();
            format!("{c:?}:\n{}", edges.join("\n"))
        })
        .collect();
    assert!(
        found.is_empty(),
        "top-level modules importing each other in a circle:\n{}",
        report.join("\n")
    );
}

#[test]
fn only_the_top_names_the_config() {
    let v = violations(
        &code_lines_before_tests(),
        |f| !ABOVE_THE_CONFIG.iter().any(|a| f.starts_with(a)),
        &["crate::config", "crate::live"],
    );
    assert!(
        v.is_empty(),
        "subsystems naming the whole config or the live version:\n{}",
        v.join("\n")
    );
}

#[test]
fn the_circle_scan_sees_a_circle() {
    assert_eq!(
        crate_paths("use crate::{canary, judge::x};"),
        ["canary", "judge"]
    );
    let g: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a", "d"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        circles(&g),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
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
