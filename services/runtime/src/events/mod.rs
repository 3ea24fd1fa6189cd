//! Events between services: each producer writes its events to an outbox in the same
//! transaction as the change that caused them, and serves them, in commit order and with no
//! gap, from its event log.

mod consumer;
mod log_service;
mod outbox;

pub use consumer::{Applied, Consumer, Handler};
pub use log_service::{EventLog, FollowOptions, event_log_server};
pub(crate) use outbox::outbox_table;
pub use outbox::{Batch, Entry, Filter, Outbox, Position};
