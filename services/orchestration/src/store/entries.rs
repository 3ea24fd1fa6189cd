//! The entry policy's bookkeeping (last entry and active instances per journey and customer)
//! and the frequency cap's record of messages sent.

use sea_orm::ConnectionTrait;
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;

use super::{CONTACTS, ENTRIES};

/// What the entry policy allows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    /// Once ever.
    pub once: bool,
    /// Again only this long after the last entry (0: at any time).
    pub reentry_us: i64,
    /// More than one active instance at a time.
    pub concurrent: bool,
}

/// Records an entry of `customer` into `journey` at `now` if `rule` allows it; false when it
/// does not. One conditional upsert, so of two concurrent triggers only the allowed ones pass.
pub(crate) async fn try_enter(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
    customer: &str,
    now: i64,
    rule: Rule,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {ENTRIES} (tenant, journey, customer, last_entry_us, active) VALUES ("
    ))
    .bind(tenant)
    .push(", ")
    .bind(journey)
    .push(", ")
    .bind(customer)
    .push(", ")
    .bind(now)
    .push(&format!(
        ", 1) ON CONFLICT (tenant, journey, customer) DO UPDATE SET \
         last_entry_us = excluded.last_entry_us, active = {ENTRIES}.active + 1 WHERE "
    ));
    if rule.once {
        sql.push("1 = 0");
    } else {
        sql.push(&format!("{ENTRIES}.last_entry_us <= "))
            .bind(now - rule.reentry_us);
    }
    if !rule.concurrent {
        sql.push(&format!(" AND {ENTRIES}.active = 0"));
    }
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// An instance of `customer` in `journey` ended.
pub(crate) async fn left(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
    customer: &str,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "UPDATE {ENTRIES} SET active = active - 1 WHERE active > 0 AND tenant = "
    ))
    .bind(tenant)
    .push(" AND journey = ")
    .bind(journey)
    .push(" AND customer = ")
    .bind(customer);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Records a message sent by step `seq` of `instance`.
pub(crate) async fn record_contact(
    db: &impl ConnectionTrait,
    tenant: &str,
    instance: &str,
    seq: i32,
    journey: &str,
    customer: &str,
    now: i64,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {CONTACTS} (tenant, instance, seq, journey, customer, sent_us) VALUES ("
    ))
    .bind(tenant)
    .push(", ")
    .bind(instance)
    .push(", ")
    .bind(seq)
    .push(", ")
    .bind(journey)
    .push(", ")
    .bind(customer)
    .push(", ")
    .bind(now)
    .push(") ON CONFLICT DO NOTHING");
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Messages `journey` sent `customer` since `since`.
pub(crate) async fn contacts_since(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
    customer: &str,
    since: i64,
) -> Result<i64, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT COUNT(*) AS n FROM {CONTACTS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND journey = ")
    .bind(journey)
    .push(" AND customer = ")
    .bind(customer)
    .push(" AND sent_us > ")
    .bind(since);
    let row = db.query_one_raw(sql.statement()).await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}
