//! Delivery providers: the adapters that hand a rendered message to the outside world.
//!
//! Providers are configured, not created by API (`[distribution.providers.<name>]`). A
//! message goes to the first healthy provider for its channel in order of priority; the others
//! are failover.
//!
//! ```toml
//! [distribution.providers.mail]
//! kind = "smtp"
//! channels = ["email"]
//! [distribution.providers.mail.smtp]
//! host = "smtp.example.com"
//! tls = "starttls"                # none | starttls (default, port 587) | tls (port 465)
//! username = "apikey"
//! password = "…"                  # or THROUGHLINE__DISTRIBUTION__PROVIDERS__MAIL__SMTP__PASSWORD
//! from = "Example <noreply@example.com>"
//!
//! [distribution.providers.sms]
//! kind = "http"
//! channels = ["sms"]
//! [distribution.providers.sms.http]
//! url = "https://api.example.com/v1/messages"
//! headers = { Authorization = "Bearer {{ secret }}", Content-Type = "application/json" }
//! secret = "…"
//! body = '{"to": {{ address|tojson }}, "text": {{ content.body|tojson }}}'
//! idempotency_header = "Idempotency-Key"
//! response_id_pointer = "/id"
//! ```

mod http;
mod log;
mod smtp;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use throughline_proto::common::v1::Channel;
use throughline_proto::distribution::v1::TemplateVariant;
use throughline_runtime::Error;

pub use http::HttpOptions;
pub use smtp::{SmtpOptions, SmtpTls};

/// `[distribution.providers.<name>]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderOptions {
    /// The adapter: `log`, `smtp`, `http`.
    pub kind: String,
    /// Channels it delivers: `email`, `sms`, `push`, `whatsapp`, `in_app`, ….
    pub channels: Vec<String>,
    /// Lower is tried first; the others are failover.
    #[serde(default)]
    pub priority: i32,
    /// Messages per second; 0 means unlimited.
    #[serde(default)]
    pub rate_limit: f64,
    /// `[distribution.providers.<name>.smtp]`: required by, and only allowed with, `kind = "smtp"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpOptions>,
    /// `[distribution.providers.<name>.http]`: required by, and only allowed with, `kind = "http"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpOptions>,
}

/// One message as a provider sees it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// `messages/{id}`.
    pub message: &'a str,
    pub tenant: &'a str,
    pub channel: Channel,
    pub address: &'a str,
    /// The rendered content.
    pub content: &'a TemplateVariant,
    /// The send's `request_id`, for providers that accept an idempotency key.
    pub idempotency_key: &'a str,
    /// From 1, across providers.
    pub attempt: u32,
}

/// What a provider answered when it took a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider_message_id: String,
}

/// Why a provider did not take a message. The text is for people and holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt (timeouts, 5xx, 429, SMTP 4xx).
    #[error("transient: {0}")]
    Transient(String),
    /// Never worth another attempt (an address refused, content rejected).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A provider adapter.
#[tonic::async_trait]
pub trait Adapter: Send + Sync + std::fmt::Debug {
    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<Accepted, SendError>;
}

/// A configured provider.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub kind: String,
    pub channels: Vec<Channel>,
    pub priority: i32,
    pub rate_limit: f64,
    pub adapter: Arc<dyn Adapter>,
}

/// The channels a provider can deliver outbound messages on.
pub const OUTBOUND_CHANNELS: [Channel; 6] = [
    Channel::Email,
    Channel::Sms,
    Channel::Push,
    Channel::Whatsapp,
    Channel::InApp,
    Channel::Chat,
];

/// Parses a channel name of the configuration (`email`, `in_app`).
pub fn channel_named(name: &str) -> Option<Channel> {
    Channel::from_str_name(&format!("CHANNEL_{}", name.to_ascii_uppercase()))
        .filter(|channel| *channel != Channel::Unspecified)
}

/// Builds the configured providers in order of priority (then name). Without any, a `log`
/// provider delivers every outbound channel, so a development setup sends something visible.
pub fn build_all(options: &BTreeMap<String, ProviderOptions>) -> Result<Vec<Provider>, Error> {
    if options.is_empty() {
        return Ok(vec![Provider {
            name: "log".to_owned(),
            kind: "log".to_owned(),
            channels: OUTBOUND_CHANNELS.to_vec(),
            priority: 0,
            rate_limit: 0.0,
            adapter: Arc::new(log::LogAdapter::new("log")),
        }]);
    }
    let mut providers = Vec::with_capacity(options.len());
    for (name, options) in options {
        let channels = options
            .channels
            .iter()
            .map(|channel| {
                channel_named(channel).ok_or_else(|| {
                    Error::invalid(
                        format!("distribution.providers.{name}.channels"),
                        format!("unknown channel {channel:?}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = format!("distribution.providers.{name}");
        for (kind, present) in [
            ("smtp", options.smtp.is_some()),
            ("http", options.http.is_some()),
        ] {
            if present && options.kind != kind {
                return Err(Error::invalid(
                    format!("{key}.{kind}"),
                    format!("only allowed with kind = {kind:?}"),
                ));
            }
        }
        let adapter: Arc<dyn Adapter> = match options.kind.as_str() {
            "log" => Arc::new(log::LogAdapter::new(name)),
            "smtp" => {
                let Some(smtp) = &options.smtp else {
                    return Err(Error::invalid(
                        format!("{key}.smtp"),
                        "required with kind = \"smtp\"",
                    ));
                };
                Arc::new(smtp::SmtpAdapter::new(&format!("{key}.smtp"), smtp)?)
            }
            "http" => {
                let Some(http) = &options.http else {
                    return Err(Error::invalid(
                        format!("{key}.http"),
                        "required with kind = \"http\"",
                    ));
                };
                Arc::new(http::HttpAdapter::new(&format!("{key}.http"), http)?)
            }
            other => {
                return Err(Error::invalid(
                    format!("{key}.kind"),
                    format!("unknown provider kind {other:?}: expected log, smtp or http"),
                ));
            }
        };
        providers.push(Provider {
            name: name.clone(),
            kind: options.kind.clone(),
            channels,
            priority: options.priority,
            rate_limit: options.rate_limit,
            adapter,
        });
    }
    providers.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.name.cmp(&b.name)));
    Ok(providers)
}
