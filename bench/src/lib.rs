//! Throughline's benchmark harness: a closed-loop gRPC load generator, scenarios built on it,
//! and the report that compares every scenario with a bare tonic echo baseline.
//!
//! A scenario is a name, a setup that starts (or points at) a server and returns a [`Target`],
//! and a call closure `Fn(Channel, u64) -> Future<Output = Result<(), Status>>`. The load
//! generator spreads `callers` concurrent loops over `connections` HTTP/2 connections, runs
//! a warm-up, then records per-call latency for the measured duration.

pub mod database;
pub mod distribution;
pub mod echo;
mod error;
pub mod events;
pub mod feedback;
pub mod interaction;
pub mod load;
pub mod memory;
pub mod orchestration;
pub mod profile;
pub mod report;
pub mod scenario;
pub mod stack;

pub use error::BenchError;
pub use load::{LoadConfig, LoadOutcome, connect, run_load};
pub use report::{BASELINE_SCENARIO, Percentiles, Report, ScenarioResult, ratio};
pub use scenario::{CallFuture, InProcessServer, MemorySource, Scenario, Target};
