//! The engine: claims due instances with leases (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
//! any number of replicas share the work), runs their nodes until each waits or ends, and
//! writes a round's results in one transaction. Other services' events are applied by the
//! inbox loop (`crate::inbox`) beside it.
//!
//! A crash loses nothing: an instance's state is written only after its side effects, and an
//! instance whose lease runs out is claimed again and repeats the step with the same
//! idempotency key, which the other service answers with the first call's result.

pub(crate) mod effects;
pub(crate) mod entry;
pub(crate) mod events;
pub(crate) mod policies;
pub(crate) mod run;
pub(crate) mod webhook;
mod webhook_call;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sea_orm::ConnectionTrait;
use throughline_runtime::Error;
use throughline_runtime::db::write_transaction;
use tokio_util::sync::CancellationToken;

use crate::Service;
use crate::store::entries;
use crate::store::instances::{self, Step};
use run::Run;

/// Runs the engine's two loops until `stopping`.
pub(crate) async fn run(service: Service, stopping: CancellationToken) {
    tokio::join!(
        due_loop(service.clone(), stopping.clone()),
        crate::inbox::run(service, stopping),
    );
}

async fn due_loop(service: Service, stopping: CancellationToken) {
    while !stopping.is_cancelled() {
        match round(&service).await {
            // A full round: there may be more due at once.
            Ok(claimed) if claimed > 0 => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "orchestration: running due instances failed"),
        }
        idle(&service, &stopping).await;
    }
}

/// Waits a poll interval, less when stopping or a manual clock moves.
pub(crate) async fn idle(service: &Service, stopping: &CancellationToken) {
    tokio::select! {
        () = stopping.cancelled() => {}
        () = service.options.clock.sleep(service.options.engine.poll_interval) => {}
    }
}

/// A lease token ending `lease` after `now`, distinct between claims of one process.
pub(crate) fn lease_token(service: &Service, now: i64) -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let lease = i64::try_from(service.options.engine.lease.as_micros()).unwrap_or(i64::MAX / 4);
    let wanted = now.saturating_add(lease);
    // Strictly increasing: two claims never share a token.
    let previous = LAST.fetch_max(wanted, Ordering::SeqCst);
    if previous >= wanted {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        wanted
    }
}

/// Claims the instances due now, runs them and records the results; returns how many were
/// claimed.
pub(crate) async fn round(service: &Service) -> Result<usize, Error> {
    let now = service.now_us();
    let lease = lease_token(service, now);
    let batch = service.options.engine.batch_size as usize;
    let claimed = instances::claim_due(service.db(), now, batch, lease).await?;
    let count = claimed.len();
    if count == 0 {
        return Ok(0);
    }
    let runs: Vec<Run> = futures::stream::iter(claimed)
        .map(|instance| async move {
            let definition = match service
                .version(service.db(), &instance.tenant, &instance.journey, instance.version)
                .await
            {
                Ok(definition) => definition,
                Err(error) => {
                    tracing::warn!(%error, instance = %instance.id, "orchestration: no definition");
                    return None;
                }
            };
            let mut run = Run::new(instance);
            match run::advance(service, &definition, &mut run, now).await {
                Ok(()) => Some(run),
                // Its lease runs out and a later round tries again.
                Err(error) => {
                    tracing::warn!(%error, instance = %run.instance.id, "orchestration: step failed");
                    None
                }
            }
        })
        .buffer_unordered(service.options.engine.concurrency as usize)
        .filter_map(|run| async move { run })
        .collect()
        .await;
    if runs.iter().any(|run| !run.contacts.is_empty()) {
        hold_before_bookkeeping().await;
    }
    let transaction = write_transaction(service.db()).await?;
    record(&transaction, service, &runs, lease).await?;
    transaction.commit().await?;
    Ok(count)
}

/// The fault point of the crash test: with `THROUGHLINE_FAULT_HOLD_AFTER_SEND` set, a round
/// that sent messages logs that it did and stops before recording them, so that the test can
/// SIGKILL the process between the sends and their bookkeeping. Unset, it does nothing.
async fn hold_before_bookkeeping() {
    static HOLD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *HOLD.get_or_init(|| std::env::var_os("THROUGHLINE_FAULT_HOLD_AFTER_SEND").is_some()) {
        tracing::warn!("fault point: messages sent, bookkeeping held");
        std::future::pending::<()>().await;
    }
}

/// Writes what `runs` changed, for the instances `lease` still holds.
pub(crate) async fn record(
    db: &impl ConnectionTrait,
    service: &Service,
    runs: &[Run],
    lease: i64,
) -> Result<(), Error> {
    let mut steps: Vec<(&str, &str, &Step)> = Vec::new();
    let mut emitted = Vec::new();
    for run in runs {
        let instance = &run.instance;
        if !instances::save(db, instance, lease).await? {
            // Cancelled meanwhile, or another replica took over: its word stands.
            continue;
        }
        steps.extend(
            run.steps
                .iter()
                .map(|step| (instance.tenant.as_str(), instance.id.as_str(), step)),
        );
        for seq in &run.contacts {
            entries::record_contact(
                db,
                &instance.tenant,
                &instance.id,
                *seq,
                &instance.journey,
                &instance.customer,
                instance.update_us,
            )
            .await?;
        }
        if run.ended {
            entries::left(db, &instance.tenant, &instance.journey, &instance.customer).await?;
        }
        emitted.extend(run.events.iter().cloned());
    }
    instances::upsert_steps(db, &steps).await?;
    service.outbox.append_all(db, &emitted).await
}

/// `us` as a UTC time.
pub(crate) fn utc(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// `us` in RFC 3339, as CEL sees times.
pub(crate) fn rfc3339(us: i64) -> String {
    utc(us).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A stable 64-bit hash (FNV-1a) of `parts`: the same on every replica and every release,
/// which holdout draws and A/B arms rely on.
pub(crate) fn hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
