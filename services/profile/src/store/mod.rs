//! Tables and the queries the rules share. Every query names the caller's tenant: a row of
//! another tenant is never read, so a name from another tenant is simply not found.

mod entities;
mod reads;

use prost::Message;
use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use throughline_proto::profile::v1::{Consent, Profile, ProfileState};

pub use entities::{consent, identifier, member, merge_event, profile, segment};
pub use reads::{
    Children, ConsentQuery, consents_by_identifier, holders, profiles_holding,
    profiles_with_children,
};

use crate::error::{Error, Result};
use crate::identity::Key;

pub const PROFILES: &str = "profiles/";
pub const SEGMENTS: &str = "segments/";
pub const MERGE_EVENTS: &str = "mergeEvents/";

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub fn timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: i32::try_from(us.rem_euclid(1_000_000) * 1000).unwrap_or(0),
    }
}

pub fn micros(timestamp: &prost_types::Timestamp) -> i64 {
    timestamp
        .seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(timestamp.nanos / 1000))
}

/// A new resource id: time-ordered, so newer rows sort after older ones.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

pub fn profile_name(id: &str) -> String {
    format!("{PROFILES}{id}")
}

/// The id in `name` (`<prefix><id>`), or an INVALID_ARGUMENT naming `field`.
pub fn parse_name<'a>(name: &'a str, prefix: &str, field: &str) -> Result<&'a str> {
    match name.strip_prefix(prefix) {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Ok(id)
        }
        _ => Err(Error::invalid(
            field,
            format!("must be a resource name `{prefix}{{id}}`"),
        )),
    }
}

pub fn is_postgres<C: ConnectionTrait>(c: &C) -> bool {
    c.get_database_backend() == DatabaseBackend::Postgres
}

/// The stored part of a profile: core fields, attributes and preferences.
pub fn decode_data(bytes: &[u8]) -> Result<Profile> {
    Profile::decode(bytes).map_err(|e| Error::from(crate::error::Base::internal(e)))
}

/// Keeps only what `data` holds.
pub fn stored_part(profile: &Profile) -> Profile {
    Profile {
        given_name: profile.given_name.clone(),
        family_name: profile.family_name.clone(),
        email: profile.email.clone(),
        phone: profile.phone.clone(),
        attributes: profile.attributes.clone(),
        // An empty preferences message and none mean the same: store one form.
        preferences: profile
            .preferences
            .clone()
            .filter(|p| *p != Default::default()),
        ..Profile::default()
    }
}

pub async fn find_profile<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<profile::Model>> {
    Ok(profile::Entity::find_by_id(id.to_owned())
        .filter(profile::Column::Tenant.eq(tenant))
        .one(c)
        .await?)
}

/// Reads a profile and, on PostgreSQL, locks its row until the transaction ends, so that
/// writers of one profile take turns (SQLite has one writer at a time anyway).
pub async fn lock_profile<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<profile::Model>> {
    let mut query =
        profile::Entity::find_by_id(id.to_owned()).filter(profile::Column::Tenant.eq(tenant));
    if is_postgres(c) {
        query = query.lock(LockType::Update);
    }
    Ok(query.one(c).await?)
}

/// The profile, or NOT_FOUND.
pub async fn require_profile<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    id: &str,
    lock: bool,
) -> Result<profile::Model> {
    let found = if lock {
        lock_profile(c, tenant, id).await?
    } else {
        find_profile(c, tenant, id).await?
    };
    found.ok_or_else(|| Error::not_found(profile_name(id)))
}

/// An active profile, locked; FAILED_PRECONDITION if it is merged or erased.
pub async fn require_active<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Result<profile::Model> {
    let row = require_profile(c, tenant, id, true).await?;
    if row.state != ProfileState::Active as i32 {
        return Err(Error::precondition(
            crate::error::reason::PROFILE_NOT_ACTIVE,
            format!("{} is merged or erased", profile_name(id)),
        ));
    }
    Ok(row)
}

/// Writes a profile's data and state, bumping its version (the etag).
pub async fn save_profile<C: ConnectionTrait>(
    c: &C,
    row: &profile::Model,
    data: &Profile,
) -> Result<profile::Model> {
    let now = now_us();
    let encoded = stored_part(data).encode_to_vec();
    profile::Entity::update_many()
        .col_expr(profile::Column::Data, Expr::value(encoded.clone()))
        .col_expr(profile::Column::State, Expr::value(row.state))
        .col_expr(
            profile::Column::MergedInto,
            Expr::value(row.merged_into.clone()),
        )
        .col_expr(profile::Column::Version, Expr::value(row.version + 1))
        .col_expr(profile::Column::UpdatedUs, Expr::value(now))
        .filter(profile::Column::Id.eq(&row.id))
        .filter(profile::Column::Tenant.eq(&row.tenant))
        .exec(c)
        .await?;
    Ok(profile::Model {
        data: encoded,
        version: row.version + 1,
        updated_us: now,
        ..row.clone()
    })
}

pub async fn identifiers<C: ConnectionTrait>(c: &C, tenant: &str, id: &str) -> Result<Vec<Key>> {
    let rows = identifier::Entity::find()
        .filter(identifier::Column::Tenant.eq(tenant))
        .filter(identifier::Column::ProfileId.eq(id))
        .order_by_asc(identifier::Column::CreatedUs)
        .order_by_asc(identifier::Column::Kind)
        .order_by_asc(identifier::Column::Value)
        .all(c)
        .await?;
    Ok(rows.into_iter().map(key_of).collect())
}

fn key_of(row: identifier::Model) -> Key {
    Key {
        kind: row.kind,
        source: row.source,
        value: row.value,
    }
}

fn matching(keys: &[Key]) -> Condition {
    keys.iter().fold(Condition::any(), |any, key| {
        any.add(
            Condition::all()
                .add(identifier::Column::Kind.eq(key.kind))
                .add(identifier::Column::Source.eq(&key.source))
                .add(identifier::Column::Value.eq(&key.value)),
        )
    })
}

/// Gives `keys` to `profile`. A key another writer took meanwhile surfaces as a unique
/// violation, which the caller's retry settles.
pub async fn add_identifiers<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    profile: &str,
    keys: &[Key],
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let now = now_us();
    let rows = keys.iter().map(|key| identifier::ActiveModel {
        tenant: sea_orm::Set(tenant.to_owned()),
        kind: sea_orm::Set(key.kind),
        source: sea_orm::Set(key.source.clone()),
        value: sea_orm::Set(key.value.clone()),
        profile_id: sea_orm::Set(profile.to_owned()),
        created_us: sea_orm::Set(now),
    });
    identifier::Entity::insert_many(rows).exec(c).await?;
    Ok(())
}

/// Moves `keys` (held by `from`) to `to`.
pub async fn move_identifiers<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    from: &str,
    to: &str,
    keys: &[Key],
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    identifier::Entity::update_many()
        .col_expr(identifier::Column::ProfileId, Expr::value(to.to_owned()))
        .filter(identifier::Column::Tenant.eq(tenant))
        .filter(identifier::Column::ProfileId.eq(from))
        .filter(matching(keys))
        .exec(c)
        .await?;
    Ok(())
}

pub async fn remove_identifiers<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    profile: &str,
    keys: &[Key],
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    identifier::Entity::delete_many()
        .filter(identifier::Column::Tenant.eq(tenant))
        .filter(identifier::Column::ProfileId.eq(profile))
        .filter(matching(keys))
        .exec(c)
        .await?;
    Ok(())
}

pub fn consent_proto(row: &consent::Model) -> Consent {
    Consent {
        channel: row.channel,
        purpose: row.purpose,
        status: row.status,
        source: row.source.clone(),
        effective_time: Some(timestamp(row.effective_us)),
        evidence: row.evidence.clone(),
        record_time: Some(timestamp(row.record_us)),
        recorded_by: row.recorded_by.clone(),
    }
}

/// Names of the segments a profile belongs to.
pub async fn segments_of<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Result<Vec<member::Model>> {
    Ok(member::Entity::find()
        .filter(member::Column::Tenant.eq(tenant))
        .filter(member::Column::ProfileId.eq(id))
        .order_by_asc(member::Column::SegmentId)
        .all(c)
        .await?)
}

/// The profile as callers see it: its row, identifiers, current consents and segments
/// (two queries: the row, then everything it holds).
pub async fn assemble<C: ConnectionTrait>(c: &C, row: &profile::Model) -> Result<Profile> {
    let mut profiles = assemble_all(c, std::slice::from_ref(row)).await?;
    Ok(profiles.pop().unwrap_or_default())
}

/// [`assemble`] of many rows of one tenant, with one query for everything they hold.
pub async fn assemble_all<C: ConnectionTrait>(
    c: &C,
    rows: &[profile::Model],
) -> Result<Vec<Profile>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let children = reads::children_of(c, &first.tenant, &ids).await?;
    let none = Children::default();
    rows.iter()
        .map(|row| compose(row, children.get(&row.id).unwrap_or(&none)))
        .collect()
}

pub fn compose(row: &profile::Model, children: &Children) -> Result<Profile> {
    let mut profile = decode_data(&row.data)?;
    profile.name = profile_name(&row.id);
    profile.state = row.state;
    profile.merged_into = row
        .merged_into
        .as_deref()
        .map(profile_name)
        .unwrap_or_default();
    profile.identifiers = children.identifiers.iter().map(Key::to_proto).collect();
    profile.consents = children.consents.iter().map(consent_proto).collect();
    profile.segments = children
        .segments
        .iter()
        .map(|(segment, _)| format!("{SEGMENTS}{segment}"))
        .collect();
    profile.create_time = Some(timestamp(row.created_us));
    profile.update_time = Some(timestamp(row.updated_us));
    profile.etag = etag(row.version);
    Ok(profile)
}

pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Checks a caller's etag (AIP-154): empty means no check.
pub fn check_etag(given: &str, version: i64) -> Result<()> {
    if given.is_empty() || given == etag(version) {
        Ok(())
    } else {
        Err(Error::detailed(
            tonic::Code::Aborted,
            crate::error::reason::ETAG_MISMATCH,
            "the etag is stale: the resource changed since it was read",
            Vec::new(),
        ))
    }
}
