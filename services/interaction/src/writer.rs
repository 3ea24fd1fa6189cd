//! Group commit for streamed batches. Streams hand their batches to a few writer tasks, and a
//! writer stores every batch waiting at that moment in one transaction: with many streams, a
//! commit carries thousands of interactions instead of one batch's thousand, so the pages of
//! the per-customer indexes that a commit rewrites are shared by many more rows. That matters
//! most on SQLite, whose write-ahead log holds whole pages and which has one writer at a time
//! anyway; PostgreSQL gets a few writers side by side. A batch is acknowledged only after the
//! transaction holding it commits.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbBackend};
use throughline_runtime::Error;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::record::{Outcome, record};
use crate::store::write_transaction;
use crate::validate::NewInteraction;

/// Most interactions one transaction stores.
const MAX_GROUP_ROWS: usize = 8_000;
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
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writers of `db` (one on SQLite, a few on PostgreSQL); they stop when the
    /// last handle is dropped.
    pub(crate) fn start(db: DatabaseConnection) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let writers = match db.get_database_backend() {
            DbBackend::Sqlite => 1,
            _ => 4,
        };
        for _ in 0..writers {
            tokio::spawn(run(db.clone(), queue.clone()));
        }
        Self { jobs }
    }

    /// Stores `items` (valid, with their resolved profiles) in the next group commit.
    pub(crate) async fn record(
        &self,
        tenant: &str,
        items: Vec<NewInteraction>,
        profiles: Vec<Option<String>>,
    ) -> Result<Vec<Outcome>, Error> {
        let (reply, outcome) = oneshot::channel();
        let job = Job {
            tenant: tenant.to_owned(),
            items,
            profiles,
            reply,
        };
        let stopped = || Error::Unavailable("the service is stopping".into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

async fn run(db: DatabaseConnection, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut group = Vec::new();
        {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut rows = first.items.len();
            group.push(first);
            while rows < MAX_GROUP_ROWS {
                match queue.try_recv() {
                    Ok(job) => {
                        rows += job.items.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
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
    let transaction = write_transaction(db).await?;
    let mut outcomes = Vec::with_capacity(group.len());
    for job in group {
        outcomes.push(record(&transaction, &job.tenant, &job.items, &job.profiles, false).await?);
    }
    transaction.commit().await?;
    Ok(outcomes)
}
