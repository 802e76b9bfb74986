//! Canary suites: fixed prompts with known-good expectations, run on a
//! schedule against pinned and live models.

pub mod load;
pub mod prompt;
pub mod suite;

pub use load::{Suite, SuiteCase};
