//! Rendering a run for people: a case × target table, then the reasons.
//! `canaryd run --format json` prints the [`RunReport`] itself instead.

use std::fmt::Write;

use super::expect::Status;
use super::probe::ProbeStatus;
use super::runner::{Outcome, RunReport, RunStatus};

/// The human report of a run.
pub fn table(r: &RunReport) -> String {
    let mut out = String::new();
    let hash: String = r.content_hash.chars().take(12).collect();
    let _ = writeln!(
        out,
        "suite {} v{} ({hash}) run #{}: {}{}",
        r.suite,
        r.version,
        r.run_id,
        match r.status {
            RunStatus::Completed => "completed",
            RunStatus::Cancelled => "cancelled",
        },
        r.note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    if r.status == RunStatus::Cancelled {
        return out;
    }
    let mut cases: Vec<&str> = Vec::new();
    for res in &r.results {
        if !cases.contains(&res.case_id.as_str()) {
            cases.push(&res.case_id);
        }
    }
    let w0 = cases.iter().map(|c| c.len()).max().unwrap_or(4).max(4);
    let widths: Vec<usize> = r.targets.iter().map(|t| t.len().max(8)).collect();
    let _ = write!(out, "{:w0$}", "case");
    for (t, w) in r.targets.iter().zip(&widths) {
        let _ = write!(out, "  {t:w$}");
    }
    out.push('\n');
    let mut disagreements = false;
    for case in &cases {
        let _ = write!(out, "{case:w0$}");
        for (t, w) in r.targets.iter().zip(&widths) {
            let cell = r
                .results
                .iter()
                .find(|x| x.case_id == *case && &x.target == t)
                .map(|x| {
                    let mut s = match x.outcome {
                        Outcome::Pass => "pass".to_string(),
                        Outcome::Fail => "FAIL".to_string(),
                        Outcome::ProviderError => "error".to_string(),
                    };
                    if x.agrees_with_pinned == Some(false) {
                        s.push('*');
                        disagreements = true;
                    }
                    s
                })
                .unwrap_or_else(|| "-".into());
            let _ = write!(out, "  {cell:w$}");
        }
        out.push('\n');
    }
    if disagreements {
        let _ = writeln!(
            out,
            "* disagrees with {}",
            r.baseline.as_deref().unwrap_or("the baseline")
        );
    }
    let failures: Vec<_> = r
        .results
        .iter()
        .filter(|x| x.outcome == Outcome::Fail)
        .collect();
    if !failures.is_empty() {
        out.push_str("\nfailures:\n");
        for f in failures {
            for v in f.verdicts.iter().filter(|v| v.status == Status::Fail) {
                let _ = writeln!(
                    out,
                    "  {} @ {} ({}): {}: {}",
                    f.case_id,
                    f.target,
                    f.response_model.as_deref().unwrap_or(&f.requested_model),
                    v.kind,
                    v.reason
                );
            }
        }
    }
    let errors: Vec<_> = r
        .results
        .iter()
        .filter(|x| x.outcome == Outcome::ProviderError)
        .collect();
    if !errors.is_empty() {
        out.push_str("\nprovider errors (not failures):\n");
        for e in errors {
            let _ = writeln!(
                out,
                "  {} @ {}: {}",
                e.case_id,
                e.target,
                e.error.as_deref().unwrap_or("unknown error")
            );
        }
    }
    if !r.model_events.is_empty() {
        out.push_str("\nmodel changes:\n");
        for ev in &r.model_events {
            let _ = writeln!(
                out,
                "  {}: model {} -> {}, fingerprint {} -> {}",
                ev.scope,
                ev.old_model.as_deref().unwrap_or("?"),
                ev.new_model.as_deref().unwrap_or("?"),
                ev.old_fingerprint.as_deref().unwrap_or("?"),
                ev.new_fingerprint.as_deref().unwrap_or("?"),
            );
        }
    }
    if !r.logprob_probes.is_empty() {
        out.push_str("\nlogprob probe (not pass/fail):\n");
        let mut targets: Vec<&str> = Vec::new();
        for p in &r.logprob_probes {
            if !targets.contains(&p.target.as_str()) {
                targets.push(&p.target);
            }
        }
        for t in targets {
            let of = |s: ProbeStatus| {
                r.logprob_probes
                    .iter()
                    .filter(|p| p.target == t && p.status == s)
                    .count()
            };
            let (ok, unsupported, errors) = (
                of(ProbeStatus::Ok),
                of(ProbeStatus::Unsupported),
                of(ProbeStatus::ProviderError),
            );
            let mut parts = vec![format!("{ok} recorded")];
            if unsupported > 0 {
                parts.push(format!(
                    "{unsupported} logprobs unsupported by the provider"
                ));
            }
            if errors > 0 {
                parts.push(format!("{errors} provider errors"));
            }
            let _ = writeln!(out, "  {t}: {}", parts.join(", "));
        }
    }
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} provider errors",
        r.passed, r.failed, r.provider_errors
    );
    // Padding of the last column would leave trailing spaces.
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
