//! The `alerts:` section of the config: channels, routes and timing.
//!
//! ```yaml
//! alerts:
//!   base_url: https://canaryd.example.com   # links in notifications
//!   repeat_interval: 4h
//!   group_wait: 30s
//!   flap_window: 12h
//!   channels:
//!     oncall-mail:
//!       email: { host: smtp.example.com, port: 587, tls: starttls, username: canaryd,
//!                password: { env: SMTP_PASSWORD }, from: canaryd@example.com, to: [oncall@example.com] }
//!     team-slack:
//!       slack: { webhook_url: { env: SLACK_WEBHOOK_URL } }
//!   routes:
//!     - { stream: "support-*", severity: critical, channels: [oncall-mail, team-slack] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::diag::{Diagnostic, Diagnostics};
use crate::duration::HumanDuration;
use crate::secret::SecretRef;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Public URL of canaryd for links (`/streams/<stream>`, `/suites/<suite>`);
    /// falls back to the top-level `base_url`.
    pub base_url: Option<String>,
    /// How long a still-firing alert waits before it is notified again.
    pub repeat_interval: HumanDuration,
    /// How long the first pending alert of a stream waits for others to
    /// join it, so one incident makes one notification.
    pub group_wait: HumanDuration,
    /// An alert that fires again within this time of resolving reopens (same
    /// alert, same notification thread) instead of opening a new one.
    pub flap_window: HumanDuration,
    /// Worst examples shown per alert.
    pub max_examples: usize,
    /// Characters kept of each example text before it is cut.
    pub max_example_chars: usize,
    /// How far back evidence is looked for.
    pub evidence_window: HumanDuration,
    /// A directory whose `email.txt` / `email.html` replace the built-in templates.
    pub templates: Option<PathBuf>,
    /// Named delivery channels.
    pub channels: BTreeMap<String, ChannelConfig>,
    /// Which alerts go to which channels. With no routes every alert goes to every channel.
    pub routes: Vec<RouteConfig>,
    /// Retry policy of one delivery and of the outbox.
    pub retry: RetryConfig,
    /// The sessions kill-switch hook (`sessions.hook`), delivered through
    /// the same outbox.
    #[serde(skip)]
    pub hook: Option<crate::sessions::settings::HookConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            repeat_interval: HumanDuration(Duration::from_secs(4 * 3600)),
            group_wait: HumanDuration(Duration::from_secs(30)),
            flap_window: HumanDuration(Duration::from_secs(12 * 3600)),
            max_examples: 3,
            max_example_chars: 400,
            evidence_window: HumanDuration(Duration::from_secs(24 * 3600)),
            templates: None,
            channels: BTreeMap::new(),
            routes: Vec::new(),
            retry: RetryConfig::default(),
            hook: None,
        }
    }
}

/// One channel: exactly one of `email`, `slack`, `webhook`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ChannelConfig {
    Email(EmailConfig),
    Slack(SlackConfig),
    Webhook(WebhookConfig),
}

impl ChannelConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Email(_) => "email",
            ChannelConfig::Slack(_) => "slack",
            ChannelConfig::Webhook(_) => "webhook",
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); the upgrade is required.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on loopback.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// PEM file of an extra root certificate (a private relay's CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: SecretRef,
    pub from: String,
    pub to: Vec<String>,
    /// Limit on one whole SMTP exchange (lettre's own timeout covers only the connect).
    #[serde(default = "default_send_timeout")]
    pub timeout: HumanDuration,
}

impl EmailConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL is a credential: it comes from env, file or credential.
    pub webhook_url: SecretRef,
    #[serde(default = "default_send_timeout")]
    pub timeout: HumanDuration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Extra headers; a value may be a secret (`{ env: TOKEN }`).
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValue>,
    #[serde(default = "default_send_timeout")]
    pub timeout: HumanDuration,
}

/// A header value: literal text, or a secret reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Literal(String),
    Secret(SecretRef),
}

/// Sends alerts matching every given matcher to `channels`. Matchers are
/// exact values or globs (`*`, `?`); an absent matcher matches everything.
/// Every matching route contributes its channels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    pub channels: Vec<String>,
}

/// Retries inside one delivery, then outbox retries with a growing delay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per delivery before the notification goes back to the outbox.
    pub attempts: u32,
    /// First backoff between those attempts; doubled each time.
    pub backoff: HumanDuration,
    /// First outbox delay after a failed delivery; doubled up to `max_delay`.
    pub outbox_delay: HumanDuration,
    pub max_delay: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: HumanDuration(Duration::from_secs(1)),
            outbox_delay: HumanDuration(Duration::from_secs(60)),
            max_delay: HumanDuration(Duration::from_secs(3600)),
        }
    }
}

fn default_send_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl AlertsConfig {
    /// Resolves relative paths (templates, secret files) against the config directory.
    pub fn rebase(&mut self, base: &Path) {
        if let Some(t) = &self.templates
            && t.is_relative()
        {
            self.templates = Some(base.join(t));
        }
        for channel in self.channels.values_mut() {
            match channel {
                ChannelConfig::Email(e) => {
                    e.password.rebase(base);
                    if let Some(ca) = &e.ca_file
                        && ca.is_relative()
                    {
                        e.ca_file = Some(base.join(ca));
                    }
                }
                ChannelConfig::Slack(s) => s.webhook_url.rebase(base),
                ChannelConfig::Webhook(w) => {
                    for v in w.headers.values_mut() {
                        if let HeaderValue::Secret(s) = v {
                            s.rebase(base);
                        }
                    }
                }
            }
        }
    }

    /// Reads every secret the notifier reads when it delivers, so that
    /// `check` fails on an unset variable or a missing file now rather than
    /// at the first alert. The messages name the reference, never a value.
    pub fn secret_errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |what: String, r: &SecretRef, required: bool| match r.resolve() {
            Err(e) => out.push(format!("{what}: {e}")),
            Ok(None) if required => out.push(format!("{what} is not configured")),
            Ok(_) => {}
        };
        for (name, channel) in &self.channels {
            let at = format!("alerts: channel {name}:");
            match channel {
                ChannelConfig::Email(e) if e.username.is_some() => {
                    need(format!("{at} SMTP password"), &e.password, true)
                }
                ChannelConfig::Email(_) => {}
                ChannelConfig::Slack(s) => {
                    need(format!("{at} Slack webhook_url"), &s.webhook_url, true)
                }
                ChannelConfig::Webhook(w) => {
                    for (header, v) in &w.headers {
                        if let HeaderValue::Secret(r) = v {
                            need(format!("{at} header {header}"), r, false);
                        }
                    }
                }
            }
        }
        out
    }

    /// Checks what serde cannot: route targets exist, matchers are valid,
    /// plaintext SMTP stays on loopback, addresses parse.
    pub fn validate(&self, path: &Path) -> Diagnostics {
        let mut d = Diagnostics::default();
        let mut warnings = Vec::new();
        let mut err = |msg: String| d.push(Diagnostic::error(path, 0, 0, format!("alerts: {msg}")));
        for (i, route) in self.routes.iter().enumerate() {
            if route.channels.is_empty() {
                err(format!("route {} has no channels", i + 1));
            }
            for c in &route.channels {
                if !self.channels.contains_key(c) {
                    let hint = crate::yaml::hint(c, self.channels.keys().map(String::as_str));
                    err(format!(
                        "route {} sends to unknown channel `{c}`{hint}",
                        i + 1
                    ));
                }
            }
            if let Some(sev) = &route.severity
                && !sev.contains(['*', '?'])
                && !["info", "warning", "critical"].contains(&sev.as_str())
            {
                err(format!(
                    "route {}: severity must be info, warning or critical, got {sev:?}",
                    i + 1
                ));
            }
            if let Some(rule) = &route.rule
                && !rule.contains(['*', '?'])
                && crate::signals::Rule::parse(rule).is_none()
            {
                err(format!("route {}: unknown rule {rule:?}", i + 1));
            }
        }
        for (name, channel) in &self.channels {
            match channel {
                ChannelConfig::Email(e) => {
                    if e.tls == SmtpTls::None && !is_loopback(&e.host) {
                        err(format!(
                            "channel {name}: tls: none sends mail and passwords in clear; it is only allowed for a relay on loopback"
                        ));
                    }
                    if e.to.is_empty() {
                        err(format!("channel {name}: `to` needs at least one address"));
                    }
                    for a in std::iter::once(&e.from).chain(&e.to) {
                        if a.parse::<lettre::message::Mailbox>().is_err() {
                            err(format!("channel {name}: {a:?} is not an email address"));
                        }
                    }
                    if e.username.is_some() == e.password.is_empty() {
                        err(format!(
                            "channel {name}: give both username and password, or neither"
                        ));
                    }
                    if e.tls == SmtpTls::None && e.username.is_some() {
                        warnings.push(format!(
                            "channel {name}: username and password with tls: none are not sent unless the relay offers AUTH without TLS (most offer it only after STARTTLS); use tls: starttls or tls, or drop the credentials"
                        ));
                    }
                }
                ChannelConfig::Slack(s) => {
                    if s.webhook_url.is_empty() {
                        err(format!(
                            "channel {name}: slack.webhook_url must name an env var, file or credential"
                        ));
                    }
                }
                ChannelConfig::Webhook(w) => {
                    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                        err(format!(
                            "channel {name}: webhook url must be http:// or https://"
                        ));
                    }
                }
            }
        }
        if let Some(u) = &self.base_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            err("base_url must be an http:// or https:// URL".into());
        }
        if let Some(dir) = &self.templates {
            if !dir.is_dir() {
                err(format!("templates: {} is not a directory", dir.display()));
            } else if let Err(e) = super::render::Renderer::with_dir(Some(dir)) {
                err(e.to_string());
            }
        }
        if self.retry.attempts == 0 {
            err("retry.attempts must be at least 1".into());
        }
        for w in warnings {
            d.push(Diagnostic::warning(path, 0, 0, format!("alerts: {w}")));
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_validates() {
        let text = r#"
alerts:
  repeat_interval: 2h
  channels:
    mail:
      email: { host: smtp.example.com, from: "canaryd <c@example.com>", to: [a@example.com], username: u, password: { env: P } }
    chat:
      slack: { webhook_url: { env: SLACK_URL } }
  routes:
    - { rule: "judge_*", channels: [mail, chta] }
"#;
        let e = crate::config::from_str(Path::new("c.yaml"), text).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown channel `chta`; did you mean `chat`?"),
            "{e}"
        );
        let ok = text.replace("chta", "chat");
        let c = crate::config::from_str(Path::new("c.yaml"), &ok).unwrap();
        assert_eq!(c.alerts.repeat_interval.0, Duration::from_secs(7200));
        assert_eq!(c.alerts.channels["mail"].kind(), "email");
    }

    /// The configs shown to users must load.
    #[test]
    fn documented_examples_parse() {
        let yaml_blocks = |md: &str| -> Vec<String> {
            md.split("```yaml\n")
                .skip(1)
                .map(|b| b.split("```").next().unwrap().to_string())
                .collect()
        };
        let docs = include_str!("../../docs/alerts.md");
        let readme = include_str!("../../README.md");
        let doc = yaml_blocks(docs)[0].replace("  templates: ./alert-templates", "");
        let readme_alerts = yaml_blocks(readme)
            .into_iter()
            .find(|b| b.contains("alerts:"))
            .unwrap();
        for text in [doc, readme_alerts] {
            let c = crate::config::from_str(Path::new("/etc/canaryd/canaryd.yaml"), &text)
                .unwrap_or_else(|d| panic!("{d}\n{text}"));
            assert!(!c.alerts.channels.is_empty());
            assert!(!c.alerts.routes.is_empty());
        }
    }

    #[test]
    fn plaintext_smtp_only_on_loopback() {
        let text = "alerts:\n  channels:\n    m:\n      email: { host: mail.example.com, tls: none, from: a@b.c, to: [d@e.f] }\n";
        let e = crate::config::from_str(Path::new("c.yaml"), text).unwrap_err();
        assert!(
            e.to_string()
                .contains("only allowed for a relay on loopback"),
            "{e}"
        );
        let ok = text.replace("mail.example.com", "127.0.0.1");
        crate::config::from_str(Path::new("c.yaml"), &ok).unwrap();
    }
}
