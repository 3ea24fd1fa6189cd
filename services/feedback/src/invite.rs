//! RequestFeedback: an invitation under the fatigue rule, sent through the distribution
//! service (which applies consent, suppressions, quiet hours and the contact budget) when the
//! request asks for delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use throughline_proto::common::v1::{ChannelSelector, Purpose};
use throughline_proto::distribution::v1::distribution_service_client::DistributionServiceClient;
use throughline_proto::distribution::v1::{
    Address, MessageStatus, Recipient, SendRequest, StatusReason, address, recipient,
};
use throughline_proto::feedback::v1::{
    FeedbackContext, Invitation, InvitationDelivery, InvitationState, SurveyState,
};
use throughline_runtime::Error;
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::db::write_transaction;
use throughline_runtime::peers;
use throughline_runtime::time::{duration_us, now_us, timestamp};

use crate::Service;
use crate::store::invitations::{self, StoredInvitation, invitation_name};
use crate::store::surveys::{Lookup, survey_name};

/// The distribution service's name among the peers.
const DISTRIBUTION: &str = "distribution";

/// A checked RequestFeedback.
#[derive(Debug, Clone)]
pub(crate) struct Invite {
    pub survey_id: String,
    pub customer: CustomerKey,
    pub profile: Option<String>,
    pub context: FeedbackContext,
    pub delivery: Option<InvitationDelivery>,
    pub language: String,
    pub request_id: String,
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Makes the invitation, idempotently by the request's id, in two steps so that no database
/// transaction is held across the call to the distribution service (on an embedded SQLite
/// file shared by every service, that call's own write would wait for ours):
///
/// 1. one transaction takes the customer's fatigue slot and records the invitation, pending;
/// 2. the message is sent with the idempotency key `feedback:<request_id>`, and its outcome
///    recorded (the slot given back when nothing was sent).
///
/// A crash between the two leaves a pending invitation that remembers its delivery: the
/// caller's retry finds it by request id and finishes step 2, and the distribution service
/// answers a repeated send with the first message instead of sending again.
pub(crate) async fn invite(
    service: &Service,
    tenant: &str,
    invite: Invite,
) -> Result<Invitation, Error> {
    let db = &service.db;
    let base = &service.options.survey_base_url;
    if let Some(existing) =
        invitations::find_by_request(db, tenant, &invite.request_id, base).await?
    {
        if existing.survey_id != invite.survey_id || existing.customer != invite.customer {
            return Err(Error::invalid(
                "request_id",
                "already used for a different request",
            ));
        }
        return finish(service, tenant, existing).await;
    }
    let survey = match service
        .published_survey(db, tenant, &invite.survey_id, 0)
        .await?
    {
        Lookup::Missing => return Err(Error::NotFound(survey_name(&invite.survey_id))),
        Lookup::Unpublished => {
            return Err(Error::FailedPrecondition {
                reason: "SURVEY_NOT_PUBLISHED",
                message: format!(
                    "{} has no published version",
                    survey_name(&invite.survey_id)
                ),
            });
        }
        Lookup::Found(found) if found.state == SurveyState::Archived => {
            return Err(Error::FailedPrecondition {
                reason: "SURVEY_ARCHIVED",
                message: format!("{} is archived", survey_name(&invite.survey_id)),
            });
        }
        Lookup::Found(found) => found.survey,
    };
    let delivery = match invite.delivery.clone() {
        None => None,
        Some(mut delivery) => {
            if delivery.template.is_empty() {
                delivery.template = survey.invitation_template.clone();
            }
            if delivery.template.is_empty() {
                return Err(Error::invalid(
                    "delivery.template",
                    "is required: the survey has no invitation_template",
                ));
            }
            if !service.peers.is_deployed(DISTRIBUTION) {
                return Err(Error::FailedPrecondition {
                    reason: "DISTRIBUTION_NOT_DEPLOYED",
                    message: "delivery needs the distribution service, which is not deployed; \
                              leave delivery unset and present the survey yourself"
                        .to_owned(),
                });
            }
            Some(delivery)
        }
    };
    let options = &service.options;
    let now = now_us();
    let ttl = survey
        .invitation_ttl
        .as_ref()
        .and_then(duration_us)
        .unwrap_or_else(|| micros(options.invitation_ttl));
    let fatigue = match &survey.fatigue_interval {
        // Zero disables the rule for this survey.
        Some(interval) => duration_us(interval).unwrap_or(0),
        None => micros(options.fatigue_interval),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut invitation = Invitation {
        name: invitation_name(&id),
        survey: survey_name(&invite.survey_id),
        survey_version: survey.version,
        customer: Some(invite.customer.to_ref()),
        profile: invite.profile.clone().unwrap_or_default(),
        context: Some(invite.context.clone()),
        state: InvitationState::Pending as i32,
        language: if invite.language.is_empty() {
            survey.default_language.clone()
        } else {
            invite.language.clone()
        },
        survey_url: format!("{}{id}", options.survey_base_url),
        create_time: Some(timestamp(now)),
        expire_time: Some(timestamp(now.saturating_add(ttl))),
        ..Invitation::default()
    };
    let transaction = write_transaction(db).await?;
    let contact = contact_of(&invite.customer, invitation.profile.as_str());
    if !invitations::take_contact_slot(&transaction, tenant, &contact, now, fatigue).await? {
        invitation.state = InvitationState::Throttled as i32;
        invitation.state_reason = "fatigue".to_owned();
    }
    let stored = StoredInvitation {
        id,
        survey_id: invite.survey_id.clone(),
        customer: invite.customer.clone(),
        invitation,
        expire_us: now.saturating_add(ttl),
        request_id: invite.request_id.clone(),
        delivery,
    };
    invitations::insert(&transaction, tenant, &stored)
        .await
        .map_err(|error| match error {
            // The same request, retried while the first was still being recorded.
            Error::AlreadyExists(_) => {
                Error::Aborted("a request with this request_id is in progress; retry".to_owned())
            }
            other => other,
        })?;
    transaction.commit().await?;
    finish(service, tenant, stored).await
}

/// Fatigue counts per person: the profile when known, so that invitations by email and by CRM
/// id of one customer count together.
fn contact_of(customer: &CustomerKey, profile: &str) -> String {
    if profile.is_empty() {
        customer.as_str().to_owned()
    } else {
        profile.to_owned()
    }
}

/// Sends a pending invitation that asks for delivery and records the outcome; any other
/// invitation is returned as it is.
async fn finish(
    service: &Service,
    tenant: &str,
    mut stored: StoredInvitation,
) -> Result<Invitation, Error> {
    let Some(delivery) = stored.delivery.clone() else {
        return Ok(stored.invitation);
    };
    if stored.state() != InvitationState::Pending {
        return Ok(stored.invitation);
    }
    let survey_display_name = match service
        .published_survey(
            &service.db,
            tenant,
            &stored.survey_id,
            stored.invitation.survey_version,
        )
        .await?
    {
        Lookup::Found(found) => found.survey.display_name,
        Lookup::Missing | Lookup::Unpublished => String::new(),
    };
    let outcome = match send(service, tenant, &stored, &survey_display_name, &delivery).await {
        Ok(outcome) => outcome,
        // Worth a retry: the invitation stays pending and the caller's retry sends it.
        Err(error @ (Error::Unavailable(_) | Error::DeadlineExceeded)) => return Err(error),
        Err(error) => {
            tracing::warn!(%error, "an invitation could not be sent");
            Outcome {
                state: InvitationState::Failed,
                reason: "send_refused",
                message: String::new(),
            }
        }
    };
    let transaction = write_transaction(&service.db).await?;
    invitations::set_outcome(
        &transaction,
        tenant,
        &stored.id,
        outcome.state,
        outcome.reason,
        &outcome.message,
    )
    .await?;
    if outcome.state != InvitationState::Sent {
        // The customer was not contacted: the fatigue slot goes back.
        let contact = contact_of(&stored.customer, &stored.invitation.profile);
        let taken = stored
            .invitation
            .create_time
            .as_ref()
            .and_then(throughline_runtime::time::timestamp_us)
            .unwrap_or_default();
        invitations::give_back_contact_slot(&transaction, tenant, &contact, &stored.id, taken)
            .await?;
    }
    transaction.commit().await?;
    let invitation = &mut stored.invitation;
    invitation.state = outcome.state as i32;
    invitation.state_reason = outcome.reason.to_owned();
    invitation.message = outcome.message;
    Ok(stored.invitation)
}

/// What the distribution service did with an invitation's message.
struct Outcome {
    state: InvitationState,
    reason: &'static str,
    message: String,
}

async fn send(
    service: &Service,
    tenant: &str,
    stored: &StoredInvitation,
    survey_name: &str,
    delivery: &InvitationDelivery,
) -> Result<Outcome, Error> {
    let invitation = &stored.invitation;
    let Some(channel) = service.peers.channel(DISTRIBUTION, Some(tenant))? else {
        return Err(Error::FailedPrecondition {
            reason: "DISTRIBUTION_NOT_DEPLOYED",
            message: "delivery needs the distribution service, which is not deployed; \
                      leave delivery unset and present the survey yourself"
                .to_owned(),
        });
    };
    let Some(recipient) = recipient_of(&stored.customer, &invitation.profile) else {
        return Ok(Outcome {
            state: InvitationState::Suppressed,
            reason: "no_address",
            message: String::new(),
        });
    };
    let variables = [
        ("survey_url", invitation.survey_url.clone()),
        ("survey_name", survey_name.to_owned()),
        ("invitation", invitation.name.clone()),
    ];
    let request = SendRequest {
        recipient: Some(Recipient {
            recipient: Some(recipient),
            locale: invitation.language.clone(),
            time_zone: String::new(),
        }),
        channel: delivery.channel.clone(),
        purpose: Purpose::Survey as i32,
        template: delivery.template.clone(),
        variables: Some(prost_types::Struct {
            fields: variables
                .into_iter()
                .map(|(key, value)| {
                    (
                        key.to_owned(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue(value)),
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }),
        origin: invitation.name.clone(),
        // Derived from the caller's key, not the invitation's random id, so that a retry after
        // a crash finds the first message.
        request_id: format!("feedback:{}", stored.request_id),
        ..SendRequest::default()
    };
    let mut client = DistributionServiceClient::new(channel);
    let message = peers::call(DISTRIBUTION, client.send(request))
        .await?
        .and_then(|response| response.message)
        .ok_or_else(|| Error::FailedPrecondition {
            reason: "TEMPLATE_NOT_FOUND",
            message: "the distribution service did not find the invitation template".to_owned(),
        })?;
    let status = MessageStatus::try_from(message.status).unwrap_or(MessageStatus::Unspecified);
    let reason = message
        .status_history
        .last()
        .and_then(|change| StatusReason::try_from(change.reason).ok())
        .unwrap_or(StatusReason::Unspecified);
    let (state, reason) = match (status, reason) {
        (MessageStatus::Suppressed, StatusReason::ContactBudgetExceeded) => {
            (InvitationState::Throttled, "contact_budget")
        }
        (MessageStatus::Suppressed, StatusReason::ConsentDenied) => {
            (InvitationState::Suppressed, "consent")
        }
        (MessageStatus::Suppressed, StatusReason::AddressSuppressed) => {
            (InvitationState::Suppressed, "suppressed_address")
        }
        (MessageStatus::Suppressed, StatusReason::Erased) => {
            (InvitationState::Suppressed, "erased")
        }
        (MessageStatus::Suppressed, _) => (InvitationState::Suppressed, "no_eligible_channel"),
        (MessageStatus::Failed | MessageStatus::Cancelled, _) => (InvitationState::Failed, ""),
        _ => (InvitationState::Sent, ""),
    };
    Ok(Outcome {
        state,
        reason,
        message: message.name,
    })
}

/// The distribution recipient of an invitation: the profile when known, else the email or
/// phone the customer was named by; `None` for identifiers that carry no address.
fn recipient_of(customer: &CustomerKey, profile: &str) -> Option<recipient::Recipient> {
    if !profile.is_empty() {
        return Some(recipient::Recipient::Profile(profile.to_owned()));
    }
    let key = customer.as_str();
    let address = if let Some(email) = key.strip_prefix("email:") {
        address::Address::Email(email.to_owned())
    } else if let Some(phone) = key.strip_prefix("phone:") {
        address::Address::Phone(phone.to_owned())
    } else {
        return None;
    };
    Some(recipient::Recipient::Address(Address {
        address: Some(address),
    }))
}

/// Checks a delivery's channel selector: a known channel, or preferred among known channels.
pub(crate) fn check_delivery(
    delivery: &InvitationDelivery,
) -> Vec<throughline_runtime::FieldViolation> {
    use throughline_proto::common::v1::Channel;
    use throughline_proto::common::v1::channel_selector::Selector;
    use throughline_runtime::FieldViolation;
    let mut violations = Vec::new();
    let known =
        |channel: i32| matches!(Channel::try_from(channel), Ok(c) if c != Channel::Unspecified);
    match delivery
        .channel
        .as_ref()
        .and_then(|c: &ChannelSelector| c.selector.as_ref())
    {
        None => violations.push(FieldViolation::new(
            "delivery.channel",
            "is required: a channel, or preferred",
        )),
        Some(Selector::Channel(channel)) if !known(*channel) => {
            violations.push(FieldViolation::new(
                "delivery.channel.channel",
                format!("unknown channel {channel}"),
            ))
        }
        Some(Selector::Preferred(preferred)) => {
            for (index, channel) in preferred.candidates.iter().enumerate() {
                if !known(*channel) {
                    violations.push(FieldViolation::new(
                        format!("delivery.channel.preferred.candidates[{index}]"),
                        format!("unknown channel {channel}"),
                    ));
                }
            }
        }
        Some(Selector::Channel(_)) => {}
    }
    if !delivery.template.is_empty()
        && throughline_runtime::request::resource_id(
            &delivery.template,
            "templates",
            "delivery.template",
        )
        .is_err()
    {
        violations.push(FieldViolation::new(
            "delivery.template",
            "must be templates/{id}",
        ));
    }
    violations
}
