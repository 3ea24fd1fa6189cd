//! Interaction history service: the omnichannel timeline, cross-channel threads, customer
//! context and contact analytics.
//!
//! - Recording (`RecordInteraction`, `BatchRecordInteractions`, streamed `RecordInteractions`)
//!   is idempotent by the client's interaction id and writes each batch, its
//!   `interaction.recorded` events and its threads' progress in one transaction.
//! - Customers are keyed through [`customer`]; a profile-service resolver plugs in with
//!   [`Service::with_resolver`].
//! - Identity changes (`profile.merged`, `profile.unmerged`, `profile.erased`) are applied by
//!   [`profile_events_handler`], a `runtime::events` consumer handler.

mod api;
pub mod customer;
mod events;
mod identity;
mod migration;
mod sql;
mod store;
mod time;
mod validate;
mod writer;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use throughline_runtime::idempotency::Idempotency;

pub use api::InteractionGrpc;
pub use customer::{CustomerKey, CustomerResolver, StoreAsGiven};
pub use identity::{
    PROFILE_EVENT_TYPES, PROFILE_EVENTS_CONSUMER, PROFILE_EVENTS_SOURCE, profile_event_types,
    profile_events_handler,
};
pub use migration::Migrator;
pub use store::timeline_key;
pub use validate::{MAX_ATTRIBUTES_BYTES, MAX_BATCH};

/// The service's name in `server.services`, its configuration section and its table prefix.
pub const NAME: &str = "interaction";

/// `[interaction]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// A database of its own for this service; the shared `[database]` when unset.
    #[serde(
        default,
        deserialize_with = "throughline_runtime::config::empty_as_none"
    )]
    pub database_url: Option<String>,
}

/// The running service: what its handlers share.
#[derive(Debug, Clone)]
pub struct Service {
    db: DatabaseConnection,
    options: Options,
    resolver: customer::SharedResolver,
    idempotency: Idempotency,
    /// Started on first use, inside the runtime.
    writer: Arc<std::sync::OnceLock<writer::Writer>>,
    /// The timeline each profile's interactions are on now (the profile it was merged into,
    /// if any), read for concurrent callers by one query. Started on first use.
    timelines: Arc<std::sync::OnceLock<store::identity::Timelines>>,
    /// Timeline pages, read for concurrent callers together. Started on first use.
    pages: Arc<std::sync::OnceLock<store::timeline::Pages>>,
}

impl Service {
    /// The service with customers stored as given ([`StoreAsGiven`]).
    pub fn new(db: DatabaseConnection, options: Options) -> Self {
        Self {
            db,
            options,
            resolver: Arc::new(StoreAsGiven),
            idempotency: Idempotency::new(NAME),
            writer: Arc::default(),
            timelines: Arc::default(),
            pages: Arc::default(),
        }
    }

    /// The group-commit writer of streamed batches.
    fn writer(&self) -> &writer::Writer {
        self.writer
            .get_or_init(|| writer::Writer::start(self.db.clone()))
    }

    /// The timelines of profiles, read outside any transaction.
    fn timelines(&self) -> &store::identity::Timelines {
        self.timelines
            .get_or_init(|| store::identity::Timelines::start(&self.db))
    }

    /// Timeline pages, read outside any transaction.
    fn pages(&self) -> &store::timeline::Pages {
        self.pages
            .get_or_init(|| store::timeline::Pages::start(&self.db))
    }

    /// Resolves customers through `resolver` (for example the profile service) from now on.
    pub fn with_resolver(mut self, resolver: Arc<dyn CustomerResolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The tonic server to add to the process's gRPC server.
    pub fn grpc(&self) -> InteractionGrpc {
        InteractionGrpc::new(api::Api::new(self.clone()))
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn options(&self) -> &Options {
        &self.options
    }
}
