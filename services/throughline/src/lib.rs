//! The `throughline` process: configuration, start-up and the operator commands, as a library
//! so tests can start the very same thing in-process.

pub mod app;
pub mod config;
mod profile_resolver;
pub mod services;

pub use config::{ALL_SERVICES, Config};
