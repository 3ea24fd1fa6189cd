//! The `smtp` provider: hands an email to an SMTP server (a relay or a provider's submission
//! endpoint) through a pool of connections.
//!
//! The send's idempotency key travels twice: verbatim in an `Idempotency-Key` header, and as
//! a `Message-ID` derived from it, so a message sent again after a lost answer carries the same
//! id and the receiving side (or a person reading the logs) can recognise the repeat.

use std::sync::Mutex;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use throughline_proto::distribution::v1::EmailContent;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_runtime::Error;
use throughline_runtime::config::Secret;

use super::{Accepted, Adapter, Outgoing, SendError};

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or network (and tests).
    None,
    /// Plain connection upgraded with STARTTLS, which is required: nothing is sent if the
    /// server does not offer it. Port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS). Port 465 by default.
    Tls,
}

impl SmtpTls {
    fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Tls => 465,
        }
    }
}

/// `[distribution.providers.<name>.smtp]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpOptions {
    /// The server's host name, also the name its certificate is checked against. Required.
    pub host: String,
    /// Defaults to the port of `tls`: 25, 587 or 465.
    pub port: Option<u16>,
    pub tls: SmtpTls,
    /// Authenticates (PLAIN or LOGIN) when set; `password` is then required.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, `noreply@example.com` or `Example <noreply@example.com>`. Required.
    pub from: String,
    /// For a whole send, connecting included; 10 s by default.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// The most connections kept open to the server; 10 by default.
    pub max_connections: Option<u32>,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

#[derive(Debug)]
pub struct SmtpAdapter {
    from: Mailbox,
    /// The right-hand side of the `Message-ID`s: the sender's domain.
    id_domain: String,
    builder: AsyncSmtpTransportBuilder,
    /// Bounds a whole send: lettre's own timeout only bounds connecting, so a server that
    /// accepts and then falls silent would hold a send forever.
    timeout: Duration,
    /// The pool, built on the first send (it starts a task, which needs the runtime that
    /// `build_all` may not run in) and again only after a send timed out: a send cut short
    /// may leave a connection in the middle of a command, so that pool is let go.
    transport: Mutex<Option<AsyncSmtpTransport<Tokio1Executor>>>,
}

impl SmtpAdapter {
    /// `key` is the options' configuration key, for errors.
    pub fn new(key: &str, options: &SmtpOptions) -> Result<Self, Error> {
        let host = options.host.trim();
        if host.is_empty() {
            return Err(Error::invalid(format!("{key}.host"), "required"));
        }
        let from: Mailbox = options.from.parse().map_err(|_| {
            Error::invalid(
                format!("{key}.from"),
                "not an email address (`a@example.com` or `Name <a@example.com>`)",
            )
        })?;
        let port = options.port.unwrap_or(options.tls.default_port());
        if port == 0 {
            return Err(Error::invalid(format!("{key}.port"), "must not be 0"));
        }
        let timeout = options.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err(Error::invalid(format!("{key}.timeout"), "must not be 0"));
        }
        let max_connections = options.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            return Err(Error::invalid(
                format!("{key}.max_connections"),
                "must not be 0",
            ));
        }
        let tls_error = |error: lettre::transport::smtp::Error| {
            Error::invalid(format!("{key}.host"), format!("cannot set up TLS: {error}"))
        };
        let mut builder = match options.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(tls_error)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(tls_error)?,
        }
        .port(port)
        .timeout(Some(timeout))
        .pool_config(PoolConfig::new().max_size(max_connections));
        match (&options.username, &options.password) {
            (Some(username), Some(password)) if !username.is_empty() => {
                builder = builder.credentials(Credentials::new(
                    username.clone(),
                    password.expose().to_owned(),
                ));
            }
            (Some(username), None) if !username.is_empty() => {
                return Err(Error::invalid(
                    format!("{key}.password"),
                    "required with a username",
                ));
            }
            (None, Some(password)) if !password.is_empty() => {
                return Err(Error::invalid(
                    format!("{key}.username"),
                    "required with a password",
                ));
            }
            _ => {}
        }
        let id_domain = from.email.domain().to_owned();
        Ok(Self {
            from,
            id_domain,
            builder,
            timeout,
            transport: Mutex::new(None),
        })
    }

    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        let mut transport = self
            .transport
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        transport
            .get_or_insert_with(|| self.builder.clone().build())
            .clone()
    }

    fn drop_pool(&self) {
        self.transport
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    fn message(&self, outgoing: &Outgoing<'_>, email: &EmailContent) -> Result<Message, SendError> {
        let to: Mailbox = outgoing.address.parse().map_err(|_| {
            SendError::Permanent("the address is not a valid email address".to_owned())
        })?;
        let key = if outgoing.idempotency_key.is_empty() {
            outgoing.message
        } else {
            outgoing.idempotency_key
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(message_id(key, &self.id_domain)));
        let idempotency_key = header_safe(outgoing.idempotency_key);
        if !idempotency_key.is_empty() {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Idempotency-Key"),
                idempotency_key,
            ));
        }
        let built = match (email.text_body.is_empty(), email.html_body.is_empty()) {
            (false, false) => builder.multipart(MultiPart::alternative_plain_html(
                email.text_body.clone(),
                email.html_body.clone(),
            )),
            (true, false) => builder.singlepart(SinglePart::html(email.html_body.clone())),
            _ => builder.singlepart(SinglePart::plain(email.text_body.clone())),
        };
        built.map_err(|error| SendError::Permanent(format!("cannot build the email: {error}")))
    }
}

#[tonic::async_trait]
impl Adapter for SmtpAdapter {
    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<Accepted, SendError> {
        let Some(Content::Email(email)) = &outgoing.content.content else {
            return Err(SendError::Permanent(
                "the smtp provider only sends email content".to_owned(),
            ));
        };
        let message = self.message(outgoing, email)?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or_default()
            .to_owned();
        let transport = self.transport();
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(Accepted {
                provider_message_id: message_id,
            }),
            Ok(Err(error)) => Err(classify(&error)),
            Err(_) => {
                self.drop_pool();
                Err(SendError::Transient(
                    "the SMTP server did not answer in time".to_owned(),
                ))
            }
        }
    }
}

/// `<tl.{first 128 bits of SHA-256(key), hex}@{domain}>`: the same key always gives the same id,
/// and any key, whatever its characters or length, gives a valid one.
pub(crate) fn message_id(key: &str, domain: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("<tl.{hex}@{domain}>")
}

/// The key as a header value: printable ASCII only, so it cannot break the header block.
fn header_safe(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// SMTP 5xx is permanent; 4xx, a connection, TLS or timeout failure is worth another attempt.
/// The server's text is left out: it often quotes the address.
fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let code = error
        .status()
        .map(|code| format!(" ({code})"))
        .unwrap_or_default();
    if error.is_permanent() {
        return SendError::Permanent(format!("the SMTP server refused the message{code}"));
    }
    if error.is_transient() {
        return SendError::Transient(format!("the SMTP server deferred the message{code}"));
    }
    if error.is_timeout() {
        return SendError::Transient("the SMTP server did not answer in time".to_owned());
    }
    if error.is_tls() {
        return SendError::Transient("TLS with the SMTP server failed".to_owned());
    }
    SendError::Transient("could not talk to the SMTP server".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_derived_from_the_key() {
        let id = message_id("req-1", "example.com");
        assert_eq!(id, message_id("req-1", "example.com"));
        assert_ne!(id, message_id("req-2", "example.com"));
        assert!(
            id.starts_with("<tl.") && id.ends_with("@example.com>"),
            "{id}"
        );
        assert_eq!(id.len(), "<tl.@example.com>".len() + 32);
        let odd = message_id("a key\r\nwith <odd> chars", "example.com");
        assert!(
            odd[1..odd.len() - 1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "@.".contains(c)),
            "{odd}"
        );
    }

    #[test]
    fn header_values_stay_on_one_line() {
        assert_eq!(header_safe("abc\r\nBcc: x@y"), "abcBcc: x@y");
        assert_eq!(header_safe(" req-1 "), "req-1");
    }

    fn options() -> SmtpOptions {
        SmtpOptions {
            host: "localhost".to_owned(),
            tls: SmtpTls::None,
            from: "Sender <noreply@example.com>".to_owned(),
            ..SmtpOptions::default()
        }
    }

    fn field_of(error: Error) -> String {
        match error {
            Error::InvalidArgument(violations) => violations[0].field.clone(),
            other => panic!("not invalid argument: {other:?}"),
        }
    }

    #[test]
    fn options_are_checked() {
        let key = "distribution.providers.mail.smtp";
        assert!(SmtpAdapter::new(key, &options()).is_ok());
        type Change = fn(&mut SmtpOptions);
        let cases: [(&str, Change); 5] = [
            ("host", |o| o.host = " ".to_owned()),
            ("from", |o| o.from = "not an address".to_owned()),
            ("timeout", |o| o.timeout = Some(Duration::ZERO)),
            ("password", |o| o.username = Some("user".to_owned())),
            ("max_connections", |o| o.max_connections = Some(0)),
        ];
        for (field, change) in cases {
            let mut options = options();
            change(&mut options);
            let error = SmtpAdapter::new(key, &options).expect_err(field);
            assert_eq!(field_of(error), format!("{key}.{field}"));
        }
    }
}
