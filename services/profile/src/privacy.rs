//! Data-subject requests: everything held on a customer as JSON (ExportProfile), and the
//! removal of their personal data (EraseProfile, and the clean-up DeleteProfile shares).

use prost::Message;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Map, Value, json};
use throughline_proto::common::v1::attribute_value::Kind;
use throughline_proto::common::v1::{
    AttributeValue, Channel, ConsentStatus, IdentifierType, Purpose,
};
use throughline_proto::profile::v1::{MergeEvent, Profile, ProfileState};

use crate::error::Result;
use crate::store::{self, consent, identifier, member, merge_event, profile};

/// Every profile merged into `id`, directly or through other merged profiles.
pub async fn merged_sources<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut frontier = vec![id.to_owned()];
    while let Some(target) = frontier.pop() {
        let rows = profile::Entity::find()
            .filter(profile::Column::Tenant.eq(tenant))
            .filter(profile::Column::MergedInto.eq(&target))
            .all(c)
            .await?;
        for row in rows {
            if !found.contains(&row.id) && row.id != id {
                frontier.push(row.id.clone());
                found.push(row.id);
            }
        }
    }
    Ok(found)
}

/// Removes a profile's identifiers, consent records, memberships and merge history.
pub async fn remove_everything<C: ConnectionTrait>(c: &C, tenant: &str, id: &str) -> Result<()> {
    identifier::Entity::delete_many()
        .filter(identifier::Column::Tenant.eq(tenant))
        .filter(identifier::Column::ProfileId.eq(id))
        .exec(c)
        .await?;
    consent::Entity::delete_many()
        .filter(consent::Column::Tenant.eq(tenant))
        .filter(consent::Column::ProfileId.eq(id))
        .exec(c)
        .await?;
    member::Entity::delete_many()
        .filter(member::Column::Tenant.eq(tenant))
        .filter(member::Column::ProfileId.eq(id))
        .exec(c)
        .await?;
    merge_event::Entity::delete_many()
        .filter(merge_event::Column::Tenant.eq(tenant))
        .filter(
            Condition::any()
                .add(merge_event::Column::SourceProfile.eq(id))
                .add(merge_event::Column::TargetProfile.eq(id)),
        )
        .exec(c)
        .await?;
    Ok(())
}

/// Erases a profile and those merged into it: they keep only their names, in state ERASED.
/// Returns the merged profiles erased with it; nothing happens to an erased profile.
pub async fn erase<C: ConnectionTrait>(c: &C, row: &profile::Model) -> Result<Vec<String>> {
    if row.state == ProfileState::Erased as i32 {
        return Ok(Vec::new());
    }
    let sources = merged_sources(c, &row.tenant, &row.id).await?;
    for id in sources.iter().chain(std::iter::once(&row.id)) {
        remove_everything(c, &row.tenant, id).await?;
        profile::Entity::update_many()
            .col_expr(
                profile::Column::State,
                Expr::value(ProfileState::Erased as i32),
            )
            .col_expr(
                profile::Column::MergedInto,
                Expr::value(Option::<String>::None),
            )
            .col_expr(profile::Column::Data, Expr::value(Vec::<u8>::new()))
            .col_expr(
                profile::Column::Version,
                Expr::col(profile::Column::Version).add(1),
            )
            .col_expr(profile::Column::UpdatedUs, Expr::value(store::now_us()))
            .filter(profile::Column::Tenant.eq(&row.tenant))
            .filter(profile::Column::Id.eq(id))
            .exec(c)
            .await?;
    }
    Ok(sources)
}

fn time(us: i64) -> Value {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
        .unwrap_or(Value::Null)
}

fn attribute(value: &AttributeValue) -> Value {
    match &value.kind {
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::TimestampValue(t)) => time(store::micros(t)),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(attribute).collect()),
        None => Value::Null,
    }
}

fn name<E>(
    value: i32,
    parse: impl Fn(i32) -> Option<E>,
    text: impl Fn(&E) -> &'static str,
) -> Value {
    json!(parse(value).as_ref().map(text).unwrap_or("UNSPECIFIED"))
}

fn profile_json(data: &Profile) -> Value {
    let preferences = data.preferences.clone().unwrap_or_default();
    let attributes: Map<String, Value> = data
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), attribute(v)))
        .collect();
    json!({
        "given_name": data.given_name,
        "family_name": data.family_name,
        "email": data.email,
        "phone": data.phone,
        "attributes": attributes,
        "preferences": {
            "language": preferences.language,
            "time_zone": preferences.time_zone,
            "quiet_hours": preferences.quiet_hours.map(|w| json!({
                "start": w.start_time.map(|t| format!("{:02}:{:02}", t.hours, t.minutes)),
                "end": w.end_time.map(|t| format!("{:02}:{:02}", t.hours, t.minutes)),
                "days": w.days,
            })),
            "channel_ranking": preferences.channel_ranking.iter().map(|c| name(*c, |v| Channel::try_from(v).ok(), Channel::as_str_name)).collect::<Vec<_>>(),
            "contact_budget": preferences.contact_budget.map(|b| b.limits.iter().map(|l| json!({
                "channel": name(l.channel, |v| Channel::try_from(v).ok(), Channel::as_str_name),
                "purpose": name(l.purpose, |v| Purpose::try_from(v).ok(), Purpose::as_str_name),
                "max_contacts": l.max_contacts,
                "period": l.period,
            })).collect::<Vec<_>>()),
        },
    })
}

/// Everything held on a profile and those merged into it.
pub async fn export<C: ConnectionTrait>(c: &C, row: &profile::Model) -> Result<Value> {
    let mut merged = Vec::new();
    for id in merged_sources(c, &row.tenant, &row.id).await? {
        if let Some(source) = store::find_profile(c, &row.tenant, &id).await? {
            merged.push(Box::pin(export_one(c, &source)).await?);
        }
    }
    let mut document = export_one(c, row).await?;
    if let Value::Object(map) = &mut document {
        map.insert("merged_profiles".into(), Value::Array(merged));
    }
    Ok(document)
}

async fn export_one<C: ConnectionTrait>(c: &C, row: &profile::Model) -> Result<Value> {
    let data = store::decode_data(&row.data)?;
    let identifiers: Vec<Value> = store::identifiers(c, &row.tenant, &row.id)
        .await?
        .iter()
        .map(|k| {
            json!({
                "type": name(k.kind, |v| IdentifierType::try_from(v).ok(), IdentifierType::as_str_name),
                "source": k.source,
                "value": k.value,
            })
        })
        .collect();
    let consents: Vec<Value> = consent::Entity::find()
        .filter(consent::Column::Tenant.eq(&row.tenant))
        .filter(consent::Column::ProfileId.eq(&row.id))
        .order_by_asc(consent::Column::Id)
        .all(c)
        .await?
        .iter()
        .map(|r| {
            json!({
                "channel": name(r.channel, |v| Channel::try_from(v).ok(), Channel::as_str_name),
                "purpose": name(r.purpose, |v| Purpose::try_from(v).ok(), Purpose::as_str_name),
                "status": name(r.status, |v| ConsentStatus::try_from(v).ok(), ConsentStatus::as_str_name),
                "source": r.source,
                "evidence": r.evidence,
                "effective_time": time(r.effective_us),
                "record_time": time(r.record_us),
                "recorded_by": r.recorded_by,
            })
        })
        .collect();
    let merges: Vec<Value> = merge_event::Entity::find()
        .filter(merge_event::Column::Tenant.eq(&row.tenant))
        .filter(
            Condition::any()
                .add(merge_event::Column::SourceProfile.eq(&row.id))
                .add(merge_event::Column::TargetProfile.eq(&row.id)),
        )
        .order_by_asc(merge_event::Column::MergeUs)
        .all(c)
        .await?
        .iter()
        .filter_map(|r| MergeEvent::decode(r.event.as_slice()).ok())
        .map(|e| {
            json!({
                "name": e.name,
                "source_profile": e.source_profile,
                "target_profile": e.target_profile,
                "actor": e.actor,
                "reason": e.reason,
                "merge_time": e.merge_time.map(|t| time(store::micros(&t))),
                "state": e.state,
                "moved_fields": e.moved_fields,
            })
        })
        .collect();
    let segments: Vec<Value> = store::segments_of(c, &row.tenant, &row.id)
        .await?
        .iter()
        .map(|m| json!({"segment": format!("{}{}", store::SEGMENTS, m.segment_id), "enter_time": time(m.enter_us)}))
        .collect();
    Ok(json!({
        "name": store::profile_name(&row.id),
        "state": name(row.state, |v| ProfileState::try_from(v).ok(), ProfileState::as_str_name),
        "merged_into": row.merged_into.as_deref().map(store::profile_name),
        "create_time": time(row.created_us),
        "update_time": time(row.updated_us),
        "profile": profile_json(&data),
        "identifiers": identifiers,
        "consent_history": consents,
        "merge_history": merges,
        "segments": segments,
    }))
}
