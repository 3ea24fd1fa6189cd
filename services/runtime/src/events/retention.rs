//! Retention of an event log: events older than the configured age are pruned, and a cursor
//! that points before pruned events is refused (FAILED_PRECONDITION, reason
//! `CURSOR_EXPIRED`) rather than silently skipping them.
//!
//! Pruning removes a prefix of the log in read order, up to the newest expired event, and
//! remembers where it stopped (the watermark): a cursor before the watermark has lost events.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, TransactionTrait};

use super::Position;
use super::outbox::outbox_table;
use crate::error::Error;

pub const CURSOR_EXPIRED: &str = "CURSOR_EXPIRED";

/// The watermark table of a service's outbox.
pub(crate) fn watermark_table(service: &str) -> String {
    format!("{}_pruned", outbox_table(service))
}

fn placeholders(backend: DatabaseBackend, count: usize) -> Vec<String> {
    (1..=count)
        .map(|index| match backend {
            DatabaseBackend::Postgres => format!("${index}"),
            // Numbered, so that one value can be used twice, as on PostgreSQL.
            _ => format!("?{index}"),
        })
        .collect()
}

/// Where pruning of `service`'s log stopped; the start of the log when nothing was pruned.
pub async fn watermark<C: ConnectionTrait>(db: &C, service: &str) -> Result<Position, Error> {
    let table = watermark_table(service);
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT xid, row_id FROM \"{table}\" WHERE singleton = 1"),
        ))
        .await?;
    Ok(match row {
        Some(row) => Position::new(row.try_get("", "xid")?, row.try_get("", "row_id")?),
        None => Position::default(),
    })
}

/// Refuses a cursor that points before pruned events.
pub async fn check_cursor<C: ConnectionTrait>(
    db: &C,
    service: &str,
    cursor: Position,
) -> Result<(), Error> {
    if cursor == Position::default() {
        // The start of the log means "the oldest retained event".
        return Ok(());
    }
    if cursor < watermark(db, service).await? {
        return Err(Error::FailedPrecondition {
            reason: CURSOR_EXPIRED,
            message:
                "events after this cursor were pruned; resynchronise and subscribe from the start"
                    .into(),
        });
    }
    Ok(())
}

/// Deletes the events of `service` recorded more than `retention` ago, but none after
/// `relayed` when a relay still has to publish them; returns how many.
pub async fn prune(
    db: &DatabaseConnection,
    service: &str,
    retention: Duration,
    relayed: Option<Position>,
) -> Result<u64, Error> {
    let backend = db.get_database_backend();
    let table = outbox_table(service);
    let watermark_table = watermark_table(service);
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(retention).map_err(Error::internal)?;
    let transaction = db.begin().await?;
    let p = placeholders(backend, 2);
    let newest_expired = transaction
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT xid, id FROM \"{table}\" WHERE recorded_at < {} ORDER BY xid DESC, id DESC LIMIT 1",
                p[0]
            ),
            [cutoff.into()],
        ))
        .await?;
    let Some(row) = newest_expired else {
        return Ok(0);
    };
    let mut mark = Position::new(row.try_get("", "xid")?, row.try_get("", "id")?);
    if let Some(relayed) = relayed {
        mark = mark.min(relayed);
    }
    if mark == Position::default() {
        return Ok(0);
    }
    let deleted = transaction
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM \"{table}\" WHERE xid < {p0} OR (xid = {p0} AND id <= {p1})",
                p0 = p[0],
                p1 = p[1]
            ),
            [mark.xid().into(), mark.id().into()],
        ))
        .await?
        .rows_affected();
    transaction
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO \"{watermark_table}\" (singleton, xid, row_id) VALUES (1, {}, {}) \
                 ON CONFLICT (singleton) DO UPDATE SET xid = excluded.xid, row_id = excluded.row_id",
                p[0], p[1]
            ),
            [mark.xid().into(), mark.id().into()],
        ))
        .await?;
    transaction.commit().await?;
    Ok(deleted)
}

/// Prunes `service`'s event log every `prune_interval`, never past what `relay` has yet to
/// publish; a failure is logged and retried.
pub(crate) async fn prune_periodically(
    service: String,
    db: DatabaseConnection,
    retention: Duration,
    prune_interval: Duration,
    relay: Option<super::Relay>,
) {
    let mut interval = tokio::time::interval(prune_interval);
    loop {
        interval.tick().await;
        let relayed = match &relay {
            Some(relay) => match relay.position().await {
                Ok(position) => Some(position),
                Err(error) => {
                    tracing::warn!(service = %service, error = %error, "pruning events skipped: relay position unknown");
                    continue;
                }
            },
            None => None,
        };
        match prune(&db, &service, retention, relayed).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(service = %service, pruned, "pruned expired events"),
            Err(error) => {
                tracing::warn!(service = %service, error = %error, "pruning events failed")
            }
        }
    }
}
