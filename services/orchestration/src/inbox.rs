//! Other services' events: staged in the inbox by the consumer, in the transaction that moves
//! its cursor (so none is lost between receipt and application), then applied by the engine
//! in the order received:
//! - an event that matches an active journey's trigger enters the customer (entry policy,
//!   holdout draw);
//! - for the customer's instances: a goal event within the window counts a conversion (and
//!   exits an active instance), an exit condition ends it, a matching event ends a
//!   wait-for-event;
//! - the profile service's merges, unmerges and erasures move or cancel instances.
//!
//! Applying an event leases the instances it touches, so it never races the engine running
//! them; an event whose instances are busy waits for the next round, and so do the later
//! events of the same customer, which keeps each customer's events in order.

use std::collections::HashSet;
use std::sync::Arc;

use futures::FutureExt;
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend};
use throughline_proto::event::v1::{
    Event, InteractionRecorded, ProfileErased, ProfileMerged, ProfileUnmerged,
};
use throughline_proto::orchestration::v1::node::Kind;
use throughline_proto::orchestration::v1::trigger::Kind as TriggerKind;
use throughline_proto::orchestration::v1::{EventMatcher, JourneyDefinition};
use throughline_runtime::Error;
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::db::write_transaction;
use throughline_runtime::events::{Handler, payload};
use throughline_runtime::sql::Sql;
use throughline_runtime::time::now_us;
use tokio_util::sync::CancellationToken;

use crate::Service;
use crate::definition;
use crate::engine::entry::{self, Entrant};
use crate::engine::run::{Run, condition};
use crate::engine::{self, effects, events};
use crate::expr::{self, Kind as ExprKind, Scope};
use crate::store::instances::{self, Instance, Step, state};
use crate::store::{INBOX, INSTANCES, JOURNEYS, entries};

/// The consumer of every other service's events (its cursors are kept under this name).
pub const EVENTS_CONSUMER: &str = "events";
/// The services whose events journeys react to.
pub const EVENT_SOURCES: [&str; 4] = ["profile", "interaction", "feedback", "distribution"];

/// Events applied per round.
const ROUND: usize = 200;
/// How long a busy event waits before it is tried again.
const RETRY_US: i64 = 500_000;

/// Stages each event in the inbox, in the consumer's transaction.
pub fn events_handler() -> Handler {
    Arc::new(|transaction, event| stage(transaction, event).boxed())
}

async fn stage(transaction: &DatabaseTransaction, event: &Event) -> Result<(), Error> {
    if event.tenant.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(transaction.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {INBOX} (event_id, tenant, event, receive_us, lease_until_us) VALUES ("
    ))
    .bind(event.id.as_str())
    .push(", ")
    .bind(event.tenant.as_str())
    .push(", ")
    .bind(event.encode_to_vec())
    .push(", ")
    .bind(now_us())
    .push(", 0) ON CONFLICT DO NOTHING");
    transaction.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Applies staged events until `stopping`.
pub(crate) async fn run(service: Service, stopping: CancellationToken) {
    while !stopping.is_cancelled() {
        match round(&service).await {
            Ok(applied) if applied > 0 => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "orchestration: applying events failed"),
        }
        engine::idle(&service, &stopping).await;
    }
}

/// Applies the oldest staged events; returns how many were applied.
pub(crate) async fn round(service: &Service) -> Result<usize, Error> {
    let now = service.now_us();
    let staged = claim(service.db(), now, now + RETRY_US.max(1_000_000)).await?;
    let mut busy: HashSet<String> = HashSet::new();
    let mut applied = 0;
    for (event_id, event) in staged {
        let customer = customer_of(&event);
        if let Some(customer) = &customer
            && busy.contains(customer)
        {
            postpone(service.db(), &event_id, now).await?;
            continue;
        }
        match apply(service, &event_id, &event, customer.as_deref()).await {
            Ok(true) => applied += 1,
            Ok(false) => {
                busy.extend(customer);
                postpone(service.db(), &event_id, now).await?;
            }
            Err(error) => {
                tracing::warn!(%error, event = %event_id, "orchestration: event not applied");
                busy.extend(customer);
                postpone(service.db(), &event_id, now).await?;
            }
        }
    }
    Ok(applied)
}

/// Claims the oldest staged events until `lease`.
async fn claim(
    db: &sea_orm::DatabaseConnection,
    now: i64,
    lease: i64,
) -> Result<Vec<(String, Event)>, Error> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!("UPDATE {INBOX} SET lease_until_us = "))
        .bind(lease)
        .push(&format!(
            " WHERE event_id IN (SELECT event_id FROM {INBOX} WHERE lease_until_us <= "
        ))
        .bind(now)
        .push(" ORDER BY receive_us, event_id LIMIT ")
        .bind(ROUND as i64);
    if backend == DbBackend::Postgres {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    sql.push(") RETURNING event_id, event, receive_us");
    let mut rows = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let id: String = row.try_get_by_index(0)?;
        let bytes: Vec<u8> = row.try_get_by_index(1)?;
        let receive_us: i64 = row.try_get_by_index(2)?;
        let event = Event::decode(bytes.as_slice()).map_err(Error::internal)?;
        rows.push((receive_us, id, event));
    }
    // RETURNING keeps no order: apply in the order received.
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(rows.into_iter().map(|(_, id, event)| (id, event)).collect())
}

async fn postpone(db: &impl ConnectionTrait, event_id: &str, now: i64) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {INBOX} SET lease_until_us = "))
        .bind(now + RETRY_US)
        .push(" WHERE event_id = ")
        .bind(event_id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

async fn remove(db: &impl ConnectionTrait, event_id: &str) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("DELETE FROM {INBOX} WHERE event_id = "))
        .bind(event_id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Who an event is about: its payload's `profile`, else the customer an unresolved
/// interaction was recorded for.
fn customer_of(event: &Event) -> Option<String> {
    let data = expr::event_value(event);
    if let Some(profile) = data["data"]["profile"].as_str()
        && !profile.is_empty()
    {
        return Some(profile.to_owned());
    }
    if event.r#type == "interaction.recorded" {
        let recorded: InteractionRecorded = payload(event).ok()?;
        return CustomerKey::parse(recorded.customer.as_ref(), "customer")
            .ok()
            .map(|key| key.as_str().to_owned());
    }
    None
}

/// The keys an event is matched on (`definition::trigger_key`, `definition::matcher_keys`).
fn event_keys(event: &Event, data: &serde_json::Value) -> Vec<String> {
    let mut keys = vec![format!("event:{}", event.r#type)];
    if event.r#type == "interaction.recorded"
        && let Some(kind) = data["data"]["interaction_type"].as_str()
    {
        keys.push(format!("interaction:{kind}"));
    }
    if event.r#type == "segment.entered"
        && let Some(segment) = data["data"]["segment"].as_str()
    {
        keys.push(format!("segment:{segment}"));
    }
    keys
}

/// Whether `matcher` matches the event.
fn matches(matcher: Option<&EventMatcher>, keys: &[String], scope: &Scope) -> bool {
    let Some(matcher) = matcher else {
        return false;
    };
    let wanted = definition::matcher_keys(matcher);
    !wanted.is_empty()
        && wanted.iter().all(|key| keys.contains(key))
        && condition(&matcher.condition, ExprKind::EventCondition, scope)
}

/// Applies one event; false when instances it concerns are busy (try again later).
async fn apply(
    service: &Service,
    event_id: &str,
    event: &Event,
    customer: Option<&str>,
) -> Result<bool, Error> {
    let tenant = event.tenant.as_str();
    match event.r#type.as_str() {
        "profile.merged" | "profile.unmerged" | "profile.erased" => {
            let transaction = write_transaction(service.db()).await?;
            identity(&transaction, service, event).await?;
            remove(&transaction, event_id).await?;
            transaction.commit().await?;
            return Ok(true);
        }
        _ => {}
    }
    let Some(customer) = customer else {
        remove(service.db(), event_id).await?;
        return Ok(true);
    };
    let now = service.now_us();
    let data = expr::event_value(event);
    let keys = event_keys(event, &data);
    let triggered = triggered_journeys(service.db(), tenant, &keys).await?;
    let concerned = instances::concerned_by(service.db(), tenant, customer, now).await?;
    if triggered.is_empty() && concerned.is_empty() {
        remove(service.db(), event_id).await?;
        return Ok(true);
    }
    // Read before the transaction: no call to another service while holding one.
    let probe = Instance {
        tenant: tenant.to_owned(),
        profile: if customer.starts_with("profiles/") {
            customer.to_owned()
        } else {
            String::new()
        },
        ..Instance::default()
    };
    let profile = effects::profile(service, &probe).await?;
    let profile_value = profile
        .as_ref()
        .map(expr::profile_value)
        .unwrap_or_else(|| serde_json::json!({}));

    let transaction = write_transaction(service.db()).await?;
    let lease = engine::lease_token(service, now);
    let ids: Vec<String> = concerned.iter().map(|i| i.id.clone()).collect();
    if !instances::lease_all(&transaction, tenant, &ids, now, lease).await? {
        transaction.rollback().await?;
        return Ok(false);
    }
    // Read again under the lease: the engine may have moved them since.
    let concerned = instances::concerned_by(&transaction, tenant, customer, now).await?;
    let mut runs = Vec::new();
    for instance in concerned {
        let definition = service
            .version(&transaction, tenant, &instance.journey, instance.version)
            .await?;
        let scope = Scope {
            profile: profile_value.clone(),
            trigger: instance.trigger.clone(),
            vars: serde_json::Value::Object(instance.variables.clone()),
            now_us: now,
            event: Some(data.clone()),
            interactions: None,
        };
        let mut run = Run::new(instance);
        react(&mut run, &definition, &keys, &scope, event_id, now);
        runs.push(run);
    }
    engine::record(&transaction, service, &runs, lease).await?;

    let mut steps: Vec<(String, String, Step)> = Vec::new();
    let mut emitted = Vec::new();
    for (journey, version) in triggered {
        let definition = service
            .version(&transaction, tenant, &journey, version)
            .await?;
        let scope = Scope {
            profile: profile_value.clone(),
            trigger: data.clone(),
            vars: serde_json::json!({}),
            now_us: now,
            event: Some(data.clone()),
            interactions: None,
        };
        let fires = match definition.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
            Some(TriggerKind::Event(matcher)) => matches(Some(matcher), &keys, &scope),
            Some(TriggerKind::SegmentEntered(_)) => true,
            _ => false,
        };
        if !fires {
            continue;
        }
        let entrant = Entrant {
            customer_ref: entrant_ref(event).unwrap_or_else(|| customer.to_owned()),
            profile: probe.profile.clone(),
            trigger: data.clone(),
            trigger_event_id: event.id.clone(),
            trigger_event_type: event.r#type.clone(),
            variables: serde_json::Map::new(),
        };
        if let Some((instance, new_steps, new_events)) = entry::enter(
            &transaction,
            tenant,
            &journey,
            version,
            &definition,
            &entrant,
            now,
        )
        .await?
        {
            steps.extend(
                new_steps
                    .into_iter()
                    .map(|step| (instance.tenant.clone(), instance.id.clone(), step)),
            );
            emitted.extend(new_events);
        }
    }
    let step_refs: Vec<(&str, &str, &Step)> = steps
        .iter()
        .map(|(tenant, id, step)| (tenant.as_str(), id.as_str(), step))
        .collect();
    instances::upsert_steps(&transaction, &step_refs).await?;
    service.outbox.append_all(&transaction, &emitted).await?;
    remove(&transaction, event_id).await?;
    transaction.commit().await?;
    Ok(true)
}

/// The customer as the triggering event named them (an identifier when unresolved).
fn entrant_ref(event: &Event) -> Option<String> {
    if event.r#type != "interaction.recorded" {
        return None;
    }
    let recorded: InteractionRecorded = payload(event).ok()?;
    CustomerKey::parse(recorded.customer.as_ref(), "customer")
        .ok()
        .map(|key| key.as_str().to_owned())
}

/// What an event does to one of the customer's instances: a goal, an exit condition, or the
/// end of a wait for it.
fn react(
    run: &mut Run,
    definition: &JourneyDefinition,
    keys: &[String],
    scope: &Scope,
    event_id: &str,
    now: i64,
) {
    let instance = &run.instance;
    if let Some(goal) = &definition.goal
        && !instance.converted
        // Judged at the time the event is applied (within moments of its arrival), on the
        // engine's clock, like every other time the engine compares.
        && now >= instance.start_us
        && now <= instance.goal_until_us
        && matches(goal.event.as_ref(), keys, scope)
    {
        run.instance.converted = true;
        run.instance.update_us = now;
        run.events.push(events::converted(&run.instance, event_id));
        run.end(state::EXITED, "goal", now);
        return;
    }
    if !run.instance.is_active() {
        return;
    }
    if let Some(exit) = definition
        .exit_conditions
        .iter()
        .find(|exit| matches(exit.event.as_ref(), keys, scope))
    {
        run.end(state::EXITED, &exit.reason, now);
        return;
    }
    if run.instance.state != state::WAITING {
        return;
    }
    let Some(node) = definition::node(definition, &run.instance.node) else {
        return;
    };
    if let Some(Kind::WaitForEvent(wait)) = &node.kind
        && matches(wait.event.as_ref(), keys, scope)
    {
        if !wait.event_variable.is_empty()
            && let Some(event) = &scope.event
        {
            run.instance
                .variables
                .insert(wait.event_variable.clone(), event.clone());
        }
        let next = node.next.clone();
        run.follow(&next, "event", event_id, now);
        run.instance.update_us = now;
    }
}

/// Active journeys whose latest version an event with `keys` starts.
async fn triggered_journeys(
    db: &impl ConnectionTrait,
    tenant: &str,
    keys: &[String],
) -> Result<Vec<(String, i32)>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT id, published_version FROM {JOURNEYS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND state = 2 AND trigger_key IN ")
    .bind_list(keys.iter().map(String::as_str))
    .push(" ORDER BY id");
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect()
}

/// Merges move instances to the surviving profile; an unmerge gives back those that entered
/// as the restored profile; an erasure cancels the customer's active instances and removes
/// what they held about the customer (variables, trigger, the identifier they entered by).
async fn identity(
    transaction: &DatabaseTransaction,
    service: &Service,
    event: &Event,
) -> Result<(), Error> {
    let tenant = event.tenant.as_str();
    let backend = transaction.get_database_backend();
    match event.r#type.as_str() {
        "profile.merged" => {
            let merged: ProfileMerged = payload(event)?;
            let mut sql = Sql::new(backend);
            sql.push(&format!("UPDATE {INSTANCES} SET profile = "))
                .bind(merged.target_profile.as_str())
                .push(", customer = ")
                .bind(merged.target_profile.as_str())
                .push(" WHERE tenant = ")
                .bind(tenant)
                .push(" AND profile = ")
                .bind(merged.source_profile.as_str());
            transaction.execute_raw(sql.statement()).await?;
        }
        "profile.unmerged" => {
            let unmerged: ProfileUnmerged = payload(event)?;
            let mut sql = Sql::new(backend);
            sql.push(&format!("UPDATE {INSTANCES} SET profile = "))
                .bind(unmerged.source_profile.as_str())
                .push(", customer = ")
                .bind(unmerged.source_profile.as_str())
                .push(" WHERE tenant = ")
                .bind(tenant)
                .push(" AND profile = ")
                .bind(unmerged.target_profile.as_str())
                .push(" AND customer_ref = ")
                .bind(unmerged.source_profile.as_str());
            transaction.execute_raw(sql.statement()).await?;
        }
        _ => {
            let erased: ProfileErased = payload(event)?;
            let now = service.now_us();
            let mut profiles = erased.merged_profiles.clone();
            profiles.push(erased.profile.clone());
            let mut select = instances::select(backend, tenant);
            select
                .push(" AND state IN (1, 2) AND profile IN ")
                .bind_list(profiles.iter().map(String::as_str));
            let active = instances::list(transaction, select, 100_000).await?;
            let mut emitted = Vec::new();
            for instance in active {
                let mut run = Run::new(instance);
                run.end(state::CANCELLED, "erased", now);
                emitted.append(&mut run.events);
                let instance = &run.instance;
                let steps = run.steps.clone();
                let refs: Vec<(&str, &str, &Step)> = steps
                    .iter()
                    .map(|step| (instance.tenant.as_str(), instance.id.as_str(), step))
                    .collect();
                instances::upsert_steps(transaction, &refs).await?;
                let mut sql = Sql::new(backend);
                sql.push(&format!(
                    "UPDATE {INSTANCES} SET state = 4, exit_reason = 'erased', wake_us = NULL, \
                     lease_until_us = 0, end_us = "
                ))
                .bind(now)
                .push(", update_us = ")
                .bind(now)
                .push(" WHERE tenant = ")
                .bind(tenant)
                .push(" AND id = ")
                .bind(instance.id.as_str());
                transaction.execute_raw(sql.statement()).await?;
                entries::left(transaction, tenant, &instance.journey, &instance.customer).await?;
            }
            let mut sql = Sql::new(backend);
            sql.push(&format!(
                "UPDATE {INSTANCES} SET variables = '{{}}', trigger = '{{}}', \
                 customer_ref = profile WHERE tenant = "
            ))
            .bind(tenant)
            .push(" AND profile IN ")
            .bind_list(profiles.iter().map(String::as_str));
            transaction.execute_raw(sql.statement()).await?;
            service.outbox.append_all(transaction, &emitted).await?;
        }
    }
    Ok(())
}
