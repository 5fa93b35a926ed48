//! Sending the sign-in link over SMTP (lettre, tokio).
//!
//! The relay is spoken to in plain SMTP: point it at a local MTA (or the test
//! sink), which handles onward delivery and TLS.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::Body;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::ConfigError;

/// Where sign-in mails go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Relay host.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Sender, e.g. `Userz <no-reply@example.com>`.
    pub from: String,
    /// Per-message timeout.
    pub timeout: Duration,
}

impl SmtpSettings {
    /// Parses `host:port` and checks the sender address.
    pub fn from_addr(addr: &str, from: &str) -> Result<Self, ConfigError> {
        let bad = |m: String| ConfigError { field: "smtp", message: m };
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad(format!("{addr:?} is not host:port")))?;
        let port = port.parse().map_err(|_| bad(format!("{addr:?}: bad port")))?;
        if host.is_empty() {
            return Err(bad(format!("{addr:?}: missing host")));
        }
        from.parse::<Mailbox>().map_err(|e| ConfigError { field: "smtp_from", message: format!("{from:?}: {e}") })?;
        Ok(Self { host: host.to_string(), port, from: from.to_string(), timeout: Duration::from_secs(10) })
    }
}

/// Sends mails through the configured relay, or prints the link when there is
/// none.
#[derive(Clone)]
pub(crate) struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish_non_exhaustive()
    }
}

impl Mailer {
    pub(crate) fn new(s: Option<&SmtpSettings>) -> Self {
        let Some(s) = s else {
            return Self { transport: None, from: String::new() };
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str())
            .port(s.port)
            .timeout(Some(s.timeout))
            .build();
        Self { transport: Some(transport), from: s.from.clone() }
    }

    /// Sends the sign-in link to `to`.
    pub(crate) async fn send_sign_in_link(&self, to: &str, link: &str, minutes: u64) -> Result<(), String> {
        let Some(transport) = &self.transport else {
            // No relay configured (local development): the operator reads it here.
            println!("sign-in link for {to} (valid {minutes} minutes, works once): {link}");
            return Ok(());
        };
        let from: Mailbox = self.from.parse().map_err(|e| format!("from: {e}"))?;
        let to: Mailbox = to.parse().map_err(|e| format!("to: {e}"))?;
        let body = format!(
            "Someone (hopefully you) asked to sign in to Userz.\r\n\r\n\
             Open this link within {minutes} minutes to sign in. It works once:\r\n\r\n{link}\r\n\r\n\
             If you did not ask for it, ignore this mail.\r\n"
        );
        // 7bit keeps the link on one line, intact for every client and for tests
        // reading the raw mail (lettre would pick quoted-printable for lines over
        // 76 characters). RFC 5322 allows 998; anything else takes lettre's choice.
        let seven_bit = body.is_ascii() && body.split("\r\n").all(|l| l.len() <= 998);
        let body = if seven_bit {
            Body::dangerous_pre_encoded(body.into_bytes(), ContentTransferEncoding::SevenBit)
        } else {
            Body::new(body)
        };
        let msg = Message::builder()
            .from(from)
            .to(to)
            .subject("Your Userz sign-in link")
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("build: {e}"))?;
        transport.send(msg).await.map(|_| ()).map_err(|e| format!("smtp: {e}"))
    }
}
