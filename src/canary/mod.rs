//! Canary suites: fixed prompts with known-good expectations, run on a
//! schedule against pinned and live models.

pub mod agree;
pub mod cost;
pub mod equality;
pub mod expect;
pub mod load;
pub mod probe;
pub mod prompt;
pub mod refusal;
pub mod report;
pub mod request;
pub mod runner;
pub mod sampling;
pub mod schedule;
pub mod schema;
pub mod suite;
pub mod ticks;
pub mod versioning;

pub use load::{Suite, SuiteCase};
