//! Email over SMTP with lettre: multipart plain text + HTML.
//!
//! lettre's own timeout covers only the connect (lettre #1027), so the
//! whole exchange is wrapped in `tokio::time::timeout`. The subject is
//! passed through [`one_line`] again here: a CR/LF from a stream name must
//! never reach a header, whatever produced the message.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::message::one_line;
use super::render::Email;
use super::settings::{EmailConfig, SmtpTls};

/// Builds the MIME message (exposed for tests of the headers).
pub fn build(cfg: &EmailConfig, email: &Email) -> Result<lettre::Message, String> {
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| format!("from {:?}: {e}", cfg.from))?;
    let mut b = lettre::Message::builder()
        .from(from)
        .subject(one_line(&email.subject));
    for to in &cfg.to {
        b = b.to(to.parse().map_err(|e| format!("to {to:?}: {e}"))?);
    }
    b.multipart(MultiPart::alternative_plain_html(
        email.text.clone(),
        email.html.clone(),
    ))
    .map_err(|e| e.to_string())
}

fn transport(cfg: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let timeout = cfg.timeout.0;
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
        .port(cfg.port())
        .timeout(Some(timeout));
    if cfg.tls != SmtpTls::None {
        let mut params = TlsParameters::builder(cfg.host.clone());
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            params = params.add_root_certificate(
                Certificate::from_pem(&pem)
                    .map_err(|e| format!("ca_file {}: {e}", ca.display()))?,
            );
        }
        let params = params.build().map_err(|e| format!("TLS setup: {e}"))?;
        b = b.tls(match cfg.tls {
            SmtpTls::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    } else {
        b = b.tls(Tls::None);
    }
    if let Some(user) = &cfg.username {
        let password = cfg
            .password
            .resolve()
            .map_err(|e| format!("SMTP password: {e}"))?
            .ok_or_else(|| "SMTP password is not configured".to_string())?;
        b = b.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(b.build())
}

/// Sends one email; the error says what failed, never the password.
pub async fn send(cfg: &EmailConfig, email: &Email) -> Result<(), String> {
    let message = build(cfg, email)?;
    let transport = transport(cfg)?;
    match tokio::time::timeout(cfg.timeout.0, transport.send(message)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("SMTP {}:{}: {e}", cfg.host, cfg.port())),
        Err(_) => Err(format!(
            "SMTP {}:{}: timed out after {:?}",
            cfg.host,
            cfg.port(),
            cfg.timeout.0
        )),
    }
}
