//! Events between services: each producer writes its events to an outbox in the same
//! transaction as the change that caused them, and serves them, in commit order and with no
//! gap, from its event log.

mod consumer;
mod log_service;
mod outbox;
mod retention;

pub use consumer::{Applied, Consumer, Handler};
pub use log_service::{EventLog, FollowOptions, event_log_server};
pub(crate) use outbox::outbox_table;
pub use outbox::{Batch, Entry, Filter, Outbox, Position};
pub(crate) use retention::watermark_table;
pub use retention::{CURSOR_EXPIRED, check_cursor, prune, watermark};

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Validate;

/// `[events]`
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsOptions {
    /// How often a caught-up subscription looks for new events.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long events are kept; a cursor older than this gets CURSOR_EXPIRED.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often expired events are pruned.
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
}

impl Default for EventsOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(50),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
        }
    }
}

impl Validate for EventsOptions {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("poll_interval", self.poll_interval),
            ("retention", self.retention),
            ("prune_interval", self.prune_interval),
        ] {
            if value.is_zero() {
                problems.push(format!("{prefix}.{key}: must be more than zero"));
            }
        }
        problems
    }
}
