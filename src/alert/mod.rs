//! Alerts: lifecycle, routing, silences and the email/Slack/webhook channels.
//!
//! Flow: the detectors' findings go through [`process`] (state changes,
//! grouping, routing, silences, evidence, rendering) into the outbox in the
//! database; [`notifier::deliver_due`] sends the outbox. Both take `now`,
//! so tests drive time explicitly; [`notifier::run`] is the daemon's loop.

pub mod email;
pub mod evidence;
pub mod hook;
pub mod lifecycle;
pub mod message;
pub mod notifier;
pub(crate) mod post;
pub mod render;
pub mod route;
pub mod settings;
pub mod silence;
pub mod slack;
mod text;
pub mod triage;
pub mod webhook;

pub use lifecycle::{ProcessOutcome, process};
pub use settings::AlertsConfig;

/// Why alerting failed. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("alert template: {0}")]
    Template(String),
    #[error("cannot send: {0}")]
    Send(String),
}

/// The states of the open alerts among `rows`, by (rule, stream,
/// dimension), for the status report (`signals::report::shown`).
pub fn open_states(rows: &[crate::store::AlertRow]) -> crate::signals::report::OpenAlerts {
    rows.iter()
        .filter(|a| matches!(a.state.as_str(), "pending" | "firing"))
        .filter_map(|a| {
            let rule = crate::signals::Rule::parse(&a.rule)?;
            let dim = (!a.dimension.is_empty()).then(|| a.dimension.clone());
            Some(((rule, a.stream.clone(), dim), a.state.clone()))
        })
        .collect()
}
