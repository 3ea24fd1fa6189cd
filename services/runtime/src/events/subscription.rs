//! A service's standing subscription to another service's events, started with the process
//! over whichever transport the deployment uses.

use throughline_proto::event::v1::event_log_service_client::EventLogServiceClient;
use tokio::task::JoinHandle;

use super::{Consumer, Handler, JetStream};
use crate::error::Error;
use crate::peers::Peers;

/// What a consuming service declares: its consumer, the source it reads, the event types it
/// wants (empty for all) and what it does with each.
#[derive(Clone)]
pub struct Subscription {
    pub consumer: Consumer,
    pub source: String,
    pub event_types: Vec<String>,
    pub handler: Handler,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("consumer", &self.consumer.durable_name())
            .field("source", &self.source)
            .field("event_types", &self.event_types)
            .finish()
    }
}

impl Subscription {
    /// Starts consuming: from JetStream when `jetstream` is given, else from the source's
    /// event log over gRPC; `None` when the source is not deployed, so there is nothing to
    /// consume.
    pub(crate) fn start(
        self,
        jetstream: Option<&JetStream>,
        peers: &Peers,
    ) -> Result<Option<JoinHandle<()>>, Error> {
        let name = self.consumer.durable_name();
        if let Some(jetstream) = jetstream {
            let jetstream = jetstream.clone();
            tracing::info!(consumer = %name, source = %self.source, "consuming events from NATS");
            return Ok(Some(tokio::spawn(async move {
                self.consumer
                    .run_nats(&jetstream, &self.source, &self.event_types, self.handler)
                    .await
            })));
        }
        let Some(channel) = peers.channel(&self.source, None)? else {
            tracing::info!(consumer = %name, source = %self.source, "source not deployed; not consuming its events");
            return Ok(None);
        };
        tracing::info!(consumer = %name, source = %self.source, "consuming events over gRPC");
        Ok(Some(tokio::spawn(async move {
            self.consumer
                .run(
                    EventLogServiceClient::new(channel),
                    &self.source,
                    &self.event_types,
                    self.handler,
                )
                .await
        })))
    }
}
