//! Identity changes from the profile service, applied as a `runtime::events` consumer:
//! `profile.merged` puts the merged profile's interactions and threads on the surviving
//! profile's timeline, `profile.unmerged` separates them again exactly as before, and
//! `profile.erased` deletes what the service holds on the erased profiles.
//!
//! Wiring: `Consumer::new(NAME, PROFILE_EVENTS_CONSUMER, db).run(client, PROFILE_EVENTS_SOURCE,
//! &profile_event_types(), profile_events_handler())`.

use std::sync::Arc;

use futures::FutureExt;
use throughline_proto::event::v1::{Event, ProfileErased, ProfileMerged, ProfileUnmerged};
use throughline_runtime::Error;
use throughline_runtime::events::{Handler, payload};

use crate::store::identity;
use crate::time::{now_us, timestamp_us};

/// The consumer's name (its cursor and processed events are kept under it).
pub const PROFILE_EVENTS_CONSUMER: &str = "interaction-identity";
/// The producer whose log the consumer follows.
pub const PROFILE_EVENTS_SOURCE: &str = "profile";
/// The event types the handler acts on; subscribe with these.
pub const PROFILE_EVENT_TYPES: [&str; 3] = ["profile.merged", "profile.unmerged", "profile.erased"];

/// [`PROFILE_EVENT_TYPES`] as the subscription filter `Consumer::run` takes.
pub fn profile_event_types() -> Vec<String> {
    PROFILE_EVENT_TYPES.map(str::to_owned).to_vec()
}

/// The handler of the profile service's identity events. Other event types are ignored, so it
/// may also be given an unfiltered stream.
pub fn profile_events_handler() -> Handler {
    Arc::new(|transaction, event| apply(transaction, event).boxed())
}

async fn apply(transaction: &sea_orm::DatabaseTransaction, event: &Event) -> Result<(), Error> {
    let tenant = event.tenant.as_str();
    if tenant.is_empty() {
        return Err(Error::internal("profile event without a tenant"));
    }
    match event.r#type.as_str() {
        "profile.merged" => {
            let merged: ProfileMerged = payload(event)?;
            let merge_us = event
                .time
                .as_ref()
                .and_then(timestamp_us)
                .unwrap_or_else(now_us);
            identity::merge(
                transaction,
                tenant,
                &merged.source_profile,
                &merged.target_profile,
                &merged.merge_event,
                merge_us,
            )
            .await
        }
        "profile.unmerged" => {
            let unmerged: ProfileUnmerged = payload(event)?;
            identity::unmerge(
                transaction,
                tenant,
                &unmerged.source_profile,
                &unmerged.target_profile,
            )
            .await
        }
        "profile.erased" => {
            let erased: ProfileErased = payload(event)?;
            let mut profiles = erased.merged_profiles;
            profiles.push(erased.profile);
            profiles.retain(|p| !p.is_empty());
            if profiles.is_empty() {
                return Ok(());
            }
            let deleted = identity::erase(transaction, tenant, profiles).await?;
            tracing::info!(deleted, "erased a customer's interactions and threads");
            Ok(())
        }
        _ => Ok(()),
    }
}
