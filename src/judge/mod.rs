//! LLM-as-judge: judge definitions, sampling, the durable judge queue.

pub mod call;
pub mod load;
mod settings;
pub mod spec;
pub mod template;
pub mod worker;

pub use load::Judge;
pub use settings::{JudgingConfig, StreamSampling};
