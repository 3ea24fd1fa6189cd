//! Consuming over JetStream: a durable pull consumer per consuming service and consumer name
//! (`<service>-<name>`) on the producer's stream, shared by the service's replicas, which
//! split the work. An event is acknowledged after its effect commits; one whose effect did
//! not commit is delivered again, and the consumer's processed-event claims make a second
//! delivery of an applied event a no-op.
//!
//! The stored cursor is the stream sequence of the last applied event: JetStream keeps the
//! delivery state, the cursor tells operators where the consumer is.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, pull};

use super::consumer::next_batch;
use super::nats::decode;
use super::{Consumer, Handler, JetStream};
use crate::error::Error;

/// Messages asked for per pull, and applied per transaction at most.
const BATCH: usize = 500;

fn unavailable(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("NATS {what}: {error}"))
}

impl Consumer {
    /// The durable consumer's name on the producer's stream.
    pub fn durable_name(&self) -> String {
        format!("{}-{}", self.service, self.name)
    }

    /// Consumes `source`'s stream for as long as the future runs, reconnecting with backoff.
    /// Cancel it (drop it) to stop: unacknowledged events are delivered again.
    pub async fn run_nats(
        &self,
        jetstream: &JetStream,
        source: &str,
        event_types: &[String],
        handler: Handler,
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self
                .follow_nats_once(jetstream, source, event_types, &handler)
                .await
            {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(consumer = %self.name, source, error = %error, "event consumer interrupted; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            tokio::time::sleep(backoff).await;
        }
    }

    async fn follow_nats_once(
        &self,
        jetstream: &JetStream,
        source: &str,
        event_types: &[String],
        handler: &Handler,
    ) -> Result<(), Error> {
        let stream = jetstream.stream(source).await?;
        let durable = self.durable_name();
        // One type can be filtered by the broker; several are filtered here, since a filter
        // per consumer is all a 2.9 server offers.
        let filter_subject = match event_types {
            [only] => jetstream.subject(source, only),
            _ => String::new(),
        };
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: jetstream.options().ack_wait,
                    filter_subject,
                    max_ack_pending: (BATCH * 4) as i64,
                    ..pull::Config::default()
                },
            )
            .await
            .map_err(|e| unavailable("consumer", e))?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .messages()
            .await
            .map_err(|e| unavailable("pull", e))?;
        while let Some(items) = next_batch(&mut messages, BATCH).await {
            let mut delivered = Vec::with_capacity(items.len());
            let mut events = Vec::with_capacity(items.len());
            let mut last_sequence = None;
            let mut failure = None;
            for item in items {
                let message = match item {
                    Ok(message) => message,
                    Err(error) => {
                        failure = Some(unavailable("delivery", error));
                        break;
                    }
                };
                let sequence = message
                    .info()
                    .map_err(|e| unavailable("delivery", e))?
                    .stream_sequence;
                match decode(&message.payload) {
                    Ok(event) if event_types.is_empty() || event_types.contains(&event.r#type) => {
                        events.push(event)
                    }
                    Ok(_) => {}
                    Err(error) => {
                        // Not ours to apply, and no retry will change it.
                        tracing::warn!(consumer = %self.name, source, sequence, error = %error, "dropping a message that is not an event");
                    }
                }
                last_sequence = Some(sequence);
                delivered.push(message);
            }
            if let Some(sequence) = last_sequence {
                if let Err(error) = self
                    .apply_all(source, &events, &sequence.to_string(), handler)
                    .await
                {
                    // Deliver them again soon rather than after the ack wait.
                    for message in &delivered {
                        let _ = message.ack_with(AckKind::Nak(None)).await;
                    }
                    return Err(error);
                }
                for message in &delivered {
                    message.ack().await.map_err(|e| unavailable("ack", e))?;
                }
            }
            if let Some(failure) = failure {
                return Err(failure);
            }
        }
        Ok(())
    }
}
