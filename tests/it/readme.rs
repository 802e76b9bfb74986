//! Every shell block of README.md runs as written, in a scratch copy of the
//! repository's example files, with the built binary standing in for
//! `cargo run --release --` and `canaryd`.
//!
//! A block is marked by the HTML comment on the line before its fence:
//! `<!-- readme-test: skip (REASON) -->` is not run (a real provider key,
//! root and systemd, a PostgreSQL server elsewhere), `<!-- readme-test:
//! with-daemon (...) -->` runs while `canaryd sim` and `canaryd serve
//! --config canaryd.sim.yaml` listen on the README's ports (8089 and 8080).
//! Blocks fenced as `text` are synopses and are not run. The quick start's
//! `canaryd demo` is skipped here because `demo.rs` runs it to its end with
//! stricter checks: the demo takes about a minute, once is enough.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

#[derive(Debug)]
struct Block {
    line: usize,
    marker: Option<String>,
    script: String,
}

fn sh_blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let marker = i
                .checked_sub(1)
                .map(|p| lines[p].trim())
                .and_then(|l| l.strip_prefix("<!-- readme-test:"))
                .map(|m| m.trim_end_matches("-->").trim().to_string());
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim() != "```" {
                end += 1;
            }
            out.push(Block {
                line: start,
                marker,
                script: lines[start..end].join("\n"),
            });
            i = end;
        }
        i += 1;
    }
    out
}

/// The script as the test runs it: the binary instead of `cargo run`, and
/// no rebuild (the binary under test is already built).
fn adapt(script: &str) -> String {
    script
        .lines()
        .filter(|l| l.trim() != "cargo build --release")
        .map(|l| l.replace("cargo run --release --", "canaryd"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A scratch working copy: the files the README's commands name.
fn workdir() -> (tempfile::TempDir, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for f in ["canaryd.sim.yaml", "canaryd.example.yaml"] {
        std::fs::copy(root.join(f), dir.path().join(f)).unwrap();
    }
    for d in ["canaries", "judges", "deploy"] {
        copy_tree(&root.join(d), &dir.path().join(d));
    }
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_canaryd"), bin.join("canaryd")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (dir, path)
}

fn bash(dir: &Path, path: &str, script: &str) -> std::process::Output {
    let full =
        format!("set -eo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}\n");
    Command::new("bash")
        .arg("-c")
        .arg(full)
        .current_dir(dir)
        .env("PATH", path)
        // The README's commands without --config read ./canaryd.yaml; this
        // working copy's config is the quick-start one.
        .env("CANARYD_CONFIG", "canaryd.sim.yaml")
        .env("CANARYD_INGEST_TOKEN", "readme-test-token")
        .env("CANARYD_LOG", "warn")
        .output()
        .unwrap()
}

/// Starts a long-running command, waits for its "listening" line and keeps
/// draining its stdout (a closed pipe would fail its later prints).
fn start(dir: &Path, args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_canaryd"))
        .args(args)
        .current_dir(dir)
        .env("CANARYD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("listening") => break,
            Some(Ok(_)) => {}
            other => panic!("canaryd {args:?} exited before listening: {other:?}"),
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    child
}

#[test]
fn every_readme_shell_block_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 5, "{blocks:#?}");
    let mut ran = 0;
    for b in &blocks {
        let marker = b.marker.as_deref().unwrap_or("");
        if let Some(reason) = marker.strip_prefix("skip") {
            assert!(
                reason.trim().starts_with('(') && reason.len() > 4,
                "README.md:{}: a skipped block says why",
                b.line
            );
            continue;
        }
        let (dir, path) = workdir();
        let mut daemons = Vec::new();
        if marker.starts_with("with-daemon") {
            daemons.push(start(dir.path(), &["sim"]));
            daemons.push(start(
                dir.path(),
                &["serve", "--config", "canaryd.sim.yaml"],
            ));
        }
        let out = bash(dir.path(), &path, &adapt(&b.script));
        for mut d in daemons {
            let _ = Command::new("kill").arg(d.id().to_string()).status();
            let _ = d.wait();
        }
        assert!(
            out.status.success(),
            "README.md:{}: block failed ({:?}):\n{}\n--- stdout\n{}\n--- stderr\n{}",
            b.line,
            out.status,
            b.script,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 3, "only {ran} blocks ran");
}

#[test]
fn blocks_and_markers_are_found() {
    let text = "a\n<!-- readme-test: skip (key) -->\n```sh\nx \\\n  y\n```\n```sh\ncargo build --release\ncargo run --release -- run s\n```\n";
    let b = sh_blocks(text);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].marker.as_deref(), Some("skip (key)"));
    assert_eq!(b[1].marker, None);
    assert_eq!(adapt(&b[1].script), "canaryd run s");
}
