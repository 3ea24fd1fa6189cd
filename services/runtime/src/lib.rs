//! What every Throughline service shares: configuration, telemetry, database and migrations,
//! the server with its tower stack, authentication and scopes, errors, health and shutdown.

pub mod auth;
pub mod backoff;
pub mod batch;
pub mod cache;
pub mod client;
pub mod config;
pub mod customer;
pub mod db;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod json;
pub mod local_time;
pub mod migration;
pub mod outbound;
pub mod peers;
pub mod proportion;
pub mod request;
pub mod server;
pub mod shutdown;
pub mod sql;
pub mod telemetry;
pub mod time;

pub use error::{Error, FieldViolation};
