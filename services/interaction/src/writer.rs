//! Group commit for streamed batches. Each stream hands its batches to one of a few writer
//! tasks, and a writer stores every batch waiting at that moment in one transaction: with many
//! streams, a commit carries thousands of interactions instead of one batch's thousand, so the
//! pages of the per-customer indexes that a commit rewrites are shared by many more rows. That
//! matters most on SQLite, whose write-ahead log holds whole pages and which has one writer at
//! a time anyway; PostgreSQL gets a few writers side by side. A stream hands over its next
//! batches without waiting for the earlier ones to commit, so the queue is never empty while
//! streams are sending. A batch is acknowledged only after the transaction holding it commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::{DatabaseConnection, DbBackend};
use throughline_runtime::Error;
use tokio::sync::{mpsc, oneshot};

use crate::store::record::{Batch, Outcome, record_batches};
use crate::store::write_transaction;
use crate::validate::NewInteraction;

/// Most interactions one transaction stores. A commit rewrites most leaf pages of the
/// per-customer indexes whatever its size, so the more rows share it the less each costs:
/// SQLite ingest measured 26.8k/s with groups of up to 8,000 and 29.9k/s with 32,000.
const MAX_GROUP_ROWS: usize = 32_000;
/// Batches waiting for a writer before streams wait to hand theirs over.
const QUEUE: usize = 64;

struct Job {
    tenant: String,
    items: Vec<NewInteraction>,
    profiles: Vec<Option<String>>,
    reply: oneshot::Sender<Result<Vec<Outcome>, Error>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Writer {
    /// Each writer's queue.
    lanes: Arc<[mpsc::Sender<Job>]>,
    next_lane: Arc<AtomicUsize>,
}

impl Writer {
    /// Starts the writers of `db` (one on SQLite, a few on PostgreSQL); they stop when the
    /// last handle is dropped.
    pub(crate) fn start(db: DatabaseConnection) -> Self {
        let writers = match db.get_database_backend() {
            DbBackend::Sqlite => 1,
            _ => 4,
        };
        let lanes = (0..writers)
            .map(|_| {
                let (jobs, queue) = mpsc::channel(QUEUE);
                tokio::spawn(run(db.clone(), queue));
                jobs
            })
            .collect();
        Self {
            lanes,
            next_lane: Arc::default(),
        }
    }

    /// The writer a stream hands all its batches to, in turn across streams. One writer per
    /// stream commits the stream's batches in the order they were sent, so their
    /// `interaction.recorded` events follow that order too.
    pub(crate) fn lane(&self) -> Lane {
        let index = self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        Lane {
            jobs: self.lanes[index].clone(),
        }
    }
}

/// One writer's queue.
pub(crate) struct Lane {
    jobs: mpsc::Sender<Job>,
}

impl Lane {
    /// Hands `items` (valid, with their resolved profiles) to the writer's next group commit,
    /// waiting only while its queue is full; the returned [`Commit`] tells when it is stored.
    pub(crate) async fn submit(
        &self,
        tenant: &str,
        items: Vec<NewInteraction>,
        profiles: Vec<Option<String>>,
    ) -> Result<Commit, Error> {
        let (reply, outcome) = oneshot::channel();
        let job = Job {
            tenant: tenant.to_owned(),
            items,
            profiles,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| stopped())?;
        Ok(Commit { outcome })
    }
}

/// Items handed to the writer, stored when their group commits.
pub(crate) struct Commit {
    outcome: oneshot::Receiver<Result<Vec<Outcome>, Error>>,
}

impl Commit {
    /// What became of each item, once its transaction committed (or failed).
    pub(crate) async fn outcomes(self) -> Result<Vec<Outcome>, Error> {
        self.outcome.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Unavailable("the service is stopping".into())
}

async fn run(db: DatabaseConnection, mut queue: mpsc::Receiver<Job>) {
    // SQLite's one writer keeps its page cache only on a connection of its own.
    let db = match throughline_runtime::db::dedicated_writer(&db).await {
        Ok(own) => own,
        Err(error) => {
            tracing::warn!(%error, "no connection of the writer's own; writing through the pool");
            db
        }
    };
    loop {
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut rows = first.items.len();
        let mut group = vec![first];
        while rows < MAX_GROUP_ROWS {
            match queue.try_recv() {
                Ok(job) => {
                    rows += job.items.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        match store(&db, &group).await {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(%error, batches = group.len(), "storing a group of streamed batches failed");
                for job in group {
                    let _ = job.reply.send(Err(Error::Unavailable(
                        "the batch was not stored; send it again".into(),
                    )));
                }
            }
        }
    }
}

async fn store(db: &DatabaseConnection, group: &[Job]) -> Result<Vec<Vec<Outcome>>, Error> {
    let batches: Vec<Batch<'_>> = group
        .iter()
        .map(|job| Batch {
            tenant: &job.tenant,
            items: &job.items,
            profiles: &job.profiles,
        })
        .collect();
    let transaction = write_transaction(db).await?;
    let outcomes = record_batches(&transaction, &batches, false).await?;
    transaction.commit().await?;
    Ok(outcomes)
}
