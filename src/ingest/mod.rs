//! Production responses: the ingest API, OTLP traces and the cheap signals
//! computed on every record.

mod settings;

pub use settings::IngestConfig;
