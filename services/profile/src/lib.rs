//! Customer profile service: one profile per customer, identifiers and identity resolution with
//! reversible merges, consent, preferences, segments, export and erasure.
//!
//! Layout: `api/` adapts gRPC to the domain; `identity`, `validate`, `resolve`, `merge`,
//! `consent`, `segments` and `privacy` hold the rules; `store/` the tables and queries.

mod api;
mod consent;
mod error;
mod events;
mod hot_reads;
mod identity;
mod merge;
mod migration;
mod privacy;
mod resolve;
mod segments;
mod store;
mod validate;
mod writes;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use throughline_proto::profile::v1::profile_service_server::ProfileServiceServer;

pub use migration::Migrator;

/// The service's name in `server.services`, its configuration section and its table prefix.
pub const NAME: &str = "profile";

/// `[profile]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// A database of its own for this service; the shared `[database]` when unset.
    #[serde(deserialize_with = "throughline_runtime::config::empty_as_none")]
    pub database_url: Option<String>,
    /// Whether ResolveIdentity and UpsertProfile merge two *known* profiles (each holding an
    /// email, phone, CRM or other non-cookie id) when the identifiers of one call point to
    /// both. Anonymous (cookie-only) profiles always merge into a known one; profiles holding
    /// different ids of the same CRM never merge automatically. When false, two known
    /// profiles are an `IDENTITY_CONFLICT` for a person (or MergeProfiles) to settle.
    pub auto_merge_known_profiles: bool,
    /// Most custom attributes on one profile.
    pub max_attributes: usize,
    /// Largest encoded size of one attribute value, in bytes (a list counts as a whole).
    pub max_attribute_bytes: usize,
    /// Most identifiers one profile holds.
    pub max_identifiers: usize,
    /// Most segments one tenant defines (each is evaluated on every profile change).
    pub max_segments: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            database_url: None,
            auto_merge_known_profiles: true,
            max_attributes: 200,
            max_attribute_bytes: 4096,
            max_identifiers: 100,
            max_segments: 500,
        }
    }
}

/// The running service: what its handlers share.
#[derive(Debug, Clone)]
pub struct Service {
    db: DatabaseConnection,
    options: Arc<Options>,
    segments: segments::Cache,
    hot: hot_reads::HotReads,
}

impl Service {
    /// Must be called within a Tokio runtime (the hot reads start their loaders).
    pub fn new(db: DatabaseConnection, options: Options) -> Self {
        Self {
            hot: hot_reads::HotReads::start(&db),
            db,
            options: Arc::new(options),
            segments: segments::Cache::default(),
        }
    }

    /// The tonic server to add to the process's gRPC server.
    pub fn grpc(&self) -> ProfileServiceServer<api::Api> {
        ProfileServiceServer::new(api::Api::new(self.clone()))
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn options(&self) -> &Options {
        &self.options
    }
}
