//! The feedback service's tables. Every query filters by tenant.

pub(crate) mod counts;
pub(crate) mod follow_ups;
pub(crate) mod identity;
pub(crate) mod invitations;
pub(crate) mod responses;
pub(crate) mod surveys;
pub(crate) mod texts;

use sea_orm::QueryResult;
use throughline_proto::feedback::v1::FeedbackContext;
use throughline_runtime::Error;

/// The context columns (see the migration), in the order [`context_values`] gives them.
pub(crate) const CONTEXT_COLUMNS: [&str; 7] = [
    "interaction",
    "thread",
    "journey",
    "journey_instance",
    "journey_node",
    "channel",
    "touchpoint",
];

/// The values of [`CONTEXT_COLUMNS`] for `context`.
pub(crate) fn context_values(context: &FeedbackContext) -> [sea_orm::Value; 7] {
    [
        context.interaction.clone().into(),
        context.thread.clone().into(),
        context.journey.clone().into(),
        context.journey_instance.clone().into(),
        context.journey_node.clone().into(),
        context.channel.into(),
        context.touchpoint.clone().into(),
    ]
}

/// The context a row's [`CONTEXT_COLUMNS`] hold.
pub(crate) fn context_from_row(row: &QueryResult) -> Result<FeedbackContext, Error> {
    Ok(FeedbackContext {
        interaction: row.try_get("", "interaction")?,
        thread: row.try_get("", "thread")?,
        journey: row.try_get("", "journey")?,
        journey_instance: row.try_get("", "journey_instance")?,
        journey_node: row.try_get("", "journey_node")?,
        channel: row.try_get("", "channel")?,
        touchpoint: row.try_get("", "touchpoint")?,
    })
}
