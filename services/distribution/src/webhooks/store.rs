//! `distribution_webhook_subscriptions` and `distribution_webhook_deliveries`. Every statement
//! filters by tenant, except the delivery queue's claim, which serves every tenant.

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Value};
use throughline_proto::distribution::v1::{WebhookDelivery, WebhookSubscription};
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;
use throughline_runtime::time::{PageToken, timestamp};

pub(crate) const SUBSCRIPTIONS: &str = "distribution_webhook_subscriptions";
pub(crate) const DELIVERIES: &str = "distribution_webhook_deliveries";

const SUBSCRIPTION_COLUMNS: &str = "tenant, id, display_name, url, event_types, signing_secret, \
     enabled, disabled_reason, consecutive_failures, revision, create_us, update_us";

const DELIVERY_COLUMNS: &str = "tenant, id, subscription, event_id, event_type, event, state, \
     attempt_count, last_status_code, last_error, next_attempt_us, lease_until_us, create_us, \
     complete_us";

pub(crate) fn subscription_name(id: &str) -> String {
    format!("webhookSubscriptions/{id}")
}

/// One subscription as stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubscriptionRow {
    pub tenant: String,
    pub id: String,
    pub display_name: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub signing_secret: String,
    pub enabled: bool,
    pub disabled_reason: String,
    pub consecutive_failures: i32,
    pub revision: i64,
    pub create_us: i64,
    pub update_us: i64,
}

impl SubscriptionRow {
    fn read(row: &QueryResult) -> Result<Self, Error> {
        let event_types: String = row.try_get_by_index(4)?;
        let enabled: i32 = row.try_get_by_index(6)?;
        Ok(Self {
            tenant: row.try_get_by_index(0)?,
            id: row.try_get_by_index(1)?,
            display_name: row.try_get_by_index(2)?,
            url: row.try_get_by_index(3)?,
            event_types: event_types.lines().map(str::to_owned).collect(),
            signing_secret: row.try_get_by_index(5)?,
            enabled: enabled != 0,
            disabled_reason: row.try_get_by_index(7)?,
            consecutive_failures: row.try_get_by_index(8)?,
            revision: row.try_get_by_index(9)?,
            create_us: row.try_get_by_index(10)?,
            update_us: row.try_get_by_index(11)?,
        })
    }

    /// The subscription as the contract shows it: never with its secret.
    pub(crate) fn to_proto(&self) -> WebhookSubscription {
        WebhookSubscription {
            name: subscription_name(&self.id),
            display_name: self.display_name.clone(),
            url: self.url.clone(),
            event_types: self.event_types.clone(),
            signing_secret: String::new(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            consecutive_failures: self.consecutive_failures,
            create_time: Some(timestamp(self.create_us)),
            update_time: Some(timestamp(self.update_us)),
            etag: self.revision.to_string(),
        }
    }

    fn values(&self) -> [Value; 12] {
        [
            self.tenant.clone().into(),
            self.id.clone().into(),
            self.display_name.clone().into(),
            self.url.clone().into(),
            self.event_types.join("\n").into(),
            self.signing_secret.clone().into(),
            i32::from(self.enabled).into(),
            self.disabled_reason.clone().into(),
            self.consecutive_failures.into(),
            self.revision.into(),
            self.create_us.into(),
            self.update_us.into(),
        ]
    }
}

/// Inserts a subscription; ALREADY_EXISTS when its id is taken.
pub(crate) async fn insert<C: ConnectionTrait>(db: &C, row: &SubscriptionRow) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {SUBSCRIPTIONS} ({SUBSCRIPTION_COLUMNS}) VALUES "
    ))
    .bind_list(row.values())
    .push(" ON CONFLICT (tenant, id) DO NOTHING");
    if db.execute_raw(sql.statement()).await?.rows_affected() == 0 {
        return Err(Error::AlreadyExists(subscription_name(&row.id)));
    }
    Ok(())
}

pub(crate) async fn find<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<SubscriptionRow>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM {SUBSCRIPTIONS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND id = ")
    .bind(id);
    db.query_one_raw(sql.statement())
        .await?
        .map(|row| SubscriptionRow::read(&row))
        .transpose()
}

/// A page of subscriptions by id (ids are UUIDv7 unless chosen: about creation order).
pub(crate) async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<SubscriptionRow>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM {SUBSCRIPTIONS} WHERE tenant = "
    ))
    .bind(tenant);
    if let Some(after) = after {
        sql.push(" AND id > ").bind(after);
    }
    sql.push(" ORDER BY id LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(SubscriptionRow::read)
        .collect()
}

/// Replaces a subscription if it is still at `revision`; `false` when it is not (or is gone).
pub(crate) async fn update<C: ConnectionTrait>(
    db: &C,
    row: &SubscriptionRow,
    revision: i64,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {SUBSCRIPTIONS} SET display_name = "))
        .bind(row.display_name.as_str())
        .push(", url = ")
        .bind(row.url.as_str())
        .push(", event_types = ")
        .bind(row.event_types.join("\n"))
        .push(", signing_secret = ")
        .bind(row.signing_secret.as_str())
        .push(", enabled = ")
        .bind(i32::from(row.enabled))
        .push(", disabled_reason = ")
        .bind(row.disabled_reason.as_str())
        .push(", consecutive_failures = ")
        .bind(row.consecutive_failures)
        .push(", revision = ")
        .bind(row.revision)
        .push(", update_us = ")
        .bind(row.update_us)
        .push(" WHERE tenant = ")
        .bind(row.tenant.as_str())
        .push(" AND id = ")
        .bind(row.id.as_str())
        .push(" AND revision = ")
        .bind(revision);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Deletes a subscription (at `revision` when given) and its deliveries.
pub(crate) async fn delete<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
    revision: Option<i64>,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("DELETE FROM {SUBSCRIPTIONS} WHERE tenant = "))
        .bind(tenant)
        .push(" AND id = ")
        .bind(id);
    if let Some(revision) = revision {
        sql.push(" AND revision = ").bind(revision);
    }
    if db.execute_raw(sql.statement()).await?.rows_affected() == 0 {
        return Ok(false);
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("DELETE FROM {DELIVERIES} WHERE tenant = "))
        .bind(tenant)
        .push(" AND subscription = ")
        .bind(id);
    db.execute_raw(sql.statement()).await?;
    Ok(true)
}

/// The enabled subscriptions of a tenant: their ids and event types.
pub(crate) async fn enabled<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> Result<Vec<(String, Vec<String>)>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT id, event_types FROM {SUBSCRIPTIONS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND enabled = 1");
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(|row| {
            let types: String = row.try_get_by_index(1)?;
            Ok((
                row.try_get_by_index(0)?,
                types.lines().map(str::to_owned).collect(),
            ))
        })
        .collect()
}

/// One delivery as stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeliveryRow {
    pub tenant: String,
    pub id: String,
    pub subscription: String,
    pub event_id: String,
    pub event_type: String,
    pub event: Vec<u8>,
    pub state: i32,
    pub attempt_count: i32,
    pub last_status_code: i32,
    pub last_error: String,
    pub next_attempt_us: i64,
    pub lease_until_us: i64,
    pub create_us: i64,
    pub complete_us: Option<i64>,
}

impl DeliveryRow {
    fn read(row: &QueryResult) -> Result<Self, Error> {
        Ok(Self {
            tenant: row.try_get_by_index(0)?,
            id: row.try_get_by_index(1)?,
            subscription: row.try_get_by_index(2)?,
            event_id: row.try_get_by_index(3)?,
            event_type: row.try_get_by_index(4)?,
            event: row.try_get_by_index(5)?,
            state: row.try_get_by_index(6)?,
            attempt_count: row.try_get_by_index(7)?,
            last_status_code: row.try_get_by_index(8)?,
            last_error: row.try_get_by_index(9)?,
            next_attempt_us: row.try_get_by_index(10)?,
            lease_until_us: row.try_get_by_index(11)?,
            create_us: row.try_get_by_index(12)?,
            complete_us: row.try_get_by_index(13)?,
        })
    }

    pub(crate) fn to_proto(&self) -> WebhookDelivery {
        let pending = matches!(self.state, 1 | 2);
        WebhookDelivery {
            name: format!(
                "{}/deliveries/{}",
                subscription_name(&self.subscription),
                self.id
            ),
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            state: self.state,
            attempt_count: self.attempt_count,
            last_status_code: self.last_status_code,
            last_error: self.last_error.clone(),
            next_attempt_time: pending.then(|| timestamp(self.next_attempt_us)),
            create_time: Some(timestamp(self.create_us)),
            complete_time: self.complete_us.map(timestamp),
        }
    }
}

/// Queues a delivery unless the subscription already has one for the event.
pub(crate) async fn insert_delivery<C: ConnectionTrait>(
    db: &C,
    row: &DeliveryRow,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {DELIVERIES} ({DELIVERY_COLUMNS}) VALUES "
    ))
    .bind_list::<Value>([
        row.tenant.clone().into(),
        row.id.clone().into(),
        row.subscription.clone().into(),
        row.event_id.clone().into(),
        row.event_type.clone().into(),
        row.event.clone().into(),
        row.state.into(),
        row.attempt_count.into(),
        row.last_status_code.into(),
        row.last_error.clone().into(),
        row.next_attempt_us.into(),
        row.lease_until_us.into(),
        row.create_us.into(),
        row.complete_us.into(),
    ])
    .push(" ON CONFLICT (tenant, subscription, event_id) DO NOTHING");
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// A page of a subscription's deliveries, newest first, and the key of the last when there
/// are more.
pub(crate) async fn list_deliveries<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    subscription: &str,
    states: &[i32],
    after: Option<&PageToken>,
    page_size: usize,
) -> Result<(Vec<DeliveryRow>, Option<PageToken>), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM {DELIVERIES} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND subscription = ")
    .bind(subscription);
    if !states.is_empty() {
        sql.push(" AND state IN ").bind_list(states.iter().copied());
    }
    if let Some(after) = after {
        sql.push(" AND (create_us < ")
            .bind(after.sort_us)
            .push(" OR (create_us = ")
            .bind(after.sort_us)
            .push(" AND id < ")
            .bind(after.id.as_str())
            .push("))");
    }
    sql.push(" ORDER BY create_us DESC, id DESC LIMIT ")
        .bind(i64::try_from(page_size + 1).unwrap_or(i64::MAX));
    let mut rows = db
        .query_all_raw(sql.statement())
        .await?
        .iter()
        .map(DeliveryRow::read)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if rows.len() > page_size {
        rows.truncate(page_size);
        rows.last().map(|row| PageToken {
            sort_us: row.create_us,
            id: row.id.clone(),
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// Claims up to `limit` due deliveries of enabled subscriptions until `lease_until`, counting
/// an attempt for each (the count is the lease's generation).
pub(crate) async fn claim<C: ConnectionTrait>(
    db: &C,
    limit: usize,
    now: i64,
    lease_until: i64,
) -> Result<Vec<DeliveryRow>, Error> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "UPDATE {DELIVERIES} SET attempt_count = attempt_count + 1, lease_until_us = "
    ))
    .bind(lease_until)
    .push(&format!(
        " WHERE (tenant, id) IN (SELECT d.tenant, d.id FROM {DELIVERIES} d \
         JOIN {SUBSCRIPTIONS} s ON s.tenant = d.tenant AND s.id = d.subscription \
         WHERE d.state IN (1, 2) AND s.enabled = 1 AND d.next_attempt_us <= "
    ))
    .bind(now)
    .push(" AND d.lease_until_us <= ")
    .bind(now)
    .push(" ORDER BY d.next_attempt_us LIMIT ")
    .bind(i64::try_from(limit).unwrap_or(1));
    if backend == DbBackend::Postgres {
        // Replicas claim disjoint deliveries without waiting for each other; the
        // subscriptions joined are only read, not locked.
        sql.push(" FOR UPDATE OF d SKIP LOCKED");
    }
    sql.push(&format!(") RETURNING {DELIVERY_COLUMNS}"));
    let mut rows = db
        .query_all_raw(sql.statement())
        .await?
        .iter()
        .map(DeliveryRow::read)
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by_key(|row| row.next_attempt_us);
    Ok(rows)
}

/// The result of one attempt.
#[derive(Debug, Clone)]
pub(crate) struct Attempted {
    pub state: i32,
    pub status_code: i32,
    pub error: String,
    pub next_attempt_us: i64,
    pub complete_us: Option<i64>,
}

/// Records an attempt's result if the delivery is still held by this attempt (its attempt
/// count unchanged since the claim); `false` when another worker took it over.
pub(crate) async fn record<C: ConnectionTrait>(
    db: &C,
    row: &DeliveryRow,
    attempted: &Attempted,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {DELIVERIES} SET state = "))
        .bind(attempted.state)
        .push(", last_status_code = ")
        .bind(attempted.status_code)
        .push(", last_error = ")
        .bind(attempted.error.as_str())
        .push(", next_attempt_us = ")
        .bind(attempted.next_attempt_us)
        .push(", lease_until_us = 0, complete_us = ")
        .bind(attempted.complete_us)
        .push(" WHERE tenant = ")
        .bind(row.tenant.as_str())
        .push(" AND id = ")
        .bind(row.id.as_str())
        .push(" AND attempt_count = ")
        .bind(row.attempt_count)
        .push(" AND state IN (1, 2)");
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Counts a delivery's end against its subscription: a success resets the failures in a row,
/// a failure adds one and disables the subscription at `disable_after`.
pub(crate) async fn count_outcome<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    subscription: &str,
    succeeded: bool,
    disable_after: i32,
    now: i64,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    if succeeded {
        sql.push(&format!(
            "UPDATE {SUBSCRIPTIONS} SET consecutive_failures = 0, revision = revision + 1, \
             update_us = "
        ))
        .bind(now)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(subscription)
        .push(" AND consecutive_failures <> 0");
    } else {
        let reason = format!("disabled after {disable_after} failed deliveries in a row");
        sql.push(&format!(
            "UPDATE {SUBSCRIPTIONS} SET consecutive_failures = consecutive_failures + 1, \
             enabled = CASE WHEN consecutive_failures + 1 >= "
        ))
        .bind(disable_after)
        .push(" THEN 0 ELSE enabled END, disabled_reason = CASE WHEN enabled = 1 AND consecutive_failures + 1 >= ")
        .bind(disable_after)
        .push(" THEN ")
        .bind(reason)
        .push(" ELSE disabled_reason END, revision = revision + 1, update_us = ")
        .bind(now)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(subscription);
    }
    db.execute_raw(sql.statement()).await?;
    Ok(())
}
