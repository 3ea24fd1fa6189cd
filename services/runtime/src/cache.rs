//! A short-lived cache of what hot paths read and rarely changes (a tenant's contact policy, its
//! templates, a survey's versions). A change made through this process is seen at once (the
//! entry is dropped); one made through another replica within `ttl`. Without it, point reads
//! per call would cost more than the call's own write.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries beyond which the cache starts afresh (a bound, not an eviction policy: it holds one
/// entry per active tenant or template).
const CAPACITY: usize = 10_000;

/// Values by key, each kept for `ttl` after it was read.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value of `key`, or the one `load` reads (then cached).
    pub async fn get_or_load<E, F, Fut>(&self, key: &K, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Ok(entries) = self.entries.lock()
            && let Some((at, value)) = entries.get(key)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let value = load().await?;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(key.clone(), (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    /// Drops `key`, after a change through this process.
    pub fn invalidate(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_are_read_once_per_ttl_and_invalidation_rereads() {
        let cache = TtlCache::new(Duration::from_secs(60));
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let load = || async {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, ()>(7)
        };
        assert_eq!(cache.get_or_load(&"a", load).await, Ok(7));
        assert_eq!(cache.get_or_load(&"a", load).await, Ok(7));
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
        cache.invalidate(&"a");
        assert_eq!(cache.get_or_load(&"a", load).await, Ok(7));
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2);
        let expired = TtlCache::new(Duration::ZERO);
        expired.get_or_load(&"a", load).await.ok();
        expired.get_or_load(&"a", load).await.ok();
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 4);
    }
}
