//! Customer profile service: one profile per customer, identifiers and identity resolution with reversible merges, consent, preferences, segments, export and erasure.
//!
//! The contract (`throughline.profile.v1.ProfileService`) is served from the start; until the
//! service's own issue lands every RPC answers UNIMPLEMENTED through the generated default
//! stubs, and the crate already owns its configuration section and migrations.

mod api;
mod migration;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use throughline_proto::profile::v1::profile_service_server::ProfileServiceServer;

pub use migration::Migrator;

/// The service's name in `server.services`, its configuration section and its table prefix.
pub const NAME: &str = "profile";

/// `[profile]`
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
}

impl Service {
    pub fn new(db: DatabaseConnection, options: Options) -> Self {
        Self { db, options }
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
