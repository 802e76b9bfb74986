//! Alerts: lifecycle, routing, silences and the email/Slack/webhook channels.

mod settings;

pub use settings::AlertsConfig;
