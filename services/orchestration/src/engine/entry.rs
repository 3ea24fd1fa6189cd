//! A customer entering a journey: the entry policy, the holdout draw, the new instance at its
//! start node, and `journey.entered` — all in the caller's transaction.

use sea_orm::ConnectionTrait;
use throughline_proto::orchestration::v1::{EntryMode, JourneyDefinition};
use throughline_runtime::Error;
use throughline_runtime::time::{MICROS_PER_DAY, duration_us};

use throughline_proto::event::v1::Event;

use super::events;
use super::run::Run;
use crate::store::entries::{self, Rule};
use crate::store::instances::{self, Instance, Step, state};

/// A goal counts this long after entry when the journey does not say.
const DEFAULT_GOAL_WINDOW_US: i64 = 7 * MICROS_PER_DAY;

/// Who enters, and why.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entrant {
    /// The customer as given (`CustomerKey` text).
    pub customer_ref: String,
    /// `profiles/{id}` when resolved.
    pub profile: String,
    /// The `trigger` variable.
    pub trigger: serde_json::Value,
    pub trigger_event_id: String,
    pub trigger_event_type: String,
    /// Added to the definition's initial `vars`.
    pub variables: serde_json::Map<String, serde_json::Value>,
}

impl Entrant {
    /// Who the instance is about for matching and policies: the profile, else the key.
    pub(crate) fn customer(&self) -> &str {
        if self.profile.is_empty() {
            &self.customer_ref
        } else {
            &self.profile
        }
    }
}

/// Enters `entrant` into version `version` of `journey` at `now`; `None` when the entry
/// policy refuses (or the same trigger event already started an instance).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn enter(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
    version: i32,
    definition: &JourneyDefinition,
    entrant: &Entrant,
    now: i64,
) -> Result<Option<(Instance, Vec<Step>, Vec<Event>)>, Error> {
    let policy = definition.entry_policy.unwrap_or_default();
    let mode = EntryMode::try_from(policy.mode).unwrap_or_default();
    let rule = Rule {
        once: matches!(mode, EntryMode::Once | EntryMode::Unspecified),
        reentry_us: match mode {
            EntryMode::OncePerInterval => policy
                .reentry_interval
                .as_ref()
                .and_then(duration_us)
                .unwrap_or(0),
            _ => 0,
        },
        concurrent: policy.allow_concurrent_instances,
    };
    let customer = entrant.customer();
    if !entries::try_enter(db, tenant, journey, customer, now, rule).await? {
        return Ok(None);
    }
    let mut variables = definition
        .variables
        .as_ref()
        .map(throughline_runtime::json::struct_to_json)
        .and_then(|value| value.as_object().cloned())
        .unwrap_or_default();
    variables.extend(entrant.variables.clone());
    let goal_until_us = match &definition.goal {
        Some(goal) => now.saturating_add(
            goal.window
                .as_ref()
                .and_then(duration_us)
                .unwrap_or(DEFAULT_GOAL_WINDOW_US),
        ),
        None => 0,
    };
    let instance = Instance {
        tenant: tenant.to_owned(),
        id: uuid::Uuid::now_v7().simple().to_string(),
        journey: journey.to_owned(),
        version,
        customer_ref: entrant.customer_ref.clone(),
        profile: entrant.profile.clone(),
        customer: customer.to_owned(),
        state: state::RUNNING,
        node: String::new(),
        wake_us: Some(now),
        variables,
        trigger: entrant.trigger.clone(),
        trigger_event_id: entrant.trigger_event_id.clone(),
        trigger_event_type: entrant.trigger_event_type.clone(),
        holdout: in_holdout(definition.holdout_percent, customer, journey),
        goal_until_us,
        start_us: now,
        update_us: now,
        ..Instance::default()
    };
    let mut run = Run::new(instance);
    run.enter(&definition.start_node, now);
    run.events.push(events::entered(&run.instance));
    if run.instance.holdout {
        // The control group: entered and measured against the goal, never contacted.
        run.end(state::EXITED, "holdout", now);
    }
    if !instances::insert(db, &run.instance).await? {
        // The trigger event started an instance already: undo this entry's count.
        entries::left(db, tenant, journey, customer).await?;
        return Ok(None);
    }
    if run.ended {
        entries::left(db, tenant, journey, customer).await?;
    }
    let Run {
        instance,
        steps,
        events,
        ..
    } = run;
    Ok(Some((instance, steps, events)))
}

/// Whether `customer` is in the journey's control group: a deterministic draw from the
/// customer and the journey, so every trigger of the same customer agrees.
fn in_holdout(percent: f64, customer: &str, journey: &str) -> bool {
    if percent.is_nan() || percent <= 0.0 {
        return false;
    }
    let draw = super::hash(&[customer, journey]) % 10_000;
    (draw as f64) < percent * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holdout_takes_about_its_share_and_is_stable() {
        let held = (0..10_000)
            .filter(|i| in_holdout(10.0, &format!("profiles/p{i}"), "cart"))
            .count();
        assert!((800..1_200).contains(&held), "{held}");
        assert_eq!(
            in_holdout(10.0, "profiles/p7", "cart"),
            in_holdout(10.0, "profiles/p7", "cart")
        );
        assert!(!in_holdout(0.0, "profiles/p7", "cart"));
    }
}
