//! The relay from a producer's outbox to its JetStream stream.
//!
//! It reads the outbox with the same gap-free reader as the event log, publishes, waits for
//! JetStream to store what it published, and only then moves its cursor (kept in the
//! producer's database, consumer `nats-relay`). A relay killed in between publishes those
//! events again; JetStream drops the copies by `Nats-Msg-Id`.
//!
//! Replicas of a producer each run a relay; on PostgreSQL a transaction-scoped advisory lock
//! lets one of them work at a time, so the log is published once and in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, TransactionTrait};
use tokio::sync::Notify;

use super::log_service::{ANNOUNCED_RETRIES, ANNOUNCED_RETRY};
use super::nats::Sent;
use super::{Consumer, Filter, JetStream, Outbox, Position};
use crate::error::Error;

/// The relay's name among the consumers of its producer's database.
pub const RELAY_CONSUMER: &str = "nats-relay";
/// Events read and sent at a time.
const BATCH: u64 = 1000;
/// Batches per round at most: one transaction and one cursor write for all of them, and
/// each batch is read and sent while JetStream stores the one before, so reading,
/// publishing and the broker's acknowledgements overlap instead of taking turns. Bounded so
/// that the cursor (and with it retention) moves now and then through a long backlog.
const BATCHES_PER_ROUND: usize = 8;

/// Publishes one producer's outbox to JetStream.
#[derive(Debug, Clone)]
pub struct Relay {
    service: String,
    db: DatabaseConnection,
    outbox: Outbox,
    cursor: Consumer,
    jetstream: JetStream,
    /// Whether the stream is known to exist; created by the first round that needs it.
    stream_ready: Arc<AtomicBool>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Published this many events.
    Published(usize),
    /// Nothing new, or another replica's relay holds the log.
    Idle,
}

impl Relay {
    pub fn new(service: &str, db: DatabaseConnection, jetstream: JetStream) -> Self {
        Self {
            service: service.to_owned(),
            outbox: Outbox::new(service),
            cursor: Consumer::new(service, RELAY_CONSUMER, db.clone()),
            db,
            jetstream,
            stream_ready: Arc::default(),
        }
    }

    /// Where the relay has published up to; retention keeps everything after it.
    pub async fn position(&self) -> Result<Position, Error> {
        Position::decode(&self.cursor.cursor(&self.service).await?)
    }

    /// Publishes what is new, once.
    pub async fn round(&self) -> Result<Round, Error> {
        let transaction = self.db.begin().await?;
        if transaction.get_database_backend() == DatabaseBackend::Postgres {
            let lock = transaction
                .query_one_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Postgres,
                    "SELECT pg_try_advisory_xact_lock(hashtext($1)) AS held",
                    [format!("throughline-relay-{}", self.service).into()],
                ))
                .await?;
            let held: bool = match lock {
                Some(row) => row.try_get("", "held")?,
                None => false,
            };
            if !held {
                return Ok(Round::Idle);
            }
        }
        let mut after =
            Position::decode(&self.cursor.cursor_on(&transaction, &self.service).await?)?;
        let mut published = 0;
        // The batch sent last, not yet confirmed stored, and the position after it.
        let mut in_flight = None;
        for _ in 0..BATCHES_PER_ROUND {
            let batch = self
                .outbox
                .read(&transaction, after, BATCH, &Filter::default())
                .await?;
            let Some(end) = batch.end else {
                break;
            };
            if !self.stream_ready.load(Ordering::Relaxed) {
                self.jetstream.stream(&self.service).await?;
                self.stream_ready.store(true, Ordering::Relaxed);
            }
            let sent = self.jetstream.send(&self.service, &batch.entries).await?;
            published += batch.entries.len();
            after = end;
            // The previous batch's acknowledgements arrived while this one was read and sent.
            if let Some((previous, _)) = in_flight.replace((sent, end)) {
                Sent::stored(previous).await?;
            }
            if (batch.entries.len() as u64) < BATCH {
                // Nothing more is readable yet.
                break;
            }
        }
        let Some((last, end)) = in_flight else {
            return Ok(Round::Idle);
        };
        last.stored().await?;
        // Every batch of the round is stored in JetStream (a failure above returned and rolled
        // back, leaving the cursor before what is now published again and deduplicated).
        self.cursor
            .store_cursor(&transaction, &self.service, &end.encode())
            .await?;
        transaction.commit().await?;
        Ok(Round::Published(published))
    }

    /// Relays until cancelled: at once after each commit notification (PostgreSQL), else
    /// every `poll_interval`; failures are logged and retried with backoff.
    pub async fn run(self, committed: Arc<Notify>, poll_interval: Duration) {
        let mut backoff = Duration::from_millis(100);
        // Rounds left before giving up on a commit we were told of: its rows may be held back
        // for a moment by an older transaction still running.
        let mut announced_rounds_left = 0_u32;
        loop {
            let notified = committed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = match self.round().await {
                Ok(Round::Published(_)) => {
                    backoff = Duration::from_millis(100);
                    announced_rounds_left = 0;
                    continue;
                }
                Ok(Round::Idle) if announced_rounds_left > 0 => {
                    announced_rounds_left -= 1;
                    ANNOUNCED_RETRY
                }
                Ok(Round::Idle) => poll_interval,
                Err(error) => {
                    tracing::warn!(service = %self.service, error = %error, "relaying events to NATS failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    backoff
                }
            };
            tokio::select! {
                () = notified => announced_rounds_left = ANNOUNCED_RETRIES,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
