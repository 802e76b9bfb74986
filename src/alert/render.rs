//! Rendering a [`Message`] for a channel.
//!
//! Email uses Tera templates from `templates/alerts/` (embedded; a
//! `templates:` directory in the config overrides them file by file). The
//! templates are operator-written; production text only ever reaches them
//! as context values, never as template source. The HTML template's name
//! ends in `.html`, so Tera escapes every value in it; `get_env` is disabled
//! because secrets live in the environment. Slack and webhook payloads are
//! built as JSON values in code (`slack.rs`, `webhook.rs`), where escaping is
//! done per field.

use std::path::Path;

use super::AlertError;
use super::message::{Message, one_line};
use super::settings::AlertsConfig;

const EMAIL_TXT: &str = include_str!("../../templates/alerts/email.txt");
const EMAIL_HTML: &str = include_str!("../../templates/alerts/email.html");

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Compiled templates; cheap to keep, cheap enough to build per round.
pub struct Renderer {
    tera: tera::Tera,
}

impl Renderer {
    /// The built-in templates, replaced by `email.txt` / `email.html` from
    /// `cfg.templates` where those files exist.
    pub fn new(cfg: &AlertsConfig) -> Result<Renderer, AlertError> {
        Self::with_dir(cfg.templates.as_deref())
    }

    pub fn with_dir(dir: Option<&Path>) -> Result<Renderer, AlertError> {
        let mut tera = tera::Tera::default();
        crate::text::disable_tera_env(&mut tera);
        for (name, builtin) in [("email.txt", EMAIL_TXT), ("email.html", EMAIL_HTML)] {
            let source = match dir.map(|d| d.join(name)) {
                Some(p) if p.exists() => std::fs::read_to_string(&p)
                    .map_err(|e| AlertError::Template(format!("{}: {e}", p.display())))?,
                _ => builtin.to_string(),
            };
            tera.add_raw_template(name, &source).map_err(|e| {
                AlertError::Template(format!("{name}: {}", crate::text::error_chain(&e)))
            })?;
        }
        Ok(Renderer { tera })
    }

    /// Subject, plain text and HTML of the email for `msg`.
    pub fn email(&self, msg: &Message) -> Result<Email, AlertError> {
        let ctx = tera::Context::from_serialize(msg)
            .map_err(|e| AlertError::Template(crate::text::error_chain(&e)))?;
        let render = |name: &str| {
            self.tera.render(name, &ctx).map_err(|e| {
                AlertError::Template(format!("{name}: {}", crate::text::error_chain(&e)))
            })
        };
        Ok(Email {
            subject: one_line(&msg.title),
            text: render("email.txt")?,
            html: render("email.html")?,
        })
    }

    /// The outbox body for a channel kind: JSON, ready to send as is.
    pub fn body(&self, kind: &str, msg: &Message) -> Result<String, AlertError> {
        let v = match kind {
            "email" => serde_json::to_value(self.email(msg)?),
            "slack" => Ok(super::slack::payload(msg)),
            _ => Ok(super::webhook::payload(msg)),
        }
        .map_err(|e| AlertError::Template(e.to_string()))?;
        Ok(v.to_string())
    }
}
