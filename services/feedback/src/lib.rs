//! Voice-of-customer feedback service: surveys, invitations, responses, metrics with confidence, sentiment and closed-loop follow-up.
//!
//! The contract (`throughline.feedback.v1.FeedbackService`) is served from the start; until the
//! service's own issue lands every RPC answers UNIMPLEMENTED through the generated default
//! stubs, and the crate already owns its configuration section and migrations.

mod api;
mod migration;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use throughline_proto::feedback::v1::feedback_service_server::FeedbackServiceServer;

pub use migration::Migrator;

/// The service's name in `server.services`, its configuration section and its table prefix.
pub const NAME: &str = "feedback";

/// `[feedback]`
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
    pub fn grpc(&self) -> FeedbackServiceServer<api::Api> {
        FeedbackServiceServer::new(api::Api::new(self.clone()))
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn options(&self) -> &Options {
        &self.options
    }
}
