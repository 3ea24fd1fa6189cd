//! Channel distribution service: every outbound message goes through here.
//!
//! - [`template`]: templates per channel and locale, checked for their channel and rendered
//!   with minijinja.
//! - `send`: a `Send` is resolved (profile, channel, address), enforced (consent,
//!   suppressions, quiet hours, one contact budget across every source) and queued with its
//!   status history and events; concurrent sends share one transaction (group commit).
//! - `delivery`: workers claim due messages with leases and hand them to [`provider`]s with
//!   rate limits, retries, failover and dead letters.
//! - `inbound` and `inbound_http`: receipts and replies (two-way, STOP), by RPC or a signed
//!   HTTP endpoint.
//! - `webhooks`: every service's events delivered to CRM subscriptions as signed CloudEvents.
//!
//! See docs/distribution.md.

mod api;
mod delivery;
mod inbound;
mod inbound_http;
mod migration;
mod policy;
pub mod provider;
mod recipient;
mod send;
mod store;
pub mod template;
mod webhooks;

use std::collections::BTreeMap;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use throughline_proto::distribution::v1::distribution_service_server::DistributionServiceServer;
use throughline_proto::distribution::v1::{ContactPolicy, Template};
use throughline_runtime::Error;
use throughline_runtime::batch::Batcher;
use throughline_runtime::cache::TtlCache;
use throughline_runtime::config::Validate;
use throughline_runtime::idempotency::Idempotency;
use throughline_runtime::peers::Peers;
use throughline_runtime::server::Worker;

use delivery::Delivery;
pub use delivery::DeliveryOptions;
pub use inbound_http::InboundOptions;

pub use migration::Migrator;
pub use webhooks::{
    EVENT_SOURCES, WEBHOOKS_CONSUMER, WebhookOptions, fan_out_handler, webhook_subscriptions,
};

/// How stale a cached policy or template may be when another replica changed it.
const READ_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Suppression lookups: loaders at once (each holds one pooled connection while it reads) and
/// lookups per query at most.
const SUPPRESSION_LOADERS: usize = 2;
const SUPPRESSION_BATCH: usize = 256;

/// The service's name in `server.services`, its configuration section and its table prefix.
pub const NAME: &str = "distribution";

/// `[distribution]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// A database of its own for this service; the shared `[database]` when unset.
    #[serde(deserialize_with = "throughline_runtime::config::empty_as_none")]
    pub database_url: Option<String>,
    /// Template limits.
    pub templates: template::TemplateLimits,
    /// Delivery providers by name (`[distribution.providers.<name>]`).
    pub providers: BTreeMap<String, provider::ProviderOptions>,
    /// Delivery workers.
    pub delivery: DeliveryOptions,
    /// The HTTP endpoint for providers' receipts and customers' replies.
    pub inbound: InboundOptions,
    /// Webhook subscriptions and their worker.
    pub webhooks: WebhookOptions,
}

impl Validate for Options {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(Error::InvalidArgument(violations)) = provider::build_all(&self.providers) {
            problems.extend(violations.into_iter().map(|v| {
                // Violations name keys from `distribution.`; the prefix may differ in tests.
                let key = v.field.strip_prefix("distribution.").unwrap_or(&v.field);
                format!("{prefix}.{key}: {}", v.description)
            }));
        }
        let listen = &self.inbound.listen_addr;
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "{prefix}.inbound.listen_addr: {listen:?} is not an address such as 0.0.0.0:8090"
            ));
        }
        let delivery = &self.delivery;
        if delivery.concurrency == 0 || delivery.batch_size == 0 || delivery.max_attempts == 0 {
            problems.push(format!(
                "{prefix}.delivery: concurrency, batch_size and max_attempts must be at least 1"
            ));
        }
        problems.extend(self.webhooks.problems(prefix));
        problems
    }
}

/// Loaders of suppression lookups by tenant: `Some` for a suppressed address.
type SuppressionReads = Batcher<(String, store::suppressions::SuppressionQuery), Option<()>>;

/// The running service: what its handlers share.
#[derive(Debug, Clone)]
pub struct Service {
    db: DatabaseConnection,
    options: Options,
    pub(crate) idempotency: Idempotency,
    peers: Peers,
    delivery: Arc<Delivery>,
    /// Started on first use, inside the runtime.
    send_writer: Arc<std::sync::OnceLock<Batcher<send::Accepted, send::Written>>>,
    /// Suppression lookups of concurrent sends, one query per batch; started on first use.
    suppression_reads: Arc<std::sync::OnceLock<SuppressionReads>>,
    /// Each tenant's contact policy, read by every send.
    policies: Arc<TtlCache<String, ContactPolicy>>,
    /// Templates by tenant and id, read by every send.
    templates: Arc<TtlCache<(String, String), Option<Template>>>,
}

impl Service {
    /// The service without peers: profile recipients need [`Service::with_peers`].
    pub fn new(db: DatabaseConnection, options: Options) -> Self {
        let providers = provider::build_all(&options.providers).unwrap_or_else(|error| {
            // The configuration's validation reports this before a service is built.
            tracing::error!(%error, "distribution: invalid providers; none will deliver");
            Vec::new()
        });
        if options.providers.is_empty() {
            tracing::warn!(
                "distribution: no providers configured; messages are logged, not delivered \
                 (set [distribution.providers.<name>])"
            );
        }
        let delivery = Arc::new(Delivery::new(options.delivery.clone(), providers));
        Self {
            db,
            options,
            idempotency: Idempotency::new(NAME),
            peers: Peers::default(),
            delivery,
            send_writer: Arc::default(),
            suppression_reads: Arc::default(),
            policies: Arc::new(TtlCache::new(READ_CACHE_TTL)),
            templates: Arc::new(TtlCache::new(READ_CACHE_TTL)),
        }
    }

    /// Reads profiles (addresses, preferences, consent) from the profile service among `peers`.
    pub fn with_peers(mut self, peers: Peers) -> Self {
        self.peers = peers;
        self
    }

    /// The delivery worker to run while the process serves, unless delivery is disabled.
    pub fn delivery_worker(&self) -> Option<Worker> {
        if !self.options.delivery.enabled {
            return None;
        }
        let delivery = self.delivery.clone();
        let db = self.db.clone();
        Some(Box::new(move |stopping| {
            Box::pin(delivery.run(db, stopping))
        }))
    }

    /// The endpoint for providers' callbacks, when `inbound.listen_addr` is set.
    pub fn inbound_endpoint(&self) -> Option<Worker> {
        let address: std::net::SocketAddr = self.options.inbound.listen_addr.parse().ok()?;
        let service = self.clone();
        Some(Box::new(move |stopping| {
            Box::pin(inbound_http::serve(service, address, stopping))
        }))
    }

    /// The webhook worker to run while the process serves, unless webhooks are disabled.
    pub fn webhook_worker(&self) -> Option<Worker> {
        if !self.options.webhooks.enabled {
            return None;
        }
        let worker = match webhooks::worker::Worker::new(self.options.webhooks.clone()) {
            Ok(worker) => Arc::new(worker),
            Err(error) => {
                tracing::error!(%error, "webhooks: the HTTP client could not be built; no webhook will be delivered");
                return None;
            }
        };
        let db = self.db.clone();
        Some(Box::new(move |stopping| Box::pin(worker.run(db, stopping))))
    }

    /// The tenant's contact policy, as of at most a second ago.
    async fn policy(&self, tenant: &str) -> Result<ContactPolicy, Error> {
        self.policies
            .get_or_load(&tenant.to_owned(), || {
                store::policies::get(&self.db, tenant)
            })
            .await
    }

    /// A template, as of at most a second ago; `None` if there is none.
    async fn template(&self, tenant: &str, id: &str) -> Result<Option<Template>, Error> {
        self.templates
            .get_or_load(&(tenant.to_owned(), id.to_owned()), || {
                store::templates::find(&self.db, tenant, id)
            })
            .await
    }

    /// Forgets what this process cached of a tenant's policy or template after changing it.
    fn forget_policy(&self, tenant: &str) {
        self.policies.invalidate(&tenant.to_owned());
    }

    fn forget_template(&self, tenant: &str, id: &str) {
        self.templates
            .invalidate(&(tenant.to_owned(), id.to_owned()));
    }

    /// The group-commit writers of accepted messages.
    fn send_writer(&self) -> &Batcher<send::Accepted, send::Written> {
        self.send_writer
            .get_or_init(|| send::start_writer(self.db.clone()))
    }

    /// Whether `query` is suppressed for `tenant` now, read together with the lookups of the
    /// sends arriving at the same time (by a query that starts after this call began, so it
    /// sees every suppression committed before it).
    async fn is_suppressed(
        &self,
        tenant: &str,
        query: store::suppressions::SuppressionQuery,
    ) -> Result<bool, Error> {
        let reads = self.suppression_reads.get_or_init(|| {
            Batcher::per_tenant(
                SUPPRESSION_LOADERS,
                SUPPRESSION_BATCH,
                &self.db,
                |db, tenant, queries| async move {
                    store::suppressions::suppressed_among(&db, &tenant, &queries).await
                },
            )
        });
        let found = reads
            .load((tenant.to_owned(), query))
            .await
            .map_err(|status| Error::Unavailable(status.message().to_owned()))?;
        Ok(found.is_some())
    }

    /// Tells the delivery workers of this process that a message is due.
    fn wake_delivery(&self) {
        self.delivery.wake.notify_one();
    }

    /// The tonic server to add to the process's gRPC server.
    pub fn grpc(&self) -> DistributionServiceServer<api::Api> {
        DistributionServiceServer::new(api::Api::new(self.clone()))
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn options(&self) -> &Options {
        &self.options
    }
}
