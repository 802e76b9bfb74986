//! Detectors: pure functions of (data, now, settings) that turn stored
//! signals into verdicts, and the per-stream health score.

pub mod finding;
mod settings;

pub use finding::{Finding, Rule, Severity, Status};
pub use settings::DetectorConfig;
