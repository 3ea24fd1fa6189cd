//! Idempotent writes by `request_id` (AIP-155), with Stripe's semantics:
//! - the first result of a request is stored and replayed to every retry with the same key;
//! - the same key with a different request is INVALID_ARGUMENT;
//! - a retry while the first attempt is still running is ABORTED (retry later);
//! - a key whose attempt died (crash) is taken over once its in-flight lease has passed.
//!
//! The work runs in one transaction with the recording of its result, so a result is stored
//! exactly when the work's effects commit. Keys are kept for [`Idempotency::retention`]
//! (24 hours by default), then pruned.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use prost::Message;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Which request a key belongs to: keys are scoped by tenant and method.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub tenant: &'a str,
    pub method: &'a str,
    pub request_id: &'a str,
}

/// The longest `request_id` a key takes.
const MAX_REQUEST_ID_LEN: usize = 128;

fn valid_request_id(request_id: &str) -> bool {
    !request_id.is_empty() && request_id.len() <= MAX_REQUEST_ID_LEN
}

/// A request whose result is known before its key is taken: what
/// [`Idempotency::record_new`] records.
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    pub key: Key<'a>,
    /// [`request_hash`] of the request.
    pub request_hash: Vec<u8>,
    /// The encoded response.
    pub response: Vec<u8>,
}

/// What a key remembers of its request, to tell a retry from another request.
pub fn request_hash<Req: Message>(request: &Req) -> Vec<u8> {
    Sha256::digest(request.encode_to_vec()).to_vec()
}

/// The idempotency keys of one service (table `<service>_idempotency_keys`).
#[derive(Debug, Clone)]
pub struct Idempotency {
    table: String,
    in_flight_lease: Duration,
    retention: Duration,
}

enum Claim {
    Claimed,
    Replay(Vec<u8>),
}

impl Idempotency {
    pub fn new(service: &str) -> Self {
        Self {
            table: format!("{service}_idempotency_keys"),
            in_flight_lease: Duration::from_secs(60),
            retention: Duration::from_secs(24 * 3600),
        }
    }

    /// How long an attempt may hold its key before a retry may take it over.
    pub fn with_in_flight_lease(mut self, lease: Duration) -> Self {
        self.in_flight_lease = lease;
        self
    }

    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Runs `work` once per key: the first call's result is committed with its effects and
    /// replayed to later calls carrying the same key and request.
    pub async fn run<Req, Res, F>(
        &self,
        db: &DatabaseConnection,
        key: Key<'_>,
        request: &Req,
        work: F,
    ) -> Result<Res, Error>
    where
        Req: Message,
        Res: Message + Default,
        F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Res, Error>>,
    {
        if !valid_request_id(key.request_id) {
            return Err(Error::invalid(
                "request_id",
                format!("must be 1 to {MAX_REQUEST_ID_LEN} characters"),
            ));
        }
        let hash = request_hash(request);
        match self.claim(db, key, &hash).await? {
            Claim::Replay(bytes) => Res::decode(bytes.as_slice()).map_err(Error::internal),
            Claim::Claimed => {
                // Work reads, then writes: on SQLite the write lock is taken up front, or a
                // concurrent writer's commit would fail the upgrade instead of waiting.
                let transaction = crate::db::write_transaction(db).await?;
                match work(&transaction).await {
                    Ok(response) => {
                        self.record(&transaction, key, &response).await?;
                        transaction.commit().await?;
                        Ok(response)
                    }
                    Err(error) => {
                        drop(transaction);
                        // Free the key so a corrected retry can run.
                        self.release(db, key).await?;
                        Err(error)
                    }
                }
            }
        }
    }

    /// Takes the keys of `finished` that nobody holds and records their results, in the
    /// caller's transaction: the group-commit path for work whose effects the caller writes in
    /// that same transaction. Answers, per entry, whether it was recorded. An entry that was not
    /// (its key taken before, or by an earlier entry of `finished`, or its request id not one a
    /// key takes) must go through [`Idempotency::run`], which replays, refuses or takes over as
    /// for any retry.
    pub async fn record_new<C: ConnectionTrait>(
        &self,
        db: &C,
        finished: &[Finished<'_>],
    ) -> Result<Vec<bool>, Error> {
        let now = Utc::now();
        let mut first = std::collections::HashSet::new();
        let candidates: Vec<bool> = finished
            .iter()
            .map(|entry| {
                valid_request_id(entry.key.request_id)
                    && first.insert((entry.key.tenant, entry.key.method, entry.key.request_id))
            })
            .collect();
        if first.is_empty() {
            return Ok(candidates);
        }
        let mut insert = Query::insert();
        insert.into_table(Alias::new(&self.table)).columns(
            [
                "tenant",
                "method",
                "request_id",
                "request_hash",
                "response",
                "created_at",
                "expires_at",
            ]
            .map(Alias::new),
        );
        for (entry, _) in finished.iter().zip(&candidates).filter(|(_, c)| **c) {
            insert.values_panic([
                entry.key.tenant.into(),
                entry.key.method.into(),
                entry.key.request_id.into(),
                entry.request_hash.clone().into(),
                entry.response.clone().into(),
                now.into(),
                (now + self.retention).into(),
            ]);
        }
        insert
            .on_conflict(
                OnConflict::columns(["tenant", "method", "request_id"].map(Alias::new))
                    .do_nothing()
                    .to_owned(),
            )
            .returning(
                Query::returning().columns(["tenant", "method", "request_id"].map(Alias::new)),
            );
        let mut taken = std::collections::HashSet::new();
        for row in db.query_all(&insert).await? {
            let tenant: String = row.try_get("", "tenant")?;
            let method: String = row.try_get("", "method")?;
            let request_id: String = row.try_get("", "request_id")?;
            taken.insert((tenant, method, request_id));
        }
        Ok(finished
            .iter()
            .zip(candidates)
            .map(|(entry, candidate)| {
                candidate
                    && taken.contains(&(
                        entry.key.tenant.to_owned(),
                        entry.key.method.to_owned(),
                        entry.key.request_id.to_owned(),
                    ))
            })
            .collect())
    }

    async fn claim(
        &self,
        db: &DatabaseConnection,
        key: Key<'_>,
        hash: &[u8],
    ) -> Result<Claim, Error> {
        let now = Utc::now();
        let insert = Query::insert()
            .into_table(Alias::new(&self.table))
            .columns(
                [
                    "tenant",
                    "method",
                    "request_id",
                    "request_hash",
                    "created_at",
                    "expires_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                key.tenant.into(),
                key.method.into(),
                key.request_id.into(),
                hash.to_vec().into(),
                now.into(),
                (now + self.retention).into(),
            ])
            .on_conflict(
                OnConflict::columns(["tenant", "method", "request_id"].map(Alias::new))
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        if db.execute(&insert).await?.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }

        let select = Query::select()
            .columns(["request_hash", "response", "created_at", "expires_at"].map(Alias::new))
            .from(Alias::new(&self.table))
            .and_where(self.matches(key))
            .to_owned();
        let Some(row) = db.query_one(&select).await? else {
            // Pruned between our insert and select: a retry will claim it.
            return Err(Error::Aborted(
                "request_id was being released, retry".into(),
            ));
        };
        let stored_hash: Vec<u8> = row.try_get("", "request_hash")?;
        let response: Option<Vec<u8>> = row.try_get("", "response")?;
        let created_at: DateTime<Utc> = row.try_get("", "created_at")?;
        let expires_at: DateTime<Utc> = row.try_get("", "expires_at")?;

        if expires_at < now {
            // An expired key counts as new: replace it, guarded by its old creation time so
            // two racing retries cannot both win.
            return self.take_over(db, key, created_at, hash, now).await;
        }
        if stored_hash != hash {
            return Err(Error::invalid(
                "request_id",
                "already used for a different request",
            ));
        }
        match response {
            Some(bytes) => Ok(Claim::Replay(bytes)),
            None if now - created_at
                > chrono::Duration::from_std(self.in_flight_lease).unwrap_or_default() =>
            {
                self.take_over(db, key, created_at, hash, now).await
            }
            None => Err(Error::Aborted(
                "a request with this request_id is still in progress; retry later".into(),
            )),
        }
    }

    async fn take_over(
        &self,
        db: &DatabaseConnection,
        key: Key<'_>,
        seen_created_at: DateTime<Utc>,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Claim, Error> {
        let update = Query::update()
            .table(Alias::new(&self.table))
            .value(Alias::new("request_hash"), hash.to_vec())
            .value(Alias::new("response"), Option::<Vec<u8>>::None)
            .value(Alias::new("created_at"), now)
            .value(Alias::new("expires_at"), now + self.retention)
            .and_where(self.matches(key))
            .and_where(Expr::col(Alias::new("created_at")).eq(seen_created_at))
            .to_owned();
        if db.execute(&update).await?.rows_affected() == 1 {
            Ok(Claim::Claimed)
        } else {
            Err(Error::Aborted(
                "a request with this request_id is in progress; retry later".into(),
            ))
        }
    }

    async fn record<Res: Message>(
        &self,
        transaction: &DatabaseTransaction,
        key: Key<'_>,
        response: &Res,
    ) -> Result<(), Error> {
        let update = Query::update()
            .table(Alias::new(&self.table))
            .value(Alias::new("response"), response.encode_to_vec())
            .and_where(self.matches(key))
            .to_owned();
        transaction.execute(&update).await?;
        Ok(())
    }

    async fn release(&self, db: &DatabaseConnection, key: Key<'_>) -> Result<(), Error> {
        let delete = Query::delete()
            .from_table(Alias::new(&self.table))
            .and_where(self.matches(key))
            .and_where(Expr::col(Alias::new("response")).is_null())
            .to_owned();
        db.execute(&delete).await?;
        Ok(())
    }

    /// Deletes keys past their retention; returns how many.
    pub async fn prune(&self, db: &DatabaseConnection) -> Result<u64, Error> {
        let delete = Query::delete()
            .from_table(Alias::new(&self.table))
            .and_where(Expr::col(Alias::new("expires_at")).lt(Utc::now()))
            .to_owned();
        Ok(db.execute(&delete).await?.rows_affected())
    }

    fn matches(&self, key: Key<'_>) -> Expr {
        Expr::col(Alias::new("tenant"))
            .eq(key.tenant)
            .and(Expr::col(Alias::new("method")).eq(key.method))
            .and(Expr::col(Alias::new("request_id")).eq(key.request_id))
    }
}
