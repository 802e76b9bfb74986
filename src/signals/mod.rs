//! Detectors: pure functions of (data, now, settings) that turn stored
//! signals into verdicts, and the per-stream health score.

mod settings;

pub use settings::DetectorConfig;
