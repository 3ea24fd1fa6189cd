//! What feedback is about (`FeedbackContext`), checked the same way for invitations and
//! uninvited responses.

use throughline_proto::common::v1::Channel;
use throughline_proto::feedback::v1::FeedbackContext;
use throughline_runtime::FieldViolation;
use throughline_runtime::customer::is_client_id;

const MAX_TOUCHPOINT_LEN: usize = 200;

/// Violations of `context` (at `field`): names of other services' resources in their form,
/// a known channel, a touchpoint of at most 200 characters.
pub(crate) fn check(context: &FeedbackContext, field: &str) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    for (value, collection, name) in [
        (&context.interaction, "interactions", "interaction"),
        (&context.thread, "threads", "thread"),
        (&context.journey, "journeys", "journey"),
        (
            &context.journey_instance,
            "journeyInstances",
            "journey_instance",
        ),
    ] {
        let well_formed = value.is_empty()
            || value
                .strip_prefix(collection)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(is_client_id);
        if !well_formed {
            violations.push(FieldViolation::new(
                format!("{field}.{name}"),
                format!("must be {collection}/{{id}}"),
            ));
        }
    }
    if !context.journey_node.is_empty() && !is_client_id(&context.journey_node) {
        violations.push(FieldViolation::new(
            format!("{field}.journey_node"),
            "a node id: letters, digits, '-', '_' or '.', at most 128 characters",
        ));
    }
    if Channel::try_from(context.channel).is_err() {
        violations.push(FieldViolation::new(
            format!("{field}.channel"),
            format!("unknown channel {}", context.channel),
        ));
    }
    if context.touchpoint.chars().count() > MAX_TOUCHPOINT_LEN
        || context.touchpoint.chars().any(char::is_control)
    {
        violations.push(FieldViolation::new(
            format!("{field}.touchpoint"),
            format!("at most {MAX_TOUCHPOINT_LEN} characters, no control characters"),
        ));
    }
    violations
}

/// A BCP-47-like language tag: letters, digits and hyphens, 2 to 35 characters.
pub(crate) fn is_language(tag: &str) -> bool {
    (2..=35).contains(&tag.len())
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && tag.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
}
