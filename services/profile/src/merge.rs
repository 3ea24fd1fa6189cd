//! Merges and their undoing.
//!
//! A merge moves the source's identifiers and consent records to the target, fills the
//! target's empty core fields, missing attributes and unset preferences from the source, and
//! leaves the source MERGED with its own data untouched. It records the target's data before
//! and right after, so that:
//!
//! **Unmerge rule.** The source gets back exactly what it had: its data (never changed while
//! merged), the identifiers that moved and are still on the target, and the consent records
//! that moved. On the target, each field the merge filled goes back to its value before the
//! merge *only if it still holds what the merge put there*; a field changed after the merge
//! keeps the later change. Everything else done to the target after the merge (new
//! identifiers, attributes, consent) stays with the target.

use prost::Message;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use throughline_proto::event::v1::{ProfileMerged, ProfileUnmerged};
use throughline_proto::profile::v1::{
    MergeEvent, MergeEventState, MergeTrigger, Preferences, Profile, ProfileState,
};
use tonic::Code;

use crate::Service;
use crate::error::{Error, Result, reason};
use crate::identity::Key;
use crate::store::{self, MERGE_EVENTS, consent, merge_event, profile};
use crate::{events, segments, validate, writes};

/// Who and why, as recorded in the merge history.
#[derive(Debug, Clone)]
pub struct Cause {
    pub trigger: MergeTrigger,
    pub actor: String,
    pub reason: String,
}

/// IDENTITY_CONFLICT when the identifiers hold two different ids of one CRM: the same
/// customer cannot have two records in one CRM, so these are two customers.
pub fn check_crm_conflict(keys: &[&Key], profiles: &[String]) -> Result<()> {
    for a in keys.iter().filter(|k| k.is_crm()) {
        if keys
            .iter()
            .any(|b| b.is_crm() && b.source == a.source && b.value != a.value)
        {
            return Err(Error::detailed(
                Code::FailedPrecondition,
                reason::IDENTITY_CONFLICT,
                format!(
                    "the profiles hold different ids of the CRM `{}`; merge refused",
                    a.source
                ),
                vec![(
                    "profiles",
                    profiles
                        .iter()
                        .map(|p| store::profile_name(p))
                        .collect::<Vec<_>>()
                        .join(","),
                )],
            ));
        }
    }
    Ok(())
}

/// What the target takes from the source: what it lacks.
fn fill(target: &Profile, source: &Profile) -> Profile {
    let mut merged = target.clone();
    for (into, from) in [
        (&mut merged.given_name, &source.given_name),
        (&mut merged.family_name, &source.family_name),
        (&mut merged.email, &source.email),
        (&mut merged.phone, &source.phone),
    ] {
        if into.is_empty() {
            into.clone_from(from);
        }
    }
    for (key, value) in &source.attributes {
        merged
            .attributes
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
    if let Some(from) = &source.preferences {
        let into = merged.preferences.get_or_insert_with(Preferences::default);
        if into.language.is_empty() {
            into.language.clone_from(&from.language);
        }
        if into.time_zone.is_empty() {
            into.time_zone.clone_from(&from.time_zone);
        }
        if into.quiet_hours.is_none() {
            into.quiet_hours.clone_from(&from.quiet_hours);
        }
        if into.channel_ranking.is_empty() {
            into.channel_ranking.clone_from(&from.channel_ranking);
        }
        if into.contact_budget.is_none() {
            into.contact_budget.clone_from(&from.contact_budget);
        }
    }
    merged
}

/// Merges `source` into `target` (both locked and active by the caller).
pub async fn merge<C: ConnectionTrait>(
    c: &C,
    service: &Service,
    source: &profile::Model,
    target: &profile::Model,
    cause: &Cause,
) -> Result<MergeEvent> {
    let tenant = &source.tenant;
    let source_keys = store::identifiers(c, tenant, &source.id).await?;
    let target_keys = store::identifiers(c, tenant, &target.id).await?;
    let all: Vec<&Key> = source_keys.iter().chain(target_keys.iter()).collect();
    check_crm_conflict(&all, &[source.id.clone(), target.id.clone()])?;

    let source_data = store::decode_data(&source.data)?;
    let before = store::decode_data(&target.data)?;
    let after = fill(&before, &source_data);
    let moved_fields = validate::changed_fields(&before, &after);

    store::move_identifiers(c, tenant, &source.id, &target.id, &source_keys).await?;
    let moved_consents: Vec<i64> = consent::Entity::find()
        .filter(consent::Column::Tenant.eq(tenant))
        .filter(consent::Column::ProfileId.eq(&source.id))
        .all(c)
        .await?
        .iter()
        .map(|r| r.id)
        .collect();
    consent::Entity::update_many()
        .col_expr(consent::Column::ProfileId, Expr::value(target.id.clone()))
        .filter(consent::Column::Tenant.eq(tenant))
        .filter(consent::Column::ProfileId.eq(&source.id))
        .exec(c)
        .await?;

    let merged_source = profile::Model {
        state: ProfileState::Merged as i32,
        merged_into: Some(target.id.clone()),
        ..source.clone()
    };
    store::save_profile(c, &merged_source, &source_data).await?;
    segments::refresh(c, &service.segments, tenant, &source.id, None).await?;
    let saved_target = store::save_profile(c, target, &after).await?;

    let now = store::now_us();
    let id = store::new_id();
    let event = MergeEvent {
        name: format!("{MERGE_EVENTS}{id}"),
        source_profile: store::profile_name(&source.id),
        target_profile: store::profile_name(&target.id),
        trigger: cause.trigger as i32,
        actor: cause.actor.clone(),
        reason: cause.reason.clone(),
        merge_time: Some(store::timestamp(now)),
        moved_identifiers: source_keys.iter().map(Key::to_proto).collect(),
        moved_fields: moved_fields.clone(),
        state: MergeEventState::Merged as i32,
        ..MergeEvent::default()
    };
    merge_event::Entity::insert(merge_event::ActiveModel {
        id: sea_orm::Set(id.clone()),
        tenant: sea_orm::Set(tenant.clone()),
        source_profile: sea_orm::Set(source.id.clone()),
        target_profile: sea_orm::Set(target.id.clone()),
        state: sea_orm::Set(MergeEventState::Merged as i32),
        merge_us: sea_orm::Set(now),
        event: sea_orm::Set(event.encode_to_vec()),
        target_before: sea_orm::Set(store::stored_part(&before).encode_to_vec()),
        target_after: sea_orm::Set(store::stored_part(&after).encode_to_vec()),
        moved_consents: sea_orm::Set(serde_json::to_string(&moved_consents).unwrap_or_default()),
    })
    .exec(c)
    .await?;
    events::merged(
        c,
        tenant,
        &target.id,
        ProfileMerged {
            merge_event: event.name.clone(),
            source_profile: event.source_profile.clone(),
            target_profile: event.target_profile.clone(),
        },
    )
    .await?;
    let mut changed = moved_fields;
    if !source_keys.is_empty() {
        changed.push("identifiers".to_owned());
    }
    writes::changed(c, service, &saved_target, changed).await?;
    Ok(event)
}

/// The merge event `id` of the tenant, or NOT_FOUND.
pub async fn find<C: ConnectionTrait>(c: &C, tenant: &str, id: &str) -> Result<merge_event::Model> {
    merge_event::Entity::find_by_id(id.to_owned())
        .filter(merge_event::Column::Tenant.eq(tenant))
        .one(c)
        .await?
        .ok_or_else(|| Error::not_found(format!("{MERGE_EVENTS}{id}")))
}

pub fn decode(row: &merge_event::Model) -> Result<MergeEvent> {
    MergeEvent::decode(row.event.as_slice())
        .map_err(|e| Error::from(crate::error::Base::internal(e)))
}

/// Undoes a merge under the rule in this module's documentation. Returns the restored
/// source, the target and the updated event.
pub async fn unmerge<C: ConnectionTrait>(
    c: &C,
    service: &Service,
    tenant: &str,
    event_id: &str,
    actor: &str,
    why: &str,
) -> Result<(profile::Model, profile::Model, MergeEvent)> {
    let row = find(c, tenant, event_id).await?;
    let mut event = decode(&row)?;
    if row.state != MergeEventState::Merged as i32 {
        return Err(Error::precondition(
            reason::ALREADY_UNMERGED,
            format!("{} is already undone", event.name),
        ));
    }
    // Lock in id order so that two unmerges never wait on each other crosswise.
    let (first, second) = if row.source_profile < row.target_profile {
        (&row.source_profile, &row.target_profile)
    } else {
        (&row.target_profile, &row.source_profile)
    };
    store::require_profile(c, tenant, first, true).await?;
    store::require_profile(c, tenant, second, true).await?;
    let source = store::require_profile(c, tenant, &row.source_profile, false).await?;
    let target = store::require_profile(c, tenant, &row.target_profile, false).await?;
    if target.state != ProfileState::Active as i32 {
        let later = merge_event::Entity::find()
            .filter(merge_event::Column::Tenant.eq(tenant))
            .filter(merge_event::Column::SourceProfile.eq(&target.id))
            .filter(merge_event::Column::State.eq(MergeEventState::Merged as i32))
            .one(c)
            .await?;
        return Err(Error::detailed(
            Code::FailedPrecondition,
            reason::LATER_MERGE,
            "the target was merged into another profile since: undo that merge first",
            later
                .map(|l| vec![("merge_event", format!("{MERGE_EVENTS}{}", l.id))])
                .unwrap_or_default(),
        ));
    }
    if source.state != ProfileState::Merged as i32 {
        return Err(Error::precondition(
            reason::PROFILE_NOT_ACTIVE,
            "the source profile is no longer merged (erased or deleted)",
        ));
    }

    // Identifiers: those that moved and are still on the target go back.
    let held = store::identifiers(c, tenant, &target.id).await?;
    let moved: Vec<Key> = event
        .moved_identifiers
        .iter()
        .map(|i| Key {
            kind: i.r#type,
            source: i.source.clone(),
            value: i.value.clone(),
        })
        .filter(|k| held.contains(k))
        .collect();
    store::move_identifiers(c, tenant, &target.id, &source.id, &moved).await?;

    // Consent records that came from the source go back.
    let moved_consents: Vec<i64> = serde_json::from_str(&row.moved_consents).unwrap_or_default();
    if !moved_consents.is_empty() {
        consent::Entity::update_many()
            .col_expr(consent::Column::ProfileId, Expr::value(source.id.clone()))
            .filter(consent::Column::Tenant.eq(tenant))
            .filter(consent::Column::ProfileId.eq(&target.id))
            .filter(consent::Column::Id.is_in(moved_consents))
            .exec(c)
            .await?;
    }

    // Fields the merge filled return to their earlier value unless changed since.
    let before = store::decode_data(&row.target_before)?;
    let after = store::decode_data(&row.target_after)?;
    let current = store::decode_data(&target.data)?;
    let untouched: Vec<String> = event
        .moved_fields
        .iter()
        .filter(|path| !validate::changed_fields(&after, &current).contains(path))
        .cloned()
        .collect();
    let mut restored = current.clone();
    if !untouched.is_empty() {
        validate::apply_mask(&mut restored, &before, &untouched)?;
    }
    let saved_target = store::save_profile(c, &target, &restored).await?;
    let source_data = store::decode_data(&source.data)?;
    let active_source = profile::Model {
        state: ProfileState::Active as i32,
        merged_into: None,
        ..source.clone()
    };
    let saved_source = store::save_profile(c, &active_source, &source_data).await?;

    let now = store::now_us();
    event.state = MergeEventState::Unmerged as i32;
    event.unmerge_actor = actor.to_owned();
    event.unmerge_reason = why.to_owned();
    event.unmerge_time = Some(store::timestamp(now));
    merge_event::Entity::update_many()
        .col_expr(merge_event::Column::State, Expr::value(event.state))
        .col_expr(
            merge_event::Column::Event,
            Expr::value(event.encode_to_vec()),
        )
        .filter(merge_event::Column::Tenant.eq(tenant))
        .filter(merge_event::Column::Id.eq(&row.id))
        .exec(c)
        .await?;
    events::unmerged(
        c,
        tenant,
        &target.id,
        ProfileUnmerged {
            merge_event: event.name.clone(),
            source_profile: event.source_profile.clone(),
            target_profile: event.target_profile.clone(),
            merge_time: event.merge_time,
        },
    )
    .await?;
    let mut changed = validate::changed_fields(&current, &restored);
    if !moved.is_empty() {
        changed.push("identifiers".to_owned());
    }
    writes::changed(c, service, &saved_target, changed).await?;
    let source_keys = store::identifiers(c, tenant, &source.id).await?;
    segments::refresh(
        c,
        &service.segments,
        tenant,
        &source.id,
        Some((&source_data, &source_keys)),
    )
    .await?;
    Ok((saved_source, saved_target, event))
}
