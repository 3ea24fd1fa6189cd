//! The reads every channel and every other service makes most often: GetProfile, CheckConsent
//! by identifier and the lookups behind ResolveIdentity of a known customer. Each goes through
//! the runtime's read batcher, so callers arriving together share one query (see
//! `throughline_runtime::batch` for why that multiplies throughput and what a caller still
//! sees). Writes and reads inside a transaction never come here: they must see their own
//! transaction.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

use sea_orm::DatabaseConnection;
use throughline_runtime::batch::Batcher;
use tonic::Status;

use crate::error::Result;
use crate::identity::Key;
use crate::store::{self, Children, ConsentQuery, consent, profile};

/// Loader tasks per kind of read. Each takes every call waiting (up to [`MAX_BATCH`]) and
/// reads the keys in at most [`CONCURRENT_QUERIES`] queries, concurrently on the pool: one loader
/// makes the batches as large as the load allows, and the concurrent queries still spread a
/// large batch over several connections.
const LOADERS: usize = 1;
/// Most calls one loader takes at a time.
const MAX_BATCH: usize = 256;
/// Fewest keys a query of several reads.
const PER_QUERY: usize = 32;
/// Most queries a batch runs at once (then at most 64 keys each, the padded statement binding
/// at most ~330 values), so that one batch holds at most this many pooled connections.
const CONCURRENT_QUERIES: usize = 4;

type ProfileRead = Option<(profile::Model, Children)>;
type ConsentRead = Option<(String, Option<consent::Model>)>;

#[derive(Debug, Clone)]
pub struct HotReads {
    profiles: Batcher<(String, String), ProfileRead>,
    consents: Batcher<(String, ConsentQuery), ConsentRead>,
    holders: Batcher<(String, Key), Option<String>>,
    by_key: Batcher<(String, Key), ProfileRead>,
}

impl HotReads {
    /// Starts the loaders on `db`'s pool. Must be called within a Tokio runtime.
    pub fn start(db: &DatabaseConnection) -> Self {
        Self {
            profiles: batcher(db, |db, tenant, ids: Vec<String>| async move {
                store::profiles_with_children(&db, &tenant, &ids).await
            }),
            consents: batcher(db, |db, tenant, queries: Vec<ConsentQuery>| async move {
                store::consents_by_identifier(&db, &tenant, &queries).await
            }),
            holders: batcher(db, |db, tenant, keys: Vec<Key>| async move {
                Ok(store::holders(&db, &tenant, &keys)
                    .await?
                    .into_iter()
                    .collect())
            }),
            by_key: batcher(db, |db, tenant, keys: Vec<Key>| async move {
                store::profiles_holding(&db, &tenant, &keys).await
            }),
        }
    }

    /// A profile's row and everything it holds; `None` when the tenant has no such profile.
    pub async fn profile(&self, tenant: &str, id: &str) -> Result<ProfileRead, Status> {
        self.profiles.load((tenant.to_owned(), id.to_owned())).await
    }

    /// Who holds `query.key`, and their current decision for its (channel, purpose); `None`
    /// when nobody holds it.
    pub async fn consent(&self, tenant: &str, query: ConsentQuery) -> Result<ConsentRead, Status> {
        self.consents.load((tenant.to_owned(), query)).await
    }

    /// The profile holding `key`, with everything it holds; `None` when nobody holds it.
    pub async fn profile_holding(&self, tenant: &str, key: Key) -> Result<ProfileRead, Status> {
        self.by_key.load((tenant.to_owned(), key)).await
    }

    /// The profile holding `key`, if any.
    pub async fn holder(&self, tenant: &str, key: Key) -> Result<Option<String>, Status> {
        self.holders.load((tenant.to_owned(), key)).await
    }
}

/// A batcher of `read` with this module's loaders and batch size.
fn batcher<K, V, F, Fut>(db: &DatabaseConnection, read: F) -> Batcher<(String, K), Option<V>>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + 'static,
    F: Fn(DatabaseConnection, String, Vec<K>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<HashMap<K, V>>> + Send + 'static,
{
    Batcher::per_tenant(LOADERS, MAX_BATCH, db, move |db, tenant, keys: Vec<K>| {
        let per_query = PER_QUERY.max(keys.len().div_ceil(CONCURRENT_QUERIES));
        let reads: Vec<_> = keys
            .chunks(per_query)
            .map(|chunk| read(db.clone(), tenant.clone(), chunk.to_vec()))
            .collect();
        async move {
            let found = futures::future::try_join_all(reads).await?;
            Ok::<_, crate::error::Error>(found.into_iter().flatten().collect::<HashMap<K, V>>())
        }
    })
}
