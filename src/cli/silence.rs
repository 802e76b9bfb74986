//! `canaryd silence add|list|expire`: mute notifications for a while.

use std::path::Path;
use std::process::ExitCode;

use crate::alert::silence::parse_until;
use crate::store::SilenceRow;
use crate::text::fmt_time;

use super::alerts::{Format, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: SilenceCommand,
    /// Database URL; overrides the config file and $CANARYD_DATABASE_URL.
    #[arg(long, value_name = "URL", global = true)]
    pub database: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum SilenceCommand {
    /// Mute alerts matching every given matcher (exact or glob) until a time.
    Add {
        /// Rule name or glob, e.g. judge_score_drop or "judge_*".
        #[arg(long)]
        rule: Option<String>,
        /// Stream name or glob, e.g. support-bot, "suite:*".
        #[arg(long)]
        stream: Option<String>,
        /// info, warning or critical (or a glob).
        #[arg(long)]
        severity: Option<String>,
        /// A duration from now (2h, 30m, 1d) or an RFC 3339 time.
        #[arg(long)]
        until: String,
        /// Why; shown in `silence list`.
        #[arg(long)]
        comment: String,
        /// Who; defaults to $USER.
        #[arg(long)]
        created_by: Option<String>,
    },
    /// Silences in force (all of them with --all).
    List {
        /// Also list silences that have expired.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// End a silence now.
    Expire {
        /// Id of the silence, as `silence list` shows it.
        id: i64,
    },
}

pub async fn run(config_flag: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let now = crate::clock::Clock::system().now_ms();
    let store = open_store(config_flag, args.database).await?;
    let code = match args.command {
        SilenceCommand::Add {
            rule,
            stream,
            severity,
            until,
            comment,
            created_by,
        } => {
            crate::alert::silence::check_matchers(
                rule.as_deref(),
                stream.as_deref(),
                severity.as_deref(),
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}",
                    e.replace(
                        "give at least one of rule, stream, severity",
                        "give at least one of --rule, --stream, --severity"
                    )
                )
            })?;
            let ends_ms = parse_until(&until, now).ok_or_else(|| {
                anyhow::anyhow!("--until {until:?}: use a duration (2h, 30m) or an RFC 3339 time")
            })?;
            if ends_ms <= now {
                anyhow::bail!("--until {until:?} is in the past");
            }
            let created_by = created_by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".into());
            let id = store
                .add_silence(&SilenceRow {
                    id: 0,
                    rule,
                    stream,
                    severity,
                    starts_ms: now,
                    ends_ms,
                    comment,
                    created_by,
                    created_ms: now,
                })
                .await?;
            println!("silence {id} added, until {}", fmt_time(ends_ms));
            ExitCode::SUCCESS
        }
        SilenceCommand::List { all, format } => {
            let rows = store.list_silences(now, all).await?;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "silences": rows }))?
                ),
                Format::Text if rows.is_empty() => println!("no silences"),
                Format::Text => {
                    for s in rows {
                        let m = |v: &Option<String>| v.clone().unwrap_or_else(|| "*".into());
                        let state = if s.ends_ms > now { "active" } else { "expired" };
                        println!(
                            "#{:<4} {state:<7} rule={} stream={} severity={} until {} by {}: {}",
                            s.id,
                            m(&s.rule),
                            m(&s.stream),
                            m(&s.severity),
                            fmt_time(s.ends_ms),
                            s.created_by,
                            s.comment
                        );
                    }
                }
            }
            ExitCode::SUCCESS
        }
        SilenceCommand::Expire { id } => {
            if store.expire_silence(id, now).await? {
                println!("silence {id} expired");
                ExitCode::SUCCESS
            } else {
                eprintln!("error: no active silence {id}");
                ExitCode::from(1)
            }
        }
    };
    store.close().await;
    Ok(code)
}
