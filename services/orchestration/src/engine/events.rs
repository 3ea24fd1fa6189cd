//! The events the engine emits: `journey.entered`, `journey.exited` and `journey.converted`,
//! written in the transaction that records the change.

use throughline_proto::event::v1::{Event, JourneyConverted, JourneyEntered, JourneyExited};
use throughline_runtime::events::new_event;

use crate::NAME;
use crate::store::instances::{Instance, state};

fn journey(instance: &Instance) -> String {
    format!("journeys/{}", instance.journey)
}

pub(crate) fn entered(instance: &Instance) -> Event {
    let payload = JourneyEntered {
        journey_instance: instance.name(),
        journey: journey(instance),
        version: instance.version,
        profile: instance.profile.clone(),
        holdout: instance.holdout,
        trigger_event_id: instance.trigger_event_id.clone(),
    };
    new_event(
        NAME,
        &instance.tenant,
        "journey.entered",
        &instance.name(),
        "JourneyEntered",
        &payload,
    )
}

pub(crate) fn exited(instance: &Instance) -> Event {
    let payload = JourneyExited {
        journey_instance: instance.name(),
        journey: journey(instance),
        version: instance.version,
        profile: instance.profile.clone(),
        holdout: instance.holdout,
        exit_reason: instance.exit_reason.clone(),
        node_id: instance.node.clone(),
        converted: instance.converted,
        cancelled: instance.state == state::CANCELLED,
    };
    new_event(
        NAME,
        &instance.tenant,
        "journey.exited",
        &instance.name(),
        "JourneyExited",
        &payload,
    )
}

pub(crate) fn converted(instance: &Instance, goal_event_id: &str) -> Event {
    let payload = JourneyConverted {
        journey_instance: instance.name(),
        journey: journey(instance),
        version: instance.version,
        profile: instance.profile.clone(),
        holdout: instance.holdout,
        goal_event_id: goal_event_id.to_owned(),
    };
    new_event(
        NAME,
        &instance.tenant,
        "journey.converted",
        &instance.name(),
        "JourneyConverted",
        &payload,
    )
}
