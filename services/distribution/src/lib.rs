//! Channel distribution service: every outbound message goes through here.
//!
//! - [`template`]: templates per channel and locale, checked for their channel and rendered
//!   with minijinja.
//! - `send`: a `Send` is resolved (profile, channel, address), enforced (consent,
//!   suppressions, quiet hours, one contact budget across every source) and queued, all in
//!   one transaction with its status history and events.
//! - `delivery`: workers claim due messages with leases and hand them to [`provider`]s with
//!   rate limits, retries, failover and dead letters.

mod api;
mod migration;
pub mod provider;
mod store;
pub mod template;

use std::collections::BTreeMap;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use throughline_proto::distribution::v1::distribution_service_server::DistributionServiceServer;
use throughline_runtime::idempotency::Idempotency;

pub use migration::Migrator;

/// The service's name in `server.services`, its configuration section and its table prefix.
pub const NAME: &str = "distribution";

/// `[distribution]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// A database of its own for this service; the shared `[database]` when unset.
    #[serde(deserialize_with = "throughline_runtime::config::empty_as_none")]
    pub database_url: Option<String>,
    /// Template limits.
    pub templates: template::TemplateLimits,
    /// Delivery providers by name (`[distribution.providers.<name>]`).
    pub providers: BTreeMap<String, provider::ProviderOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            database_url: None,
            templates: template::TemplateLimits::default(),
            providers: BTreeMap::new(),
        }
    }
}

/// The running service: what its handlers share.
#[derive(Debug, Clone)]
pub struct Service {
    db: DatabaseConnection,
    options: Options,
    pub(crate) idempotency: Idempotency,
}

impl Service {
    pub fn new(db: DatabaseConnection, options: Options) -> Self {
        Self {
            db,
            options,
            idempotency: Idempotency::new(NAME),
        }
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
