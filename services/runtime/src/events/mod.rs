//! Events between services: each producer writes its events to an outbox in the same
//! transaction as the change that caused them, and serves them, in commit order and with no
//! gap, from its event log.

mod consumer;
mod log_service;
mod nats;
mod nats_consumer;
mod outbox;
mod relay;
mod retention;
mod subscription;

pub use consumer::{Applied, Consumer, Handler};
pub use log_service::SOURCE_NOT_SERVED;
pub(crate) use log_service::listen;
pub use log_service::{EventLog, FollowOptions, event_log_server};
pub use nats::{JetStream, NatsOptions};
pub(crate) use outbox::outbox_table;
pub use outbox::{Batch, Entry, Filter, Outbox, Position, new_event, payload};
pub use relay::{RELAY_CONSUMER, Relay, Round};
pub(crate) use retention::watermark_table;
pub use retention::{CURSOR_EXPIRED, check_cursor, prune, watermark};
pub use subscription::Subscription;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Validate;

/// How events travel from producers to consumers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Consumers subscribe to each producer's event log over gRPC: no broker to run.
    #[default]
    Grpc,
    /// A relay publishes every outbox to NATS JetStream; consumers pull from there.
    Nats,
}

/// `[events]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsOptions {
    /// `grpc` (the default) or `nats`.
    #[serde(default)]
    pub transport: Transport,
    /// How often a caught-up subscription looks for new events.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long events are kept; a cursor older than this gets CURSOR_EXPIRED.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often expired events are pruned.
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
    /// `[events.nats]`, used when `transport = "nats"`.
    #[serde(default)]
    pub nats: NatsOptions,
}

impl Default for EventsOptions {
    fn default() -> Self {
        Self {
            transport: Transport::default(),
            nats: NatsOptions::default(),
            poll_interval: Duration::from_millis(50),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
        }
    }
}

impl Validate for EventsOptions {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("poll_interval", self.poll_interval),
            ("retention", self.retention),
            ("prune_interval", self.prune_interval),
        ] {
            if value.is_zero() {
                problems.push(format!("{prefix}.{key}: must be more than zero"));
            }
        }
        if self.transport == Transport::Nats {
            problems.extend(self.nats.validate(&format!("{prefix}.nats")));
        }
        problems
    }
}

/// The tasks that keep a process's event logs (pruning and, with the NATS transport,
/// relaying) and consume other services' events. Dropping it stops them.
#[derive(Debug, Default)]
pub struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts the background tasks for `producers` (service name, database) and
/// `subscriptions`.
pub async fn start_background(
    producers: &[(String, sea_orm::DatabaseConnection)],
    subscriptions: Vec<Subscription>,
    peers: &crate::peers::Peers,
    options: &EventsOptions,
) -> Result<Background, crate::error::Error> {
    let jetstream = match options.transport {
        Transport::Grpc => None,
        Transport::Nats => Some(JetStream::connect(&options.nats, options.retention).await?),
    };
    let mut tasks = Background::default();
    for (service, db) in producers {
        let relay = jetstream
            .as_ref()
            .map(|jetstream| Relay::new(service, db.clone(), jetstream.clone()));
        if let Some(relay) = &relay {
            let committed = std::sync::Arc::new(tokio::sync::Notify::new());
            if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
                tasks.0.push(tokio::spawn(listen(
                    db.get_postgres_connection_pool().clone(),
                    outbox::notification_channel(service),
                    committed.clone(),
                )));
            }
            tasks.0.push(tokio::spawn(
                relay.clone().run(committed, options.poll_interval),
            ));
        }
        tasks.0.push(tokio::spawn(retention::prune_periodically(
            service.clone(),
            db.clone(),
            options.retention,
            options.prune_interval,
            relay,
        )));
    }
    for subscription in subscriptions {
        if let Some(task) = subscription.start(jetstream.as_ref(), peers)? {
            tasks.0.push(task);
        }
    }
    Ok(tasks)
}
