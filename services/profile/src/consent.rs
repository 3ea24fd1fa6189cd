//! Consent: append-only decisions per channel and purpose; the current status of a pair is
//! its decision with the latest effective time (the latest recorded among equals).

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use throughline_proto::common::v1::{Channel, ConsentStatus};
use throughline_proto::event::v1::ConsentChanged;
use throughline_proto::profile::v1::Consent;

use crate::error::{Result, Violations};
use crate::events;
use crate::store::{self, consent};

const MAX_EVIDENCE: usize = 4096;
const MAX_SOURCE: usize = 128;

/// The channels consent is kept for: those the organisation contacts a customer on.
pub fn is_contact_channel(channel: i32) -> bool {
    matches!(
        Channel::try_from(channel),
        Ok(Channel::Email
            | Channel::Sms
            | Channel::Push
            | Channel::Whatsapp
            | Channel::Phone
            | Channel::Mail
            | Channel::InApp)
    )
}

pub fn validate(consent: &Consent, prefix: &str, violations: &mut Violations) {
    if !is_contact_channel(consent.channel) {
        violations.add(
            format!("{prefix}.channel"),
            "one of EMAIL, SMS, PUSH, WHATSAPP, PHONE, MAIL, IN_APP",
        );
    }
    if !crate::validate::valid_purpose(consent.purpose) {
        violations.add(format!("{prefix}.purpose"), "MARKETING, SERVICE or SURVEY");
    }
    if !matches!(
        ConsentStatus::try_from(consent.status),
        Ok(ConsentStatus::Granted | ConsentStatus::Denied | ConsentStatus::Unknown)
    ) {
        violations.add(format!("{prefix}.status"), "GRANTED, DENIED or UNKNOWN");
    }
    if consent.source.trim().is_empty() || consent.source.len() > MAX_SOURCE {
        violations.add(
            format!("{prefix}.source"),
            format!("required: where the decision was captured, at most {MAX_SOURCE} bytes"),
        );
    }
    if consent.evidence.len() > MAX_EVIDENCE {
        violations.add(format!("{prefix}.evidence"), "at most 4 KiB");
    }
    if let Some(time) = &consent.effective_time {
        let valid = (0..1_000_000_000).contains(&time.nanos)
            && store::micros(time) <= store::now_us() + 300_000_000
            && time.seconds > 0;
        if !valid {
            violations.add(
                format!("{prefix}.effective_time"),
                "a valid time, not in the future",
            );
        }
    }
}

/// The current decision of one pair, if any.
pub async fn current<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    profile_id: &str,
    channel: i32,
    purpose: i32,
) -> Result<Option<consent::Model>> {
    Ok(consent::Entity::find()
        .filter(consent::Column::Tenant.eq(tenant))
        .filter(consent::Column::ProfileId.eq(profile_id))
        .filter(consent::Column::Channel.eq(channel))
        .filter(consent::Column::Purpose.eq(purpose))
        .order_by_desc(consent::Column::EffectiveUs)
        .order_by_desc(consent::Column::Id)
        .limit(1)
        .one(c)
        .await?)
}

/// Records a decision; announces `consent.changed` when the pair's current status changes.
pub async fn record<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    profile_id: &str,
    decision: &Consent,
    recorded_by: &str,
) -> Result<consent::Model> {
    let previous = current(c, tenant, profile_id, decision.channel, decision.purpose).await?;
    let now = store::now_us();
    let inserted = consent::Entity::insert(consent::ActiveModel {
        tenant: sea_orm::Set(tenant.to_owned()),
        profile_id: sea_orm::Set(profile_id.to_owned()),
        channel: sea_orm::Set(decision.channel),
        purpose: sea_orm::Set(decision.purpose),
        status: sea_orm::Set(decision.status),
        source: sea_orm::Set(decision.source.trim().to_owned()),
        evidence: sea_orm::Set(decision.evidence.clone()),
        effective_us: sea_orm::Set(decision.effective_time.as_ref().map_or(now, store::micros)),
        record_us: sea_orm::Set(now),
        recorded_by: sea_orm::Set(recorded_by.to_owned()),
        ..Default::default()
    })
    .exec_with_returning(c)
    .await?;
    let now_current = current(c, tenant, profile_id, decision.channel, decision.purpose)
        .await?
        .map_or(ConsentStatus::Unknown as i32, |r| r.status);
    let before = previous.map_or(ConsentStatus::Unknown as i32, |r| r.status);
    if now_current != before {
        events::consent_changed(
            c,
            tenant,
            profile_id,
            ConsentChanged {
                profile: store::profile_name(profile_id),
                channel: decision.channel,
                purpose: decision.purpose,
                status: now_current,
                previous_status: before,
                source: inserted.source.clone(),
            },
        )
        .await?;
    }
    Ok(inserted)
}
