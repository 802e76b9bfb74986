//! Canary equality testing (issue 17): "does this target still answer like
//! the reference?" for a provider that swaps weights behind an unchanged
//! name and fingerprint.
//!
//! A suite's `equality:` block asks for `samples` answers per case, target
//! and run at a temperature above 0 (`canary/equality.rs`: format,
//! validation, cost). This module is the statistics alone, imported by the
//! detector (`signals/model_drift.rs`), so it names nothing above itself.
//! After each run, every target is tested against its references (another
//! target's samples of the same run, and/or its own recent history) with a
//! per-case permutation MMD under a character n-gram kernel, combined across
//! cases into one p-value and e-value per (target, reference) and run
//! (`kernel.rs`, `mmd.rs`). The sampling and storing is the runner's
//! (`canary/sampling.rs`); the alarm over runs is the pure detector
//! `signals/model_drift.rs`. Nothing here does I/O.

pub mod kernel;
pub mod mmd;

/// Runs a year assumed for the false-alarm budget: the budget is one false
/// `model_drift` per target per year of runs, so the alarm's threshold is
/// `ln(runs_per_year × references)` (see `signals::model_drift`).
pub fn threshold(runs_per_day: f64, references: usize) -> f64 {
    (runs_per_day.max(1.0) * 365.0 * references.max(1) as f64).ln()
}
