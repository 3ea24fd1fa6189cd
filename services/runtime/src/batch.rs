//! Read coalescing for hot point reads. Concurrent callers asking for one row each hand their
//! keys to a few loader tasks; a loader takes every key waiting at that moment and reads them
//! in one query. On a 2-core machine a point read through a pool costs far more in per-query
//! work (pool hand-off, protocol round trip, executor start-up on the server) than in the
//! index descent itself, so sharing one query among many callers multiplies what the database
//! answers per second. Nothing waits for a batch to fill: an idle loader lets the tasks that
//! are already runnable run once (one yield, never a timer), then takes every key waiting, so
//! a lone key is read at once and batches grow only under load.
//!
//! Each key is read by a query that starts after the key was handed over, so a caller sees
//! every write committed before its call, as with a read of its own.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tonic::Status;

/// Keys waiting for a loader before callers wait to hand theirs over.
const QUEUE: usize = 4096;

struct Pending<K, V> {
    key: K,
    reply: oneshot::Sender<Result<V, Status>>,
}

/// A handle to the loaders of one kind of read; cheap to clone.
pub struct Batcher<K, V> {
    pending: mpsc::Sender<Pending<K, V>>,
}

impl<K, V> Clone for Batcher<K, V> {
    fn clone(&self) -> Self {
        Self {
            pending: self.pending.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for Batcher<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<K: Send + 'static, V: Send + 'static> Batcher<K, V> {
    /// Starts `loaders` tasks (each holds at most one pooled connection at a time) that read up
    /// to `max_batch` keys per call of `load`. `load` answers one value per key, in the keys'
    /// order. The tasks stop when the last handle is dropped. Must be called within a Tokio
    /// runtime.
    pub fn start<F, Fut>(loaders: usize, max_batch: usize, load: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<V>, Status>> + Send + 'static,
    {
        let (pending, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let load = Arc::new(load);
        for _ in 0..loaders.max(1) {
            tokio::spawn(run(queue.clone(), max_batch.max(1), load.clone()));
        }
        Self { pending }
    }

    /// The value of `key`, read together with whatever other keys are waiting.
    pub async fn load(&self, key: K) -> Result<V, Status> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Status::unavailable("the service is stopping");
        self.pending
            .send(Pending { key, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run<K, V, F, Fut>(
    queue: Arc<Mutex<mpsc::Receiver<Pending<K, V>>>>,
    max_batch: usize,
    load: Arc<F>,
) where
    F: Fn(Vec<K>) -> Fut,
    Fut: Future<Output = Result<Vec<V>, Status>>,
{
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
            if batch.len() < max_batch {
                // The first key woke this loader, and Tokio runs a task just woken before the
                // others already waiting on that worker: read now, and a batch is whoever got
                // here first, often one caller, while the callers queued behind it pay a read
                // each. One yield lets every task already runnable hand its key over first; it
                // costs one pass of the run queue, and nothing when the queue is empty.
                tokio::task::yield_now().await;
                while batch.len() < max_batch {
                    match queue.try_recv() {
                        Ok(pending) => batch.push(pending),
                        Err(_) => break,
                    }
                }
            }
        }
        let (keys, replies): (Vec<K>, Vec<_>) = batch
            .drain(..)
            .map(|pending| (pending.key, pending.reply))
            .unzip();
        let expected = keys.len();
        match load(keys).await {
            Ok(values) if values.len() == expected => {
                for (reply, value) in replies.into_iter().zip(values) {
                    // A caller that gave up has dropped its receiver; nothing to do.
                    let _ = reply.send(Ok(value));
                }
            }
            Ok(values) => {
                let status = Status::internal(format!(
                    "a batched read answered {} values for {expected} keys",
                    values.len()
                ));
                for reply in replies {
                    let _ = reply.send(Err(status.clone()));
                }
            }
            Err(status) => {
                for reply in replies {
                    let _ = reply.send(Err(status.clone()));
                }
            }
        }
    }
}

impl<K, V> Batcher<(String, K), Option<V>>
where
    K: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    /// Loaders of keys of any tenants on `db`'s pool: each batch is read with one call of
    /// `read` (one tenant's keys to the values found) per tenant in it, so every query names
    /// its tenant; a key `read` did not find is answered `None`.
    pub fn per_tenant<E, F, Fut>(
        loaders: usize,
        max_batch: usize,
        db: &sea_orm::DatabaseConnection,
        read: F,
    ) -> Self
    where
        E: Into<Status>,
        F: Fn(sea_orm::DatabaseConnection, String, Vec<K>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<std::collections::HashMap<K, V>, E>> + Send + 'static,
    {
        let db = db.clone();
        Self::start(loaders, max_batch, move |keys| {
            let (db, read) = (db.clone(), read.clone());
            async move { per_tenant(keys, |tenant, group| read(db.clone(), tenant, group)).await }
        })
    }
}

/// Reads a batch that may mix tenants with one query per tenant (every query names its
/// tenant), and answers each key in the batch's order: `None` for a key `read` did not find.
async fn per_tenant<K, V, E, F, Fut>(
    keys: Vec<(String, K)>,
    read: F,
) -> Result<Vec<Option<V>>, Status>
where
    K: Clone + Eq + std::hash::Hash,
    V: Clone,
    E: Into<Status>,
    F: Fn(String, Vec<K>) -> Fut,
    Fut: Future<Output = Result<std::collections::HashMap<K, V>, E>>,
{
    use std::collections::HashMap;
    let mut groups: HashMap<&str, Vec<K>> = HashMap::new();
    for (tenant, key) in &keys {
        groups.entry(tenant.as_str()).or_default().push(key.clone());
    }
    let mut found: HashMap<&str, HashMap<K, V>> = HashMap::with_capacity(groups.len());
    for (tenant, group) in groups {
        found.insert(
            tenant,
            read(tenant.to_owned(), group).await.map_err(Into::into)?,
        );
    }
    Ok(keys
        .iter()
        .map(|(tenant, key)| {
            found
                .get(tenant.as_str())
                .and_then(|values| values.get(key))
                .cloned()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_lone_key_is_read_at_once_and_concurrent_keys_share_reads() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let batcher = Batcher::start(1, 100, move |keys: Vec<u32>| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                // Long enough for the other callers to queue up behind this read.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(keys.into_iter().map(|k| k * 2).collect())
            }
        });
        assert_eq!(batcher.load(21).await.unwrap(), 42);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let answers = futures::future::join_all((0..50u32).map(|k| {
            let batcher = batcher.clone();
            async move { batcher.load(k).await.unwrap() }
        }))
        .await;
        assert_eq!(answers, (0..50u32).map(|k| k * 2).collect::<Vec<_>>());
        let reads = calls.load(Ordering::SeqCst) - 1;
        assert!(
            (1..50).contains(&reads),
            "50 concurrent keys took {reads} reads"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn callers_already_runnable_when_the_first_key_arrives_share_its_read() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = batches.clone();
        let batcher = Batcher::start(1, 100, move |keys: Vec<u32>| {
            recorded.lock().unwrap().push(keys.len());
            async move { Ok(keys) }
        });
        // Spawned by a task on the one worker, the callers all wait on that worker's run queue
        // when the first of them hands its key over and wakes the loader.
        let driver = tokio::spawn(async move {
            let callers: Vec<_> = (0..20u32)
                .map(|k| {
                    let batcher = batcher.clone();
                    tokio::spawn(async move { batcher.load(k).await.unwrap() })
                })
                .collect();
            futures::future::join_all(callers).await
        });
        let answers: Vec<u32> = driver
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(answers, (0..20).collect::<Vec<_>>());
        let batches = batches.lock().unwrap().clone();
        assert!(
            batches.len() <= 2,
            "20 callers runnable together were read in batches of {batches:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_read_fails_every_key_of_its_batch_and_the_next_batch_recovers() {
        let batcher = Batcher::start(1, 10, |keys: Vec<u32>| async move {
            if keys.contains(&0) {
                Err(Status::unavailable("database restarting"))
            } else {
                Ok(keys)
            }
        });
        let failed = batcher.load(0).await.unwrap_err();
        assert_eq!(failed.code(), tonic::Code::Unavailable);
        assert_eq!(batcher.load(7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_loader_answering_the_wrong_number_of_values_is_an_error_not_a_misdelivery() {
        let batcher = Batcher::start(
            1,
            10,
            |_keys: Vec<u32>| async move { Ok(Vec::<u32>::new()) },
        );
        assert_eq!(
            batcher.load(1).await.unwrap_err().code(),
            tonic::Code::Internal
        );
    }

    #[tokio::test]
    async fn every_caller_of_a_key_gets_its_value_whichever_tenant_and_however_often_asked() {
        let keys: Vec<(String, u32)> = [("a", 1), ("b", 1), ("a", 1), ("a", 2), ("b", 9), ("a", 1)]
            .into_iter()
            .map(|(tenant, key)| (tenant.to_owned(), key))
            .collect();
        let answers = per_tenant(keys, |tenant, group: Vec<u32>| async move {
            // Each tenant's keys once per caller; key 9 is not found.
            Ok::<_, Status>(
                group
                    .into_iter()
                    .filter(|key| *key != 9)
                    .map(|key| (key, format!("{tenant}{key}")))
                    .collect::<std::collections::HashMap<_, _>>(),
            )
        })
        .await
        .unwrap();
        let expected = [
            Some("a1"),
            Some("b1"),
            Some("a1"),
            Some("a2"),
            None,
            Some("a1"),
        ];
        assert_eq!(
            answers,
            expected.map(|value| value.map(str::to_owned)).to_vec()
        );
    }
}
