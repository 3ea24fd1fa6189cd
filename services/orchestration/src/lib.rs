//! Journey orchestration service: versioned journeys as data, a durable engine, policies
//! against creep, holdouts and per-node analytics.
//!
//! - `definition`: what a journey is (graph helpers) and its validation; `expr`: CEL
//!   conditions and values over `profile`, `trigger`, `vars`, `now`, `event` and
//!   `interactions`.
//! - `api`: one module per group of RPCs; `store`: one module per table group.
//! - `engine`: the worker that claims due instances with leases and runs their nodes; each
//!   side effect carries an idempotency key of instance, node and step.
//! - `inbox`: other services' events, staged in the consumer's transaction and applied by the
//!   engine (triggers, waits for events, goals, exit conditions, identity changes).
//! - [`Clock`]: injectable time, so tests run a day-long journey in milliseconds.
//!
//! See docs/orchestration.md.

mod api;
mod clock;
mod definition;
mod engine;
mod expr;
mod inbox;
mod migration;
mod stats;
mod store;
pub mod yaml;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use throughline_proto::orchestration::v1::JourneyDefinition;
use throughline_proto::orchestration::v1::orchestration_service_server::OrchestrationServiceServer;
use throughline_runtime::cache::TtlCache;
use throughline_runtime::config::Validate;
use throughline_runtime::customer::{ResolveProfiles, StoreAsGiven};
use throughline_runtime::events::Outbox;
use throughline_runtime::idempotency::Idempotency;
use throughline_runtime::peers::Peers;

pub use clock::Clock;
pub use engine::webhook::{Credential, WebhookOptions};
pub use inbox::{EVENT_SOURCES, EVENTS_CONSUMER, events_handler};
pub use migration::Migrator;

/// The service's name in `server.services`, its configuration section and its table prefix.
pub const NAME: &str = "orchestration";

/// How long a published version stays cached: versions never change, so only memory bounds it.
const VERSION_CACHE_TTL: Duration = Duration::from_secs(600);

/// `[orchestration]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// A database of its own for this service; the shared `[database]` when unset.
    #[serde(deserialize_with = "throughline_runtime::config::empty_as_none")]
    pub database_url: Option<String>,
    pub engine: EngineOptions,
    pub webhooks: WebhookOptions,
    /// The engine's time; the system clock unless a test hands it a manual one.
    #[serde(skip)]
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            database_url: None,
            engine: EngineOptions::default(),
            webhooks: WebhookOptions::default(),
            clock: Clock::system(),
        }
    }
}

/// `[orchestration.engine]`: the worker that runs instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineOptions {
    /// False runs the API only; instances wait for a replica whose engine runs.
    pub enabled: bool,
    /// How often the engine looks for due instances and new events when idle.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a claimed instance or event is this replica's; after a crash, another
    /// replica claims it once this has passed.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Instances claimed per round.
    pub batch_size: u32,
    /// Instances run at the same time (each may be calling another service).
    pub concurrency: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_millis(200),
            lease: Duration::from_secs(30),
            batch_size: 500,
            concurrency: 64,
        }
    }
}

impl Validate for Options {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let engine = &self.engine;
        if engine.poll_interval.is_zero() {
            problems.push(format!(
                "{prefix}.engine.poll_interval: must be longer than zero, for example \"200ms\""
            ));
        }
        if engine.lease < Duration::from_secs(1) {
            problems.push(format!(
                "{prefix}.engine.lease: must be at least one second, for example \"30s\""
            ));
        }
        if engine.batch_size == 0 || engine.batch_size > 10_000 {
            problems.push(format!(
                "{prefix}.engine.batch_size: must be between 1 and 10000"
            ));
        }
        if engine.concurrency == 0 || engine.concurrency > 1_024 {
            problems.push(format!(
                "{prefix}.engine.concurrency: must be between 1 and 1024"
            ));
        }
        problems.extend(self.webhooks.validate(&format!("{prefix}.webhooks")));
        problems
    }
}

/// The running service: what its handlers and its engine share.
#[derive(Debug, Clone)]
pub struct Service {
    db: DatabaseConnection,
    options: Options,
    idempotency: Idempotency,
    outbox: Outbox,
    peers: Peers,
    resolver: Arc<dyn ResolveProfiles>,
    webhooks: engine::webhook::Webhooks,
    /// Published versions by tenant, journey and version: immutable, read by every step.
    versions: Arc<TtlCache<(String, String, i32), Arc<JourneyDefinition>>>,
}

impl Service {
    /// The service on its own: customers stored as given, no other service to act through.
    pub fn new(db: DatabaseConnection, options: Options) -> Self {
        Self {
            db,
            webhooks: engine::webhook::Webhooks::new(options.webhooks.clone()),
            options,
            idempotency: Idempotency::new(NAME),
            outbox: Outbox::new(NAME),
            peers: Peers::default(),
            resolver: Arc::new(StoreAsGiven),
            versions: Arc::new(TtlCache::new(VERSION_CACHE_TTL)),
        }
    }

    /// Acts through the distribution, feedback and profile services among `peers`.
    pub fn with_peers(mut self, peers: Peers) -> Self {
        self.peers = peers;
        self
    }

    /// Resolves customers named by an identifier to their profile.
    pub fn with_resolver(mut self, resolver: Arc<dyn ResolveProfiles>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The tonic server to add to the process's gRPC server.
    pub fn grpc(&self) -> OrchestrationServiceServer<api::Api> {
        OrchestrationServiceServer::new(api::Api::new(self.clone()))
    }

    /// The engine to run while the process serves, unless disabled.
    pub fn engine_worker(&self) -> Option<throughline_runtime::server::Worker> {
        if !self.options.engine.enabled {
            return None;
        }
        let service = self.clone();
        Some(Box::new(move |stopping| {
            Box::pin(engine::run(service, stopping))
        }))
    }

    /// Version `version` of a journey, from the cache or `db`.
    async fn version(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        tenant: &str,
        journey: &str,
        version: i32,
    ) -> Result<Arc<JourneyDefinition>, throughline_runtime::Error> {
        self.versions
            .get_or_load(
                &(tenant.to_owned(), journey.to_owned(), version),
                || async {
                    store::versions::definition(db, tenant, journey, version)
                        .await
                        .map(Arc::new)
                },
            )
            .await
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    fn now_us(&self) -> i64 {
        self.options.clock.now_us()
    }
}
