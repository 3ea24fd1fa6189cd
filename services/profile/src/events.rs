//! The service's events, appended to its outbox in the transaction of the change they report.

use prost::Message;
use sea_orm::ConnectionTrait;
use throughline_runtime::events::{Outbox, new_event};

use crate::error::Result;
use crate::store;

/// Appends one event about the customer `profile_id` (empty for none).
pub async fn emit<C: ConnectionTrait, M: Message>(
    c: &C,
    tenant: &str,
    profile_id: &str,
    event_type: &str,
    payload_name: &str,
    payload: &M,
) -> Result<()> {
    let subject = if profile_id.is_empty() {
        String::new()
    } else {
        store::profile_name(profile_id)
    };
    let event = new_event(
        crate::NAME,
        tenant,
        event_type,
        &subject,
        payload_name,
        payload,
    );
    Outbox::new(crate::NAME).append(c, &event).await?;
    Ok(())
}

/// One call per event type, so a type and its payload cannot be mismatched.
macro_rules! typed {
    ($($fn:ident: $type:literal => $payload:ident),* $(,)?) => {
        $(
            pub async fn $fn<C: ConnectionTrait>(
                c: &C,
                tenant: &str,
                profile_id: &str,
                payload: throughline_proto::event::v1::$payload,
            ) -> Result<()> {
                emit(c, tenant, profile_id, $type, stringify!($payload), &payload).await
            }
        )*
    };
}

typed! {
    created: "profile.created" => ProfileCreated,
    updated: "profile.updated" => ProfileUpdated,
    deleted: "profile.deleted" => ProfileDeleted,
    merged: "profile.merged" => ProfileMerged,
    unmerged: "profile.unmerged" => ProfileUnmerged,
    erased: "profile.erased" => ProfileErased,
    consent_changed: "consent.changed" => ConsentChanged,
    segment_entered: "segment.entered" => SegmentEntered,
    segment_exited: "segment.exited" => SegmentExited,
}
