//! Validation of everything a deployment reads: the config, every canary
//! suite, every judge. Used by `canaryd check` and at start/reload.

use std::path::Path;

use crate::config;
use crate::diag::{Diagnostic, Diagnostics};
use crate::{canary, judge};

/// Everything `check` found.
#[derive(Debug, Default)]
pub struct Report {
    pub diagnostics: Diagnostics,
    pub suites: usize,
    pub judges: usize,
    /// What each valid suite costs per day.
    pub costs: Vec<canary::cost::SuiteCost>,
}

/// Checks the config at `path` and the suite and judge directories it names.
/// A broken config still lets the suites and judges be checked on their own.
pub async fn check_all(path: &Path, now_ms: i64) -> Report {
    let mut report = Report::default();
    let loaded = match config::load(path) {
        Ok(l) => Some(l),
        Err(d) => {
            report.diagnostics.extend(d);
            None
        }
    };
    let cfg = loaded.as_ref().map(|l| &l.config);
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (canaries_dir, judges_dir) = match cfg {
        Some(c) => (c.canaries.clone(), c.judges.clone()),
        None => (base.join("canaries"), base.join("judges")),
    };
    let judges = judge::load::load_dir(&judges_dir, cfg.map(|c| &c.models));
    let names = judges.names();
    report.judges = judges.judges.len() + judges.failed.len();
    report.diagnostics.extend(judges.diagnostics);
    let ctx = canary::load::Context {
        models: cfg.map(|c| &c.models),
        judges: Some(&names),
    };
    let suites = canary::load::load_dir(&canaries_dir, &ctx);
    report.suites = suites.suites.len() + suites.failed.len();
    let prices = |model: &str| {
        let m = cfg?.models.get(model)?;
        (m.value.input_cost_per_mtok > 0.0 || m.value.output_cost_per_mtok > 0.0)
            .then_some((m.value.input_cost_per_mtok, m.value.output_cost_per_mtok))
    };
    report.costs = suites
        .suites
        .iter()
        .map(|s| canary::cost::suite_cost(s, now_ms, &prices))
        .collect();
    report.diagnostics.extend(suites.diagnostics);
    if let Some(c) = cfg {
        // `load` keeps only errors; the warnings of a valid config count too.
        let mut warnings = config::validate(path, c);
        warnings.0.retain(|d| !d.is_error());
        report.diagnostics.extend(warnings);
        report.diagnostics.extend(secrets(path, c));
    }
    if let Some(c) = cfg {
        report
            .diagnostics
            .extend(canary::versioning::unbumped_versions(&c.database, &suites.suites).await);
    }
    report
}

/// Resolves every secret `serve` resolves at start, so a missing variable
/// or file fails `check` as it would fail `serve`. Only the reference is
/// named, never a value.
fn secrets(path: &Path, c: &config::Config) -> Diagnostics {
    let mut d = Diagnostics::default();
    let mut fail = |msg: String| d.push(Diagnostic::error(path, 0, 0, msg));
    if let Err(e) = config::ingest_tokens(c) {
        fail(e);
    }
    if let Err(e) = config::api_tokens(c) {
        fail(e);
    }
    for (name, p) in &c.providers {
        if let Err(e) = p.value.api_key_ref().resolve() {
            fail(format!("provider {name}: API key: {e}"));
        }
    }
    for e in c.alerts.secret_errors() {
        fail(e);
    }
    if let Some(hook) = &c.sessions.hook {
        match hook.secret.resolve() {
            Err(e) => fail(format!("sessions.hook secret: {e}")),
            Ok(None) => fail("sessions.hook secret is not configured".into()),
            Ok(Some(_)) => {}
        }
    }
    if let Ok(text) = std::fs::read_to_string(path) {
        config::locate(&mut d, &text);
    }
    d
}
