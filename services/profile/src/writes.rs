//! Writes shared by several RPCs: creating a profile, and what follows any change of one
//! (segment membership and the `profile.updated` event).

use prost::Message;
use sea_orm::{ConnectionTrait, EntityTrait};
use throughline_proto::event::v1::{ProfileCreated, ProfileUpdated};
use throughline_proto::profile::v1::{Profile, ProfileState};
use tonic::Code;

use crate::Service;
use crate::error::{Error, Result, reason};
use crate::events;
use crate::identity::Key;
use crate::store::{self, profile};

/// The identifiers a profile's core fields imply: its email and phone.
pub fn core_identifiers(data: &Profile) -> Vec<Key> {
    use throughline_proto::common::v1::IdentifierType;
    let mut keys = Vec::new();
    if !data.email.is_empty() {
        keys.push(Key {
            kind: IdentifierType::Email as i32,
            source: String::new(),
            value: data.email.clone(),
        });
    }
    if !data.phone.is_empty() {
        keys.push(Key {
            kind: IdentifierType::Phone as i32,
            source: String::new(),
            value: data.phone.clone(),
        });
    }
    keys
}

/// Refuses identifiers held by a profile other than `owner` with ALREADY_EXISTS naming the
/// holder (ErrorInfo metadata `profile`).
pub async fn ensure_free<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    owner: Option<&str>,
    keys: &[Key],
) -> Result<()> {
    let holders = store::holders(c, tenant, keys).await?;
    if let Some((_, holder)) = holders.iter().find(|(_, p)| Some(p.as_str()) != owner) {
        return Err(Error::detailed(
            Code::AlreadyExists,
            reason::IDENTIFIER_TAKEN,
            "an identifier belongs to another profile",
            vec![("profile", store::profile_name(holder))],
        ));
    }
    Ok(())
}

/// Creates an active profile holding `keys` plus the identifiers of its email and phone;
/// emits `profile.created` and computes its segments.
pub async fn create<C: ConnectionTrait>(
    c: &C,
    service: &Service,
    tenant: &str,
    data: &Profile,
    keys: &[Key],
) -> Result<profile::Model> {
    let mut all: Vec<Key> = keys.to_vec();
    for key in core_identifiers(data) {
        if !all.contains(&key) {
            all.push(key);
        }
    }
    if all.len() > service.options().max_identifiers {
        return Err(Error::invalid(
            "profile.identifiers",
            format!("at most {} identifiers", service.options().max_identifiers),
        ));
    }
    ensure_free(c, tenant, None, &all).await?;
    let now = store::now_us();
    let row = profile::Model {
        id: store::new_id(),
        tenant: tenant.to_owned(),
        state: ProfileState::Active as i32,
        merged_into: None,
        data: store::stored_part(data).encode_to_vec(),
        version: 1,
        created_us: now,
        updated_us: now,
    };
    profile::Entity::insert(profile::ActiveModel::from(row.clone()))
        .exec(c)
        .await?;
    store::add_identifiers(c, tenant, &row.id, &all).await?;
    events::created(
        c,
        tenant,
        &row.id,
        ProfileCreated {
            profile: store::profile_name(&row.id),
        },
    )
    .await?;
    crate::segments::refresh(c, &service.segments, tenant, &row.id, Some((data, &all))).await?;
    Ok(row)
}

/// After a change of an active profile: its segments follow, and `profile.updated` says what
/// changed (nothing is emitted when nothing did).
pub async fn changed<C: ConnectionTrait>(
    c: &C,
    service: &Service,
    row: &profile::Model,
    changed_fields: Vec<String>,
) -> Result<()> {
    if changed_fields.is_empty() {
        return Ok(());
    }
    let data = store::decode_data(&row.data)?;
    let keys = store::identifiers(c, &row.tenant, &row.id).await?;
    crate::segments::refresh(
        c,
        &service.segments,
        &row.tenant,
        &row.id,
        Some((&data, &keys)),
    )
    .await?;
    events::updated(
        c,
        &row.tenant,
        &row.id,
        ProfileUpdated {
            profile: store::profile_name(&row.id),
            changed_fields,
        },
    )
    .await
}

/// Writes new data for an active profile, adds the identifiers of a new email or phone, and
/// follows up the change. Returns the saved row.
pub async fn update<C: ConnectionTrait>(
    c: &C,
    service: &Service,
    row: &profile::Model,
    data: &Profile,
    mut changed_fields: Vec<String>,
) -> Result<profile::Model> {
    if changed_fields.is_empty() {
        return Ok(row.clone());
    }
    let held = store::identifiers(c, &row.tenant, &row.id).await?;
    let new: Vec<Key> = core_identifiers(data)
        .into_iter()
        .filter(|key| !held.contains(key))
        .collect();
    ensure_free(c, &row.tenant, Some(&row.id), &new).await?;
    store::add_identifiers(c, &row.tenant, &row.id, &new).await?;
    if !new.is_empty() {
        changed_fields.push("identifiers".to_owned());
    }
    let saved = store::save_profile(c, row, data).await?;
    changed(c, service, &saved, changed_fields).await?;
    Ok(saved)
}
