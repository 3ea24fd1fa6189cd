//! `distribution_suppressions`: addresses that must not be contacted, per channel and purpose
//! (0 for every channel or every purpose).

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, QueryResult};
use throughline_proto::distribution::v1::{Address, Suppression, address};
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;
use throughline_runtime::time::{PageToken, next_page, now_us, timestamp};

const SUPPRESSIONS: &str = "distribution_suppressions";
const COLUMNS: &str = "id, address, channel, purpose, reason, source, note, expire_us, create_us";

/// A suppression as stored; `address` is the key `kind:value`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SuppressionRow {
    pub id: String,
    pub address: String,
    pub channel: i32,
    pub purpose: i32,
    pub reason: i32,
    pub source: String,
    pub note: String,
    pub expire_us: Option<i64>,
    pub create_us: i64,
}

impl SuppressionRow {
    fn read(row: &QueryResult) -> Result<Self, Error> {
        Ok(Self {
            id: row.try_get_by_index(0)?,
            address: row.try_get_by_index(1)?,
            channel: row.try_get_by_index(2)?,
            purpose: row.try_get_by_index(3)?,
            reason: row.try_get_by_index(4)?,
            source: row.try_get_by_index(5)?,
            note: row.try_get_by_index(6)?,
            expire_us: row.try_get_by_index(7)?,
            create_us: row.try_get_by_index(8)?,
        })
    }

    pub(crate) fn to_proto(&self) -> Suppression {
        let (kind, value) = self.address.split_once(':').unwrap_or(("", ""));
        let value = value.to_owned();
        let address = match kind {
            "email" => Some(address::Address::Email(value)),
            "phone" => Some(address::Address::Phone(value)),
            "device" => Some(address::Address::DeviceToken(value)),
            _ => None,
        };
        Suppression {
            name: format!("suppressions/{}", self.id),
            address: Some(Address { address }),
            channel: self.channel,
            purpose: self.purpose,
            reason: self.reason,
            source: self.source.clone(),
            note: self.note.clone(),
            expire_time: self.expire_us.map(timestamp),
            create_time: Some(timestamp(self.create_us)),
        }
    }
}

/// Adds a suppression, or returns the one already there for the same address, channel and
/// purpose.
pub(crate) async fn add<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    row: &SuppressionRow,
) -> Result<SuppressionRow, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {SUPPRESSIONS} (tenant, {COLUMNS}) VALUES "
    ))
    .bind_list::<sea_orm::Value>([
        tenant.into(),
        row.id.clone().into(),
        row.address.clone().into(),
        row.channel.into(),
        row.purpose.into(),
        row.reason.into(),
        row.source.clone().into(),
        row.note.clone().into(),
        row.expire_us.into(),
        row.create_us.into(),
    ])
    .push(" ON CONFLICT (tenant, address, channel, purpose) DO NOTHING");
    db.execute_raw(sql.statement()).await?;
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM {SUPPRESSIONS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND address = ")
    .bind(row.address.as_str())
    .push(" AND channel = ")
    .bind(row.channel)
    .push(" AND purpose = ")
    .bind(row.purpose);
    db.query_one_raw(sql.statement())
        .await?
        .map(|row| SuppressionRow::read(&row))
        .transpose()?
        .ok_or_else(|| Error::internal("a suppression vanished as it was added"))
}

/// Removes a suppression; `false` when there was none.
pub(crate) async fn remove<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("DELETE FROM {SUPPRESSIONS} WHERE tenant = "))
        .bind(tenant)
        .push(" AND id = ")
        .bind(id);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() > 0)
}

/// What a send asks of the suppression list: an address (a `kind:value` key), a channel and
/// a purpose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SuppressionQuery {
    pub address: String,
    pub channel: i32,
    pub purpose: i32,
}

/// Which of `queries` of `tenant` are suppressed now, in one query: the suppressed ones map
/// to `()`.
pub(crate) async fn suppressed_among<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    queries: &[SuppressionQuery],
) -> Result<HashMap<SuppressionQuery, ()>, Error> {
    let mut found = HashMap::new();
    // Under SQLite's limit on bound values.
    for chunk in queries.chunks(1000) {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!(
            "SELECT address, channel, purpose FROM {SUPPRESSIONS} WHERE tenant = "
        ))
        .bind(tenant)
        .push(" AND address IN ")
        .bind_list(chunk.iter().map(|query| query.address.as_str()))
        .push(" AND (expire_us IS NULL OR expire_us > ")
        .bind(now_us())
        .push(")");
        let rows = db.query_all_raw(sql.statement()).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let address: String = row.try_get("", "address")?;
            let channel: i32 = row.try_get("", "channel")?;
            let purpose: i32 = row.try_get("", "purpose")?;
            entries.push((address, channel, purpose));
        }
        // Channel or purpose 0 suppresses every channel or purpose.
        for query in chunk {
            if entries.iter().any(|(address, channel, purpose)| {
                *address == query.address
                    && (*channel == 0 || *channel == query.channel)
                    && (*purpose == 0 || *purpose == query.purpose)
            }) {
                found.insert(query.clone(), ());
            }
        }
    }
    Ok(found)
}

/// A page of suppressions, newest first.
pub(crate) async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    address: Option<&str>,
    reasons: &[i32],
    after: Option<&PageToken>,
    page_size: usize,
) -> Result<(Vec<SuppressionRow>, Option<PageToken>), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM {SUPPRESSIONS} WHERE tenant = "
    ))
    .bind(tenant);
    if let Some(address) = address {
        sql.push(" AND address = ").bind(address);
    }
    if !reasons.is_empty() {
        sql.push(" AND reason IN ")
            .bind_list(reasons.iter().copied());
    }
    if let Some(after) = after {
        sql.after_page("create_us", after);
    }
    sql.push(" ORDER BY create_us DESC, id DESC LIMIT ")
        .bind(i64::try_from(page_size + 1).unwrap_or(i64::MAX));
    let mut rows = db
        .query_all_raw(sql.statement())
        .await?
        .iter()
        .map(SuppressionRow::read)
        .collect::<Result<Vec<_>, _>>()?;
    let next = next_page(&mut rows, page_size, |row| PageToken {
        sort_us: row.create_us,
        id: row.id.clone(),
    });
    Ok((rows, next))
}
