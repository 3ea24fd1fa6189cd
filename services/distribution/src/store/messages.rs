//! `distribution_messages` and their status history (`distribution_message_history`).
//!
//! A message row is the queue entry too: QUEUED and DEFERRED rows with `next_attempt_us` due
//! are what delivery workers claim (see `crate::delivery`).

use std::collections::{HashMap, HashSet};

use prost::Message as _;
use sea_orm::{ConnectionTrait, QueryResult};
use throughline_proto::distribution::v1::{Message, Recipient, StatusChange, TemplateVariant};
use throughline_runtime::Error;
use throughline_runtime::sql::{Sql, insert_rows};
use throughline_runtime::time::{PageToken, next_page, timestamp};

pub(crate) const MESSAGES: &str = "distribution_messages";
pub(crate) const HISTORY: &str = "distribution_message_history";

/// The columns [`MessageRow::read`] reads, in order.
pub(crate) const MESSAGE_COLUMNS: &str = "tenant, id, request_id, send_group, profile, \
     recipient, channel, address, purpose, priority, template, locale, origin, status, content, \
     provider, provider_message_id, attempt_count, not_before_us, next_attempt_us, \
     lease_until_us, budget_keys, history_len, create_us, update_us";

/// One message as stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct MessageRow {
    pub tenant: String,
    pub id: String,
    pub request_id: String,
    pub send_group: String,
    pub profile: String,
    pub recipient: Vec<u8>,
    pub channel: i32,
    pub address: String,
    pub purpose: i32,
    pub priority: i32,
    pub template: String,
    pub locale: String,
    pub origin: String,
    pub status: i32,
    pub content: Vec<u8>,
    pub provider: String,
    pub provider_message_id: String,
    pub attempt_count: i32,
    pub not_before_us: Option<i64>,
    pub next_attempt_us: i64,
    pub lease_until_us: i64,
    pub budget_keys: String,
    pub history_len: i32,
    pub create_us: i64,
    pub update_us: i64,
}

/// One status change as stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct Change {
    pub status: i32,
    pub reason: i32,
    pub time_us: i64,
    pub provider: String,
    pub attempt: i32,
    pub detail: String,
}

impl MessageRow {
    /// Reads a row of [`MESSAGE_COLUMNS`] by position (by name costs a lookup per column).
    pub(crate) fn read(row: &QueryResult) -> Result<Self, Error> {
        Ok(Self {
            tenant: row.try_get_by_index(0)?,
            id: row.try_get_by_index(1)?,
            request_id: row.try_get_by_index(2)?,
            send_group: row.try_get_by_index(3)?,
            profile: row.try_get_by_index(4)?,
            recipient: row.try_get_by_index(5)?,
            channel: row.try_get_by_index(6)?,
            address: row.try_get_by_index(7)?,
            purpose: row.try_get_by_index(8)?,
            priority: row.try_get_by_index(9)?,
            template: row.try_get_by_index(10)?,
            locale: row.try_get_by_index(11)?,
            origin: row.try_get_by_index(12)?,
            status: row.try_get_by_index(13)?,
            content: row.try_get_by_index(14)?,
            provider: row.try_get_by_index(15)?,
            provider_message_id: row.try_get_by_index(16)?,
            attempt_count: row.try_get_by_index(17)?,
            not_before_us: row.try_get_by_index(18)?,
            next_attempt_us: row.try_get_by_index(19)?,
            lease_until_us: row.try_get_by_index(20)?,
            budget_keys: row.try_get_by_index(21)?,
            history_len: row.try_get_by_index(22)?,
            create_us: row.try_get_by_index(23)?,
            update_us: row.try_get_by_index(24)?,
        })
    }

    pub(crate) fn name(&self) -> String {
        message_name(&self.id)
    }

    /// The rendered content; `None` for a message suppressed before rendering.
    pub(crate) fn content(&self) -> Result<Option<TemplateVariant>, Error> {
        if self.content.is_empty() {
            return Ok(None);
        }
        TemplateVariant::decode(self.content.as_slice())
            .map(Some)
            .map_err(Error::internal)
    }

    /// The message as the contract shows it.
    pub(crate) fn to_proto(&self, history: Vec<StatusChange>) -> Message {
        let queued = matches!(self.status, 1 | 2);
        Message {
            name: self.name(),
            recipient: Recipient::decode(self.recipient.as_slice()).ok(),
            channel: self.channel,
            address: self.address.clone(),
            purpose: self.purpose,
            priority: self.priority,
            template: self.template.clone(),
            locale: self.locale.clone(),
            origin: self.origin.clone(),
            idempotency_key: self.request_id.clone(),
            status: self.status,
            status_history: history,
            provider: self.provider.clone(),
            provider_message_id: self.provider_message_id.clone(),
            attempt_count: self.attempt_count,
            not_before_time: self.not_before_us.map(timestamp),
            next_attempt_time: queued.then(|| timestamp(self.next_attempt_us)),
            send_group: self.send_group.clone(),
            create_time: Some(timestamp(self.create_us)),
            update_time: Some(timestamp(self.update_us)),
        }
    }
}

pub(crate) fn message_name(id: &str) -> String {
    format!("messages/{id}")
}

/// Inserts new messages in one statement, skipping any whose request id is taken: the ids of
/// those inserted.
pub(crate) async fn insert_all<C: ConnectionTrait>(
    db: &C,
    rows: &[&MessageRow],
) -> Result<HashSet<String>, Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let values = rows.iter().map(|row| {
        vec![
            sea_orm::Value::from(row.tenant.clone()),
            row.id.clone().into(),
            row.request_id.clone().into(),
            row.send_group.clone().into(),
            row.profile.clone().into(),
            row.recipient.clone().into(),
            row.channel.into(),
            row.address.clone().into(),
            row.purpose.into(),
            row.priority.into(),
            row.template.clone().into(),
            row.locale.clone().into(),
            row.origin.clone().into(),
            row.status.into(),
            row.content.clone().into(),
            row.provider.clone().into(),
            row.provider_message_id.clone().into(),
            row.attempt_count.into(),
            row.not_before_us.into(),
            row.next_attempt_us.into(),
            row.lease_until_us.into(),
            row.budget_keys.clone().into(),
            row.history_len.into(),
            row.create_us.into(),
            row.update_us.into(),
        ]
    });
    let columns: Vec<&str> = MESSAGE_COLUMNS.split(", ").collect();
    let mut sql = insert_rows(db.get_database_backend(), MESSAGES, &columns, values)?;
    sql.push(" ON CONFLICT (tenant, request_id) DO NOTHING RETURNING id");
    let mut inserted = HashSet::with_capacity(rows.len());
    for row in db.query_all_raw(sql.statement()).await? {
        inserted.insert(row.try_get_by_index::<String>(0)?);
    }
    Ok(inserted)
}

/// Marks a message just inserted as SUPPRESSED for `reason` (in the transaction that inserted
/// it, before its history is written).
pub(crate) async fn suppress_new<C: ConnectionTrait>(
    db: &C,
    row: &MessageRow,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {MESSAGES} SET status = "))
        .bind(row.status)
        .push(", content = ")
        .bind(row.content.clone())
        .push(", budget_keys = ")
        .bind(row.budget_keys.as_str())
        .push(" WHERE tenant = ")
        .bind(row.tenant.as_str())
        .push(" AND id = ")
        .bind(row.id.as_str());
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Appends status changes: for each message, its tenant, id, the history length before and the
/// changes. One statement for all.
pub(crate) async fn append_history<C: ConnectionTrait>(
    db: &C,
    entries: &[(&str, &str, i32, &[Change])],
) -> Result<(), Error> {
    if entries.iter().all(|(_, _, _, changes)| changes.is_empty()) {
        return Ok(());
    }
    let mut values = Vec::new();
    for (tenant, id, before, changes) in entries {
        for (offset, change) in changes.iter().enumerate() {
            let seq = before + i32::try_from(offset).unwrap_or(0) + 1;
            values.push(vec![
                sea_orm::Value::from(*tenant),
                (*id).into(),
                seq.into(),
                change.status.into(),
                change.reason.into(),
                change.time_us.into(),
                change.provider.clone().into(),
                change.attempt.into(),
                change.detail.clone().into(),
            ]);
        }
    }
    let sql = insert_rows(
        db.get_database_backend(),
        HISTORY,
        &[
            "tenant", "message", "seq", "status", "reason", "time_us", "provider", "attempt",
            "detail",
        ],
        values,
    )?;
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

async fn one<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    column: &str,
    value: &str,
) -> Result<Option<MessageRow>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM {MESSAGES} WHERE tenant = "
    ))
    .bind(tenant)
    .push(&format!(" AND {column} = "))
    .bind(value);
    db.query_one_raw(sql.statement())
        .await?
        .map(|row| MessageRow::read(&row))
        .transpose()
}

pub(crate) async fn get<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<MessageRow>, Error> {
    one(db, tenant, "id", id).await
}

/// The message a send with this request id created.
pub(crate) async fn by_request<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    request_id: &str,
) -> Result<Option<MessageRow>, Error> {
    one(db, tenant, "request_id", request_id).await
}

/// The status histories of messages, oldest change first.
pub(crate) async fn histories<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, Vec<StatusChange>>, Error> {
    let mut histories: HashMap<String, Vec<StatusChange>> = HashMap::new();
    if ids.is_empty() {
        return Ok(histories);
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT message, status, reason, time_us, provider, attempt, detail FROM {HISTORY} \
         WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND message IN ")
    .bind_list(ids.iter().map(|id| (*id).to_owned()))
    .push(" ORDER BY message, seq");
    for row in db.query_all_raw(sql.statement()).await? {
        let message: String = row.try_get_by_index(0)?;
        histories.entry(message).or_default().push(StatusChange {
            status: row.try_get_by_index(1)?,
            reason: row.try_get_by_index(2)?,
            time: Some(timestamp(row.try_get_by_index(3)?)),
            provider: row.try_get_by_index(4)?,
            attempt: row.try_get_by_index(5)?,
            detail: row.try_get_by_index(6)?,
        });
    }
    Ok(histories)
}

/// Messages with their histories, as the contract shows them.
pub(crate) async fn with_histories<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    rows: &[MessageRow],
) -> Result<Vec<Message>, Error> {
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let mut histories = histories(db, tenant, &ids).await?;
    Ok(rows
        .iter()
        .map(|row| row.to_proto(histories.remove(&row.id).unwrap_or_default()))
        .collect())
}

/// Which messages ListMessages reads.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub profile: Option<String>,
    pub statuses: Vec<i32>,
    pub channels: Vec<i32>,
    pub origin: Option<String>,
    pub template: Option<String>,
    pub from_us: Option<i64>,
    pub until_us: Option<i64>,
}

/// A page of messages, newest first, and the sort key of its last one when there are more.
pub(crate) async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    filter: &Filter,
    after: Option<&PageToken>,
    page_size: usize,
) -> Result<(Vec<MessageRow>, Option<PageToken>), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM {MESSAGES} WHERE tenant = "
    ))
    .bind(tenant);
    if let Some(profile) = &filter.profile {
        // `profile <> ''` lets both databases use the partial index of profile recipients.
        sql.push(" AND profile <> '' AND profile = ")
            .bind(profile.as_str());
    }
    if !filter.statuses.is_empty() {
        sql.push(" AND status IN ")
            .bind_list(filter.statuses.iter().copied());
    }
    if !filter.channels.is_empty() {
        sql.push(" AND channel IN ")
            .bind_list(filter.channels.iter().copied());
    }
    if let Some(origin) = &filter.origin {
        sql.push(" AND origin = ").bind(origin.as_str());
    }
    if let Some(template) = &filter.template {
        sql.push(" AND template = ").bind(template.as_str());
    }
    if let Some(from) = filter.from_us {
        sql.push(" AND create_us >= ").bind(from);
    }
    if let Some(until) = filter.until_us {
        sql.push(" AND create_us < ").bind(until);
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
        .map(MessageRow::read)
        .collect::<Result<Vec<_>, _>>()?;
    let next = next_page(&mut rows, page_size, |row| PageToken {
        sort_us: row.create_us,
        id: row.id.clone(),
    });
    Ok((rows, next))
}

/// The new state of a message after a status change.
#[derive(Debug, Clone, Default)]
pub(crate) struct Update {
    pub status: i32,
    pub provider: String,
    pub provider_message_id: String,
    pub attempt_count: i32,
    pub next_attempt_us: i64,
    pub changes: Vec<Change>,
}

/// Applies updates to messages (releasing their leases) and appends their history, in one
/// statement for the messages and one for the history. An update applies only while the
/// message still holds the lease it was read with, so a worker whose lease ran out (and whose
/// message another worker took) changes nothing. Returns, for each update, whether it applied.
pub(crate) async fn apply<C: ConnectionTrait>(
    db: &C,
    updates: &[(&MessageRow, Update)],
) -> Result<Vec<bool>, Error> {
    if updates.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(db.get_database_backend());
    // One syntax for both databases: a VALUES list named by a CTE, joined by UPDATE … FROM.
    sql.push(
        "WITH v (tenant, id, lease, status, provider, provider_message_id, attempt_count, \
         next_attempt_us, added) AS (VALUES ",
    );
    for (index, (row, update)) in updates.iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        sql.bind_list::<sea_orm::Value>([
            row.tenant.clone().into(),
            row.id.clone().into(),
            row.lease_until_us.into(),
            update.status.into(),
            update.provider.clone().into(),
            update.provider_message_id.clone().into(),
            update.attempt_count.into(),
            update.next_attempt_us.into(),
            i32::try_from(update.changes.len()).unwrap_or(0).into(),
        ]);
    }
    sql.push(&format!(
        ") UPDATE {MESSAGES} SET status = v.status, provider = v.provider, \
         provider_message_id = v.provider_message_id, attempt_count = v.attempt_count, \
         next_attempt_us = v.next_attempt_us, lease_until_us = 0, \
         history_len = {MESSAGES}.history_len + v.added, update_us = "
    ))
    .bind(throughline_runtime::time::now_us())
    .push(&format!(
        " FROM v WHERE {MESSAGES}.tenant = v.tenant AND {MESSAGES}.id = v.id \
         AND {MESSAGES}.lease_until_us = v.lease RETURNING {MESSAGES}.tenant, {MESSAGES}.id"
    ));
    let mut updated = HashSet::with_capacity(updates.len());
    for row in db.query_all_raw(sql.statement()).await? {
        updated.insert((
            row.try_get_by_index::<String>(0)?,
            row.try_get_by_index::<String>(1)?,
        ));
    }
    let done: Vec<bool> = updates
        .iter()
        .map(|(row, _)| updated.contains(&(row.tenant.clone(), row.id.clone())))
        .collect();
    let applied: Vec<(&str, &str, i32, &[Change])> = updates
        .iter()
        .zip(&done)
        .filter(|(_, done)| **done)
        .map(|((row, update), _)| {
            (
                row.tenant.as_str(),
                row.id.as_str(),
                row.history_len,
                update.changes.as_slice(),
            )
        })
        .collect();
    append_history(db, &applied).await?;
    Ok(done)
}

/// The tenant's messages waiting, by channel, and its dead letters of the last 24 hours, by
/// provider.
pub(crate) async fn queue_stats<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> Result<(HashMap<i32, i64>, HashMap<String, i64>), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT channel, COUNT(*) FROM {MESSAGES} WHERE status IN (1, 2) AND tenant = "
    ))
    .bind(tenant)
    .push(" GROUP BY channel");
    let mut queued = HashMap::new();
    for row in db.query_all_raw(sql.statement()).await? {
        queued.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT provider, COUNT(*) FROM {MESSAGES} WHERE status = 9 AND tenant = "
    ))
    .bind(tenant)
    .push(" AND update_us > ")
    .bind(throughline_runtime::time::now_us() - 24 * 3600 * 1_000_000)
    .push(" GROUP BY provider");
    let mut dead = HashMap::new();
    for row in db.query_all_raw(sql.statement()).await? {
        dead.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    }
    Ok((queued, dead))
}
