//! Journey instances: start through the API, read, list, cancel, and migrate between versions.

use std::collections::BTreeMap;

use futures::FutureExt;
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use throughline_proto::orchestration::v1::trigger::Kind as TriggerKind;
use throughline_proto::orchestration::v1::*;
use throughline_runtime::auth::Principal;
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::db::write_transaction;
use throughline_runtime::idempotency::Key;
use throughline_runtime::request::{page_size, resource_id};
use throughline_runtime::sql::Sql;
use throughline_runtime::time::{PageToken, next_page, timestamp};
use throughline_runtime::{Error, FieldViolation};

use super::Api;
use crate::definition;
use crate::engine::entry::{self, Entrant};
use crate::engine::run::Run;
use crate::store::instances::{self, Instance, Step, state};
use crate::store::{INSTANCES, JOURNEYS};

/// The largest `variables` StartJourney accepts, encoded.
const MAX_VARIABLES_BYTES: usize = 64 * 1024;

impl Api {
    pub(super) async fn start_journey(
        &self,
        caller: &Principal,
        request: StartJourneyRequest,
    ) -> Result<StartJourneyResponse, Error> {
        let tenant = caller.tenant.as_str();
        let mut violations = Vec::new();
        let journey = resource_id(&request.journey, "journeys", "journey")
            .map_err(|error| super::collect(error, &mut violations))
            .ok()
            .map(str::to_owned);
        let customer = CustomerKey::parse(request.customer.as_ref(), "customer")
            .map_err(|found| violations.extend(found))
            .ok();
        if request
            .variables
            .as_ref()
            .is_some_and(|v| v.encoded_len() > MAX_VARIABLES_BYTES)
        {
            violations.push(FieldViolation::new("variables", "at most 64 KiB"));
        }
        Error::unless_valid(violations)?;
        let (Some(journey), Some(customer)) = (journey, customer) else {
            return Err(Error::internal("checked above"));
        };
        let db = self.service.db();
        let version = active_version(db, tenant, &journey).await?;
        let definition = self.service.version(db, tenant, &journey, version).await?;
        if !matches!(
            definition.trigger.as_ref().and_then(|t| t.kind.as_ref()),
            Some(TriggerKind::Api(_))
        ) {
            return Err(Error::FailedPrecondition {
                reason: "NOT_API_TRIGGERED",
                message: format!("journeys/{journey} starts from its trigger, not the API"),
            });
        }
        let profile = self
            .service
            .resolver
            .resolve(tenant, std::slice::from_ref(&customer))
            .await?
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_default();
        let variables = request
            .variables
            .as_ref()
            .map(throughline_runtime::json::struct_to_json)
            .and_then(|value| value.as_object().cloned())
            .unwrap_or_default();
        let entrant = Entrant {
            customer_ref: customer.as_str().to_owned(),
            profile,
            trigger: serde_json::json!({ "type": "api", "data": variables.clone() }),
            variables,
            ..Entrant::default()
        };
        let work = StartWork {
            service: self.service.clone(),
            tenant: tenant.to_owned(),
            journey,
            version,
            definition,
            entrant,
        };
        if request.request_id.is_empty() {
            let transaction = write_transaction(db).await?;
            let response = work.run(&transaction).await?;
            transaction.commit().await?;
            return Ok(response);
        }
        let key = Key {
            tenant,
            method: "StartJourney",
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(db, key, &request, move |transaction| {
                work.run(transaction).boxed()
            })
            .await
    }

    pub(super) async fn get_journey_instance(
        &self,
        caller: &Principal,
        request: GetJourneyInstanceRequest,
    ) -> Result<GetJourneyInstanceResponse, Error> {
        let tenant = caller.tenant.as_str();
        let id = resource_id(&request.name, "journeyInstances", "name")?;
        let db = self.service.db();
        let instance = found(instances::get(db, tenant, id).await?, &request.name)?;
        let steps = instances::steps(db, tenant, id, 0).await?;
        Ok(GetJourneyInstanceResponse {
            instance: Some(to_proto(&instance, &steps)),
        })
    }

    pub(super) async fn list_journey_instances(
        &self,
        caller: &Principal,
        request: ListJourneyInstancesRequest,
    ) -> Result<ListJourneyInstancesResponse, Error> {
        let tenant = caller.tenant.as_str();
        let mut violations = Vec::new();
        let customer = match &request.customer {
            Some(customer) => CustomerKey::parse(Some(customer), "customer")
                .map_err(|found| violations.extend(found))
                .ok(),
            None => None,
        };
        let journey = if request.journey.is_empty() {
            None
        } else {
            resource_id(&request.journey, "journeys", "journey")
                .map_err(|error| super::collect(error, &mut violations))
                .ok()
        };
        if request.customer.is_none() && request.journey.is_empty() {
            violations.push(FieldViolation::new(
                "customer",
                "required: a customer or a journey",
            ));
        }
        let states: Vec<i32> = request.states.clone();
        if states
            .iter()
            .any(|s| JourneyInstanceState::try_from(*s).is_err())
        {
            violations.push(FieldViolation::new("states", "unknown state"));
        }
        let size = page_size(request.page_size)
            .map_err(|error| super::collect(error, &mut violations))
            .unwrap_or(20);
        let filters = format!("{:?}|{:?}|{:?}", customer, journey, states);
        let after = PageToken::decode(&request.page_token, &filters)
            .map_err(|problem| violations.push(FieldViolation::new("page_token", problem)))
            .ok()
            .flatten();
        Error::unless_valid(violations)?;
        let db = self.service.db();
        let mut sql = instances::select(db.get_database_backend(), tenant);
        if let Some(customer) = &customer {
            // The customer as resolved now, and as instances entered.
            let profile = self
                .service
                .resolver
                .resolve(tenant, std::slice::from_ref(customer))
                .await?
                .into_iter()
                .next()
                .flatten();
            let mut who = vec![customer.as_str().to_owned()];
            who.extend(profile);
            sql.push(" AND (customer IN ")
                .bind_list(who.iter().map(String::as_str))
                .push(" OR customer_ref IN ")
                .bind_list(who.iter().map(String::as_str))
                .push(")");
        }
        if let Some(journey) = journey {
            sql.push(" AND journey = ").bind(journey);
        }
        if !states.is_empty() {
            sql.push(" AND state IN ").bind_list(states);
        }
        if let Some(after) = &after {
            sql.after_page("start_us", after);
        }
        let mut rows = instances::list(db, sql, size + 1).await?;
        let next = next_page(&mut rows, size, |instance| PageToken {
            sort_us: instance.start_us,
            id: instance.id.clone(),
        });
        Ok(ListJourneyInstancesResponse {
            // Steps are read one instance at a time by GetJourneyInstance.
            instances: rows.iter().map(|i| to_proto(i, &[])).collect(),
            next_page_token: next.map(|t| t.encode(&filters)).unwrap_or_default(),
        })
    }

    pub(super) async fn cancel_journey_instance(
        &self,
        caller: &Principal,
        request: CancelJourneyInstanceRequest,
    ) -> Result<CancelJourneyInstanceResponse, Error> {
        let tenant = caller.tenant.as_str();
        let id = resource_id(&request.name, "journeyInstances", "name")?.to_owned();
        if request.reason.len() > 200 {
            return Err(Error::invalid("reason", "at most 200 characters"));
        }
        let db = self.service.db();
        let outcome = if request.reason.is_empty() {
            "cancelled".to_owned()
        } else {
            format!("cancelled:{}", request.reason)
        };
        // The engine may be saving the instance's step at this moment: its save and this one
        // are both conditional on the lease they read, so one of them retries.
        for _ in 0..20 {
            let transaction = write_transaction(db).await?;
            let instance = found(
                instances::get(&transaction, tenant, &id).await?,
                &request.name,
            )?;
            if !instance.is_active() {
                // Cancelling an ended instance succeeds without effect.
                transaction.rollback().await?;
                let steps = instances::steps(db, tenant, &id, 0).await?;
                return Ok(CancelJourneyInstanceResponse {
                    instance: Some(to_proto(&instance, &steps)),
                });
            }
            let lease = instance.lease_until_us;
            let now = self.service.now_us();
            let mut run = Run::new(instance);
            run.current().outcome = outcome.clone();
            run.end(state::CANCELLED, "cancelled", now);
            crate::engine::record(
                &transaction,
                &self.service,
                std::slice::from_ref(&run),
                lease,
            )
            .await?;
            let saved = instances::get(&transaction, tenant, &id).await?;
            if saved.as_ref().is_some_and(|i| i.state == state::CANCELLED) {
                transaction.commit().await?;
                let steps = instances::steps(db, tenant, &id, 0).await?;
                return Ok(CancelJourneyInstanceResponse {
                    instance: saved.map(|i| to_proto(&i, &steps)),
                });
            }
            transaction.rollback().await?;
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Err(Error::Aborted(
            "the instance kept moving on; retry".to_owned(),
        ))
    }

    pub(super) async fn migrate_journey_instances(
        &self,
        caller: &Principal,
        request: MigrateJourneyInstancesRequest,
    ) -> Result<MigrateJourneyInstancesResponse, Error> {
        let tenant = caller.tenant.as_str();
        let journey = resource_id(&request.journey, "journeys", "journey")?.to_owned();
        if request.from_version <= 0 {
            return Err(Error::invalid(
                "from_version",
                "required: a published version",
            ));
        }
        if request.to_version < 0 {
            return Err(Error::invalid("to_version", "must not be negative"));
        }
        let db = self.service.db();
        let latest = published_version(db, tenant, &journey).await?;
        let to_version = if request.to_version == 0 {
            latest
        } else {
            request.to_version
        };
        if to_version == request.from_version {
            return Err(Error::invalid(
                "to_version",
                "must differ from from_version",
            ));
        }
        let from = self
            .service
            .version(db, tenant, &journey, request.from_version)
            .await
            .map_err(|_| Error::invalid("from_version", "no such published version"))?;
        let to = self
            .service
            .version(db, tenant, &journey, to_version)
            .await
            .map_err(|_| Error::invalid("to_version", "no such published version"))?;
        let mut violations = Vec::new();
        for (old, new) in &request.node_mapping {
            let field = format!("node_mapping[{old}]");
            let Some(old_node) = definition::node(&from, old) else {
                violations.push(FieldViolation::new(
                    field,
                    format!("version {} has no node `{old}`", request.from_version),
                ));
                continue;
            };
            match definition::node(&to, new) {
                None => violations.push(FieldViolation::new(
                    field,
                    format!("version {to_version} has no node `{new}`"),
                )),
                Some(new_node)
                    if definition::kind_name(new_node) != definition::kind_name(old_node) =>
                {
                    violations.push(FieldViolation::new(
                        field,
                        format!(
                            "`{old}` is a {} node and `{new}` a {} node: map to a node of the same kind",
                            definition::kind_name(old_node),
                            definition::kind_name(new_node)
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Error::unless_valid(violations)?;
        let work = MigrateWork {
            service: self.service.clone(),
            tenant: tenant.to_owned(),
            journey,
            from_version: request.from_version,
            to_version,
            validate_only: request.validate_only,
            mapping: request
                .node_mapping
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        if request.request_id.is_empty() {
            let transaction = write_transaction(db).await?;
            let response = work.run(&transaction).await?;
            transaction.commit().await?;
            return Ok(response);
        }
        let key = Key {
            tenant,
            method: "MigrateJourneyInstances",
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(db, key, &request, move |transaction| {
                work.run(transaction).boxed()
            })
            .await
    }
}

/// StartJourney's writes, in one transaction.
struct StartWork {
    service: crate::Service,
    tenant: String,
    journey: String,
    version: i32,
    definition: std::sync::Arc<JourneyDefinition>,
    entrant: Entrant,
}

impl StartWork {
    async fn run(self, transaction: &DatabaseTransaction) -> Result<StartJourneyResponse, Error> {
        let now = self.service.now_us();
        let entered = entry::enter(
            transaction,
            &self.tenant,
            &self.journey,
            self.version,
            &self.definition,
            &self.entrant,
            now,
        )
        .await?;
        let Some((instance, steps, events)) = entered else {
            return Err(Error::FailedPrecondition {
                reason: "ENTRY_POLICY",
                message: "the journey's entry policy does not let this customer enter now"
                    .to_owned(),
            });
        };
        let refs: Vec<(&str, &str, &Step)> = steps
            .iter()
            .map(|step| (instance.tenant.as_str(), instance.id.as_str(), step))
            .collect();
        instances::upsert_steps(transaction, &refs).await?;
        self.service.outbox.append_all(transaction, &events).await?;
        Ok(StartJourneyResponse {
            instance: Some(to_proto(&instance, &steps)),
        })
    }
}

/// MigrateJourneyInstances' check and moves, in one transaction: all or nothing.
struct MigrateWork {
    service: crate::Service,
    tenant: String,
    journey: String,
    from_version: i32,
    to_version: i32,
    validate_only: bool,
    mapping: BTreeMap<String, String>,
}

impl MigrateWork {
    async fn run(
        self,
        transaction: &DatabaseTransaction,
    ) -> Result<MigrateJourneyInstancesResponse, Error> {
        let now = self.service.now_us();
        let by_node =
            active_by_node(transaction, &self.tenant, &self.journey, self.from_version).await?;
        let unmapped: Vec<FieldViolation> = by_node
            .keys()
            .filter(|node| !self.mapping.contains_key(*node))
            .map(|node| {
                FieldViolation::new(
                    format!("node_mapping[{node}]"),
                    "instances are at this node: map it to a node of the same kind",
                )
            })
            .collect();
        Error::unless_valid(unmapped)?;
        if !self.validate_only {
            for (node, count) in &by_node {
                let moved = move_instances(
                    transaction,
                    &self.tenant,
                    &self.journey,
                    self.from_version,
                    (node, &self.mapping[node]),
                    self.to_version,
                    now,
                )
                .await?;
                if moved != *count {
                    return Err(Error::Aborted(
                        "instances are running a step: retry in a moment".to_owned(),
                    ));
                }
            }
        }
        Ok(MigrateJourneyInstancesResponse {
            migrated_count: by_node.values().sum(),
            migrated_by_node: by_node.into_iter().collect(),
        })
    }
}

fn found(instance: Option<Instance>, name: &str) -> Result<Instance, Error> {
    instance.ok_or_else(|| Error::NotFound(name.to_owned()))
}

/// The version customers enter now: FAILED_PRECONDITION unless the journey is active.
async fn active_version(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
) -> Result<i32, Error> {
    let (state, version) = journey_state(db, tenant, journey).await?;
    if state != JourneyState::Active as i32 || version == 0 {
        return Err(Error::FailedPrecondition {
            reason: "JOURNEY_NOT_ACTIVE",
            message: format!("journeys/{journey} is not active"),
        });
    }
    Ok(version)
}

async fn published_version(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
) -> Result<i32, Error> {
    Ok(journey_state(db, tenant, journey).await?.1)
}

/// A journey's state and latest published version; NOT_FOUND if the tenant has no such journey.
async fn journey_state(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
) -> Result<(i32, i32), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT state, published_version FROM {JOURNEYS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND id = ")
    .bind(journey);
    let row = db
        .query_one_raw(sql.statement())
        .await?
        .ok_or_else(|| Error::NotFound(format!("journeys/{journey}")))?;
    Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?))
}

/// Active instances of a version, counted by the node each is at.
async fn active_by_node(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
    version: i32,
) -> Result<BTreeMap<String, i64>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT node, COUNT(*) FROM {INSTANCES} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND journey = ")
    .bind(journey)
    .push(" AND version = ")
    .bind(version)
    .push(" AND state IN (1, 2) GROUP BY node");
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect()
}

/// Moves the active instances at node `from_node` of `from_version` to `to_node` of
/// `to_version`; those the engine holds at this moment stay (the caller aborts).
async fn move_instances(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
    from_version: i32,
    (from_node, to_node): (&str, &str),
    to_version: i32,
    now: i64,
) -> Result<i64, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {INSTANCES} SET version = "))
        .bind(to_version)
        .push(", node = ")
        .bind(to_node)
        .push(", update_us = ")
        .bind(now)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND journey = ")
        .bind(journey)
        .push(" AND version = ")
        .bind(from_version)
        .push(" AND node = ")
        .bind(from_node)
        .push(" AND state IN (1, 2) AND lease_until_us <= ")
        .bind(now);
    let moved = db.execute_raw(sql.statement()).await?.rows_affected();
    Ok(i64::try_from(moved).unwrap_or(i64::MAX))
}

/// The contract's view of an instance and its steps.
pub(crate) fn to_proto(instance: &Instance, steps: &[Step]) -> JourneyInstance {
    let active = instance.is_active();
    JourneyInstance {
        name: instance.name(),
        journey: format!("journeys/{}", instance.journey),
        version: instance.version,
        customer: Some(CustomerKey::from_stored(instance.customer_ref.clone()).to_ref()),
        profile: instance.profile.clone(),
        state: instance.state,
        current_node: if active {
            instance.node.clone()
        } else {
            String::new()
        },
        wake_time: instance.wake_us.filter(|_| active).map(timestamp),
        holdout: instance.holdout,
        split_arms: instance
            .split_arms
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        variables: Some(throughline_runtime::json::json_to_struct(
            serde_json::Value::Object(instance.variables.clone()),
        )),
        trigger_event_id: instance.trigger_event_id.clone(),
        trigger_event_type: instance.trigger_event_type.clone(),
        exit_reason: instance.exit_reason.clone(),
        converted: instance.converted,
        steps: steps
            .iter()
            .map(|step| JourneyStep {
                node_id: step.node_id.clone(),
                enter_time: Some(timestamp(step.enter_us)),
                leave_time: step.leave_us.map(timestamp),
                outcome: step.outcome.clone(),
                effect: step.effect.clone(),
                attempts: step.attempts,
            })
            .collect(),
        start_time: Some(timestamp(instance.start_us)),
        update_time: Some(timestamp(instance.update_us)),
        end_time: instance.end_us.map(timestamp),
    }
}
