//! What a journey definition is made of, read by the engine and the API: nodes by id, the
//! edges that leave each, and the key of what starts it. [`validate`] checks a definition.

pub(crate) mod references;
pub(crate) mod validate;

use throughline_proto::orchestration::v1::node::Kind;
use throughline_proto::orchestration::v1::trigger::Kind as TriggerKind;
use throughline_proto::orchestration::v1::{EventMatcher, JourneyDefinition, Node};

/// The node called `id`.
pub(crate) fn node<'a>(definition: &'a JourneyDefinition, id: &str) -> Option<&'a Node> {
    definition.nodes.iter().find(|node| node.id == id)
}

/// The keys an event matcher listens on: `event:{type}` and/or `interaction:{type}`.
pub(crate) fn matcher_keys(matcher: &EventMatcher) -> Vec<String> {
    let mut keys = Vec::new();
    if !matcher.interaction_type.is_empty() {
        keys.push(format!("interaction:{}", matcher.interaction_type));
    } else if !matcher.event_type.is_empty() {
        keys.push(format!("event:{}", matcher.event_type));
    }
    keys
}

/// What starts a published version, as stored in `orchestration_journeys.trigger_key` and
/// compared with an event's keys (`inbox::event_keys`): `interaction:{type}`,
/// `event:{type}` or `segment:{segment}`; empty for a journey started only through the API.
pub(crate) fn trigger_key(definition: &JourneyDefinition) -> String {
    match definition.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
        Some(TriggerKind::Event(matcher)) => matcher_keys(matcher).pop().unwrap_or_default(),
        Some(TriggerKind::SegmentEntered(segment)) => format!("segment:{}", segment.segment),
        Some(TriggerKind::Api(_)) | None => String::new(),
    }
}

/// The nodes that may follow `node`, each with the field its edge is in; empty edges (which
/// end the instance) are left out.
pub(crate) fn edges(node: &Node) -> Vec<(&'static str, &str)> {
    let mut edges: Vec<(&'static str, &str)> = Vec::new();
    match &node.kind {
        Some(Kind::Branch(branch)) => {
            edges.extend(
                branch
                    .cases
                    .iter()
                    .map(|case| ("branch.cases.next", case.next.as_str())),
            );
            edges.push(("branch.default_next", &branch.default_next));
        }
        Some(Kind::AbSplit(split)) => {
            edges.extend(
                split
                    .arms
                    .iter()
                    .map(|arm| ("ab_split.arms.next", arm.next.as_str())),
            );
        }
        Some(Kind::Exit(_)) => {}
        Some(Kind::WaitForEvent(wait)) => {
            edges.push(("next", &node.next));
            edges.push(("wait_for_event.timeout_next", &wait.timeout_next));
        }
        Some(Kind::Webhook(webhook)) => {
            edges.push(("next", &node.next));
            edges.push(("webhook.failure_next", &webhook.failure_next));
        }
        _ => edges.push(("next", &node.next)),
    }
    edges.retain(|(_, next)| !next.is_empty());
    edges
}

/// A node kind's name, as used in field paths and in `MigrateJourneyInstances`' same-kind rule.
pub(crate) fn kind_name(node: &Node) -> &'static str {
    match &node.kind {
        Some(Kind::Send(_)) => "send",
        Some(Kind::Wait(_)) => "wait",
        Some(Kind::WaitForEvent(_)) => "wait_for_event",
        Some(Kind::Branch(_)) => "branch",
        Some(Kind::AbSplit(_)) => "ab_split",
        Some(Kind::UpdateProfile(_)) => "update_profile",
        Some(Kind::RequestFeedback(_)) => "request_feedback",
        Some(Kind::Webhook(_)) => "webhook",
        Some(Kind::Exit(_)) => "exit",
        None => "",
    }
}
