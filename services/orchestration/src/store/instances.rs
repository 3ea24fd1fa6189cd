//! Journey instances and their steps: what the engine claims, advances and saves.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbBackend, QueryResult};
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;

use super::{INSTANCES, JOURNEYS, STEPS};

/// `JourneyInstanceState` values as stored.
pub(crate) mod state {
    pub(crate) const RUNNING: i32 = 1;
    pub(crate) const WAITING: i32 = 2;
    pub(crate) const EXITED: i32 = 3;
    pub(crate) const CANCELLED: i32 = 4;
    pub(crate) const FAILED: i32 = 5;

    pub(crate) fn is_active(state: i32) -> bool {
        state == RUNNING || state == WAITING
    }
}

/// One row of `orchestration_instances`, its JSON columns parsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Instance {
    pub tenant: String,
    pub id: String,
    pub journey: String,
    pub version: i32,
    pub customer_ref: String,
    pub profile: String,
    pub customer: String,
    pub state: i32,
    pub node: String,
    pub wake_us: Option<i64>,
    pub lease_until_us: i64,
    pub attempt: i32,
    pub holdout: bool,
    pub split_arms: BTreeMap<String, String>,
    pub variables: serde_json::Map<String, serde_json::Value>,
    pub trigger: serde_json::Value,
    pub trigger_event_id: String,
    pub trigger_event_type: String,
    pub exit_reason: String,
    pub converted: bool,
    pub goal_until_us: i64,
    pub step_count: i32,
    pub start_us: i64,
    pub update_us: i64,
    pub end_us: Option<i64>,
}

const COLUMNS: &str = "tenant, id, journey, version, customer_ref, profile, customer, state, node, \
     wake_us, lease_until_us, attempt, holdout, split_arms, variables, trigger, trigger_event_id, \
     trigger_event_type, exit_reason, converted, goal_until_us, step_count, start_us, update_us, \
     end_us";

impl Instance {
    /// `journeyInstances/{id}`.
    pub(crate) fn name(&self) -> String {
        format!("journeyInstances/{}", self.id)
    }

    pub(crate) fn is_active(&self) -> bool {
        state::is_active(self.state)
    }

    /// Reads a row of [`COLUMNS`] by position.
    fn read(row: &QueryResult) -> Result<Self, Error> {
        let split_arms: String = row.try_get_by_index(13)?;
        let variables: String = row.try_get_by_index(14)?;
        let trigger: String = row.try_get_by_index(15)?;
        Ok(Self {
            tenant: row.try_get_by_index(0)?,
            id: row.try_get_by_index(1)?,
            journey: row.try_get_by_index(2)?,
            version: row.try_get_by_index(3)?,
            customer_ref: row.try_get_by_index(4)?,
            profile: row.try_get_by_index(5)?,
            customer: row.try_get_by_index(6)?,
            state: row.try_get_by_index(7)?,
            node: row.try_get_by_index(8)?,
            wake_us: row.try_get_by_index(9)?,
            lease_until_us: row.try_get_by_index(10)?,
            attempt: row.try_get_by_index(11)?,
            holdout: row.try_get_by_index::<i32>(12)? != 0,
            split_arms: serde_json::from_str(&split_arms).unwrap_or_default(),
            variables: serde_json::from_str(&variables).unwrap_or_default(),
            trigger: serde_json::from_str(&trigger).unwrap_or_default(),
            trigger_event_id: row.try_get_by_index(16)?,
            trigger_event_type: row.try_get_by_index(17)?,
            exit_reason: row.try_get_by_index(18)?,
            converted: row.try_get_by_index::<i32>(19)? != 0,
            goal_until_us: row.try_get_by_index(20)?,
            step_count: row.try_get_by_index(21)?,
            start_us: row.try_get_by_index(22)?,
            update_us: row.try_get_by_index(23)?,
            end_us: row.try_get_by_index(24)?,
        })
    }
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

async fn query(db: &impl ConnectionTrait, sql: Sql) -> Result<Vec<Instance>, Error> {
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(Instance::read)
        .collect()
}

/// Inserts a new instance; false when an instance for the same trigger event already exists
/// (an event delivered twice).
pub(crate) async fn insert(db: &impl ConnectionTrait, instance: &Instance) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("INSERT INTO {INSTANCES} ({COLUMNS}) VALUES ("))
        .bind(instance.tenant.as_str())
        .push(", ")
        .bind(instance.id.as_str())
        .push(", ")
        .bind(instance.journey.as_str())
        .push(", ")
        .bind(instance.version)
        .push(", ")
        .bind(instance.customer_ref.as_str())
        .push(", ")
        .bind(instance.profile.as_str())
        .push(", ")
        .bind(instance.customer.as_str())
        .push(", ")
        .bind(instance.state)
        .push(", ")
        .bind(instance.node.as_str())
        .push(", ")
        .bind(instance.wake_us)
        .push(", ")
        .bind(instance.lease_until_us)
        .push(", ")
        .bind(instance.attempt)
        .push(", ")
        .bind(i32::from(instance.holdout))
        .push(", ")
        .bind(json(&instance.split_arms))
        .push(", ")
        .bind(json(&instance.variables))
        .push(", ")
        .bind(json(&instance.trigger))
        .push(", ")
        .bind(instance.trigger_event_id.as_str())
        .push(", ")
        .bind(instance.trigger_event_type.as_str())
        .push(", ")
        .bind(instance.exit_reason.as_str())
        .push(", ")
        .bind(i32::from(instance.converted))
        .push(", ")
        .bind(instance.goal_until_us)
        .push(", ")
        .bind(instance.step_count)
        .push(", ")
        .bind(instance.start_us)
        .push(", ")
        .bind(instance.update_us)
        .push(", ")
        .bind(instance.end_us)
        .push(") ON CONFLICT DO NOTHING");
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Writes what the engine changed, if `lease` still holds the instance (a cancellation or a
/// replica that took over after the lease ran out wins); true when written. The lease ends.
pub(crate) async fn save(
    db: &impl ConnectionTrait,
    instance: &Instance,
    lease: i64,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {INSTANCES} SET version = "))
        .bind(instance.version)
        .push(", profile = ")
        .bind(instance.profile.as_str())
        .push(", customer = ")
        .bind(instance.customer.as_str())
        .push(", state = ")
        .bind(instance.state)
        .push(", node = ")
        .bind(instance.node.as_str())
        .push(", wake_us = ")
        .bind(instance.wake_us)
        .push(", lease_until_us = 0, attempt = ")
        .bind(instance.attempt)
        .push(", split_arms = ")
        .bind(json(&instance.split_arms))
        .push(", variables = ")
        .bind(json(&instance.variables))
        .push(", trigger = ")
        .bind(json(&instance.trigger))
        .push(", exit_reason = ")
        .bind(instance.exit_reason.as_str())
        .push(", converted = ")
        .bind(i32::from(instance.converted))
        .push(", step_count = ")
        .bind(instance.step_count)
        .push(", update_us = ")
        .bind(instance.update_us)
        .push(", end_us = ")
        .bind(instance.end_us)
        .push(" WHERE tenant = ")
        .bind(instance.tenant.as_str())
        .push(" AND id = ")
        .bind(instance.id.as_str())
        .push(" AND lease_until_us = ")
        .bind(lease);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Claims up to `limit` instances due at `now` until `lease`, oldest wake time first, skipping
/// those of paused journeys (they fire on resume) and those another replica holds.
pub(crate) async fn claim_due(
    db: &impl ConnectionTrait,
    now: i64,
    limit: usize,
    lease: i64,
) -> Result<Vec<Instance>, Error> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!("UPDATE {INSTANCES} SET lease_until_us = "))
        .bind(lease)
        .push(&format!(
            " WHERE (tenant, id) IN (SELECT i.tenant, i.id FROM {INSTANCES} i \
             WHERE i.wake_us IS NOT NULL AND i.wake_us <= "
        ))
        .bind(now)
        .push(" AND i.lease_until_us <= ")
        .bind(now)
        .push(&format!(
            " AND NOT EXISTS (SELECT 1 FROM {JOURNEYS} j WHERE j.tenant = i.tenant \
             AND j.id = i.journey AND j.state = 3) ORDER BY i.wake_us LIMIT "
        ))
        .bind(i64::try_from(limit).unwrap_or(1));
    if backend == DbBackend::Postgres {
        // Replicas claim disjoint instances without waiting for each other.
        sql.push(" FOR UPDATE OF i SKIP LOCKED");
    }
    sql.push(&format!(") RETURNING {COLUMNS}"));
    query(db, sql).await
}

/// Takes the lease of instances `ids` for the inbox, unless the engine holds one of them:
/// true when every one was free.
pub(crate) async fn lease_all(
    db: &impl ConnectionTrait,
    tenant: &str,
    ids: &[String],
    now: i64,
    lease: i64,
) -> Result<bool, Error> {
    if ids.is_empty() {
        return Ok(true);
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {INSTANCES} SET lease_until_us = "))
        .bind(lease)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND lease_until_us <= ")
        .bind(now)
        .push(" AND id IN ")
        .bind_list(ids.iter().map(String::as_str));
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() as usize == ids.len())
}

pub(crate) async fn get(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
) -> Result<Option<Instance>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM {INSTANCES} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND id = ")
    .bind(id);
    Ok(query(db, sql).await?.into_iter().next())
}

/// The instances an event about `customer` may concern: active ones, and ended ones whose
/// goal still counts at `now`.
pub(crate) async fn concerned_by(
    db: &impl ConnectionTrait,
    tenant: &str,
    customer: &str,
    now: i64,
) -> Result<Vec<Instance>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM {INSTANCES} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND customer = ")
    .bind(customer)
    .push(" AND (state IN (1, 2) OR (converted = 0 AND goal_until_us >= ")
    .bind(now)
    .push(")) ORDER BY start_us");
    query(db, sql).await
}

/// Instances of `tenant` matching `filter` (a condition over the table's columns, written by
/// the caller with its binds), newest first, from `after` on, at most `limit`.
pub(crate) async fn list(
    db: &impl ConnectionTrait,
    mut sql: Sql,
    limit: usize,
) -> Result<Vec<Instance>, Error> {
    sql.push(" ORDER BY start_us DESC, id DESC LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(1));
    query(db, sql).await
}

/// The start of a [`list`] query: `SELECT … FROM instances WHERE tenant = $tenant`.
pub(crate) fn select(backend: DbBackend, tenant: &str) -> Sql {
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT {COLUMNS} FROM {INSTANCES} WHERE tenant = "
    ))
    .bind(tenant);
    sql
}

/// One node an instance went through.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Step {
    pub seq: i32,
    pub node_id: String,
    pub enter_us: i64,
    pub leave_us: Option<i64>,
    pub outcome: String,
    pub effect: String,
    pub attempts: i32,
}

const STEP_COLUMNS: &str = "seq, node_id, enter_us, leave_us, outcome, effect, attempts";

fn read_step(row: &QueryResult) -> Result<Step, Error> {
    Ok(Step {
        seq: row.try_get_by_index(0)?,
        node_id: row.try_get_by_index(1)?,
        enter_us: row.try_get_by_index(2)?,
        leave_us: row.try_get_by_index(3)?,
        outcome: row.try_get_by_index(4)?,
        effect: row.try_get_by_index(5)?,
        attempts: row.try_get_by_index(6)?,
    })
}

/// The steps of an instance, oldest first; from `from_seq` on.
pub(crate) async fn steps(
    db: &impl ConnectionTrait,
    tenant: &str,
    instance: &str,
    from_seq: i32,
) -> Result<Vec<Step>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {STEP_COLUMNS} FROM {STEPS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND instance = ")
    .bind(instance)
    .push(" AND seq >= ")
    .bind(from_seq)
    .push(" ORDER BY seq");
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(read_step)
        .collect()
}

/// Writes steps of many instances in one statement, new or changed.
pub(crate) async fn upsert_steps(
    db: &impl ConnectionTrait,
    steps: &[(&str, &str, &Step)],
) -> Result<(), Error> {
    // Bounded statements: PostgreSQL takes at most 65,535 parameters.
    for chunk in steps.chunks(1_000) {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!(
            "INSERT INTO {STEPS} (tenant, instance, {STEP_COLUMNS}) VALUES "
        ));
        for (i, (tenant, instance, step)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(*tenant)
                .push(", ")
                .bind(*instance)
                .push(", ")
                .bind(step.seq)
                .push(", ")
                .bind(step.node_id.as_str())
                .push(", ")
                .bind(step.enter_us)
                .push(", ")
                .bind(step.leave_us)
                .push(", ")
                .bind(step.outcome.as_str())
                .push(", ")
                .bind(step.effect.as_str())
                .push(", ")
                .bind(step.attempts)
                .push(")");
        }
        sql.push(
            " ON CONFLICT (tenant, instance, seq) DO UPDATE SET leave_us = excluded.leave_us, \
             outcome = excluded.outcome, effect = excluded.effect, attempts = excluded.attempts",
        );
        db.execute_raw(sql.statement()).await?;
    }
    Ok(())
}
