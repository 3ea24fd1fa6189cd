//! The NATS JetStream transport, for deployments that outgrow reading each producer's
//! database: a relay publishes every producer's outbox, in log order, to a stream of its own
//! (`<prefix>-<service>`, subjects `<prefix>.<service>.<event type>`), and consumers read it
//! through durable pull consumers.
//!
//! Every event is published with its id as `Nats-Msg-Id`, so a relay that dies between
//! publishing and storing its cursor publishes the same events again and the broker drops
//! the copies (within its duplicate window; consumers are idempotent by event id past it).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use prost::Message;
use serde::{Deserialize, Serialize};
use throughline_proto::event::v1::Event;

use super::Entry;
use crate::config::Validate;
use crate::error::Error;

/// `[events.nats]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsOptions {
    /// The NATS server (or cluster seed) to connect to.
    pub url: String,
    /// Names this deployment's streams and subjects, so several can share one NATS.
    pub prefix: String,
    /// How long the broker remembers event ids to drop a republished copy.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// Copies of each stream in a NATS cluster.
    pub replicas: usize,
    /// How long a delivered event may stay unacknowledged before NATS delivers it again.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            prefix: "throughline".into(),
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
            ack_wait: Duration::from_secs(30),
        }
    }
}

impl Validate for NatsOptions {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.url.trim().is_empty() {
            problems.push(format!("{prefix}.url: must not be empty"));
        }
        // The prefix is one subject token and part of stream names: no dots, wildcards or
        // spaces.
        if self.prefix.is_empty()
            || !self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push(format!(
                "{prefix}.prefix: must be letters, digits, '_' or '-'"
            ));
        }
        if self.duplicate_window.is_zero() {
            problems.push(format!("{prefix}.duplicate_window: must be more than zero"));
        }
        if self.replicas == 0 || self.replicas > 5 {
            problems.push(format!("{prefix}.replicas: must be 1 to 5"));
        }
        if self.ack_wait.is_zero() {
            problems.push(format!("{prefix}.ack_wait: must be more than zero"));
        }
        problems
    }
}

/// A connection to JetStream and the naming of this deployment's streams.
#[derive(Debug, Clone)]
pub struct JetStream {
    context: jetstream::Context,
    options: NatsOptions,
    /// Events are kept in the streams as long as in the outboxes.
    retention: Duration,
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("NATS {what}: {error}"))
}

impl JetStream {
    /// Connects in the background: a process starts while NATS is away and catches up when it
    /// is back, since the outboxes keep every event meanwhile.
    pub async fn connect(options: &NatsOptions, retention: Duration) -> Result<Self, Error> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .name("throughline")
            .connect(options.url.as_str())
            .await
            .map_err(|e| unavailable("connect", e))?;
        Ok(Self {
            context: jetstream::new(client),
            options: options.clone(),
            retention,
        })
    }

    pub fn options(&self) -> &NatsOptions {
        &self.options
    }

    /// The stream holding `service`'s events.
    pub fn stream_name(&self, service: &str) -> String {
        format!("{}-{service}", self.options.prefix)
    }

    /// The subject of an event of `event_type` from `service`.
    pub fn subject(&self, service: &str, event_type: &str) -> String {
        format!("{}.{service}.{event_type}", self.options.prefix)
    }

    /// `service`'s stream, created on first use by whichever side (relay or consumer) comes
    /// first.
    pub async fn stream(&self, service: &str) -> Result<stream::Stream, Error> {
        self.context
            .get_or_create_stream(stream::Config {
                name: self.stream_name(service),
                subjects: vec![format!("{}.{service}.>", self.options.prefix)],
                max_age: self.retention,
                duplicate_window: self.options.duplicate_window,
                num_replicas: self.options.replicas,
                storage: stream::StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| unavailable("stream", e))
    }

    /// Publishes `entries` of `service`'s log, in order, and returns once JetStream has
    /// stored every one (or dropped it as a copy of one it has).
    pub async fn publish(&self, service: &str, entries: &[Entry]) -> Result<(), Error> {
        self.send(service, entries).await?.stored().await
    }

    /// Sends `entries` of `service`'s log, in order, without waiting for JetStream to store
    /// them: the caller can read and send the next batch meanwhile, then wait with
    /// [`Sent::stored`].
    pub(crate) async fn send(&self, service: &str, entries: &[Entry]) -> Result<Sent, Error> {
        let mut acknowledgements = Vec::with_capacity(entries.len());
        for entry in entries {
            let message = jetstream::message::PublishMessage::build()
                .message_id(entry.event.id.as_str())
                .payload(entry.event.encode_to_vec().into());
            let acknowledgement = self
                .context
                .send_publish(self.subject(service, &entry.event.r#type), message)
                .await
                .map_err(|e| unavailable("publish", e))?;
            acknowledgements.push(acknowledgement);
        }
        Ok(Sent(acknowledgements))
    }
}

/// Events sent to JetStream whose storage is not confirmed yet.
pub(crate) struct Sent(Vec<jetstream::context::PublishAckFuture>);

impl Sent {
    /// Returns once JetStream has stored every event sent (or dropped it as a copy of one it
    /// has); an error means some may not be stored.
    pub(crate) async fn stored(self) -> Result<(), Error> {
        for acknowledgement in self.0 {
            acknowledgement
                .await
                .map_err(|e| unavailable("publish acknowledgement", e))?;
        }
        Ok(())
    }
}

/// Reads an event published by a relay.
pub(crate) fn decode(payload: &[u8]) -> Result<Event, Error> {
    Event::decode(payload).map_err(Error::internal)
}
