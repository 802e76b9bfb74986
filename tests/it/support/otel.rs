//! The official OpenTelemetry Python SDK for tests that send real OTLP
//! exports, installed into a venv under the target directory when missing.

use std::path::PathBuf;
use std::process::Command;

/// A Python with the OpenTelemetry SDK and OTLP/HTTP exporter, or why not.
pub fn python_with_sdk() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("otel-venv");
    let py = venv.join("bin/python");
    let has_sdk = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", "import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_sdk(&py) {
        return Ok(py);
    }
    let run = super::run_ok;
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&py).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
    ]))?;
    if has_sdk(&py) {
        Ok(py)
    } else {
        Err("SDK still not importable after install".into())
    }
}

/// The SDK's Python, or `None` after a loud skip (a failure when `CI=true`).
pub fn python_or_skip() -> Option<PathBuf> {
    super::or_skip("the OpenTelemetry Python SDK", python_with_sdk())
}
