//! `canaryd <command> --help` works for every command the top-level help
//! lists (and their subcommands), and each says what it does.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_canaryd"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run canaryd");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "canaryd {args:?} --help: {:?}\n{text}",
        out.status
    );
    text
}

/// The names in the `Commands:` section of a help text (without `help`).
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

fn check(path: &[&str], seen: &mut Vec<String>) {
    let text = help(path);
    let description = text.lines().next().unwrap_or("").trim();
    assert!(
        !description.is_empty() && !description.starts_with("Usage:"),
        "canaryd {path:?} --help starts with a description:\n{text}"
    );
    assert!(text.contains("Usage:"), "{text}");
    seen.push(path.join(" "));
    for sub in commands(&text) {
        let mut p = path.to_vec();
        p.push(&sub);
        check(&p, seen);
    }
}

#[test]
fn every_command_has_a_working_help() {
    let mut seen = Vec::new();
    check(&[], &mut seen);
    for expected in [
        "serve",
        "check",
        "migrate",
        "run",
        "sim",
        "backtest",
        "status",
        "demo",
        "alerts",
        "silence",
        "silence add",
        "silence list",
        "silence expire",
        "incident",
        "incident export",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} not reached: {seen:?}"
        );
    }
}

#[test]
fn demo_help_names_its_flags() {
    let text = help(&["demo"]);
    for flag in [
        "--dir",
        "--update-after",
        "--timeout",
        "--forever",
        "--listen",
    ] {
        assert!(text.contains(flag), "{flag}:\n{text}");
    }
}
