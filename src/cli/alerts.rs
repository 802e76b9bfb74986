//! `canaryd alerts`: alerts, their history and their notifications.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::store::{AlertHistoryRow, AlertRow, NotificationRow, Store};
use crate::text::fmt_time;

#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Most recent alerts shown.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// Database URL; overrides the config file and $CANARYD_DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

#[derive(Serialize)]
struct AlertOut {
    #[serde(flatten)]
    alert: AlertRow,
    history: Vec<AlertHistoryRow>,
    notifications: Vec<NotificationRow>,
}

/// Opens the store named by `--database`, else the config's database.
pub async fn open_store(
    config_flag: Option<&Path>,
    database: Option<String>,
) -> anyhow::Result<Store> {
    let url = match database {
        Some(url) => url,
        None => {
            let path = crate::config::resolve_path(config_flag);
            crate::config::load(&path)
                .map_err(|d| anyhow::anyhow!("{d}"))?
                .config
                .database
        }
    };
    let store = Store::connect(&url).await?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

pub async fn run(config_flag: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let store = open_store(config_flag, args.database).await?;
    let alerts = store.list_alerts(args.limit).await?;
    let notifications = store
        .list_notifications(args.limit.saturating_mul(20))
        .await?;
    let mut out = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let history = store.alert_history(alert.id).await?;
        let notifications = notifications
            .iter()
            .filter(|(_, ids)| ids.contains(&alert.id))
            .map(|(n, _)| n.clone())
            .collect();
        out.push(AlertOut {
            alert,
            history,
            notifications,
        });
    }
    store.close().await;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "alerts": out }))?
        ),
        Format::Text => print_text(&out),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(alerts: &[AlertOut]) {
    if alerts.is_empty() {
        println!("no alerts");
        return;
    }
    for a in alerts {
        let r = &a.alert;
        let dim = if r.dimension.is_empty() {
            String::new()
        } else {
            format!("[{}]", r.dimension)
        };
        let since = match r.state.as_str() {
            "resolved" => r.resolved_ms,
            "firing" => r.firing_ms,
            _ => r.pending_ms,
        };
        println!(
            "#{:<5} {:<9} {:<8} {} {}{}  {}  since {}",
            r.id,
            r.state.to_uppercase(),
            r.severity,
            crate::alert::message::one_line(&r.stream),
            r.rule,
            crate::alert::message::one_line(&dim),
            crate::alert::message::one_line(&r.summary),
            since.map(fmt_time).unwrap_or_else(|| "-".into())
        );
        for n in &a.notifications {
            let when = n
                .sent_ms
                .map(|t| format!("sent {}", fmt_time(t)))
                .unwrap_or_else(|| {
                    format!(
                        "pending, {} attempts, next {}",
                        n.attempts,
                        fmt_time(n.next_attempt_ms)
                    )
                });
            let err = n
                .last_error
                .as_deref()
                .map(|e| format!(" — last error: {e}"))
                .unwrap_or_default();
            println!(
                "        → {} ({}) {}: {}{err}",
                n.channel,
                n.kind,
                when,
                crate::alert::message::one_line(&n.title)
            );
        }
    }
}
