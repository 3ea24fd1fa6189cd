//! RequestFeedback: an invitation under the fatigue rule, sent through the distribution
//! service (which applies consent, suppressions, quiet hours and the contact budget) when the
//! request asks for delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use sea_orm::DatabaseTransaction;
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
use throughline_runtime::peers;
use throughline_runtime::time::{duration_us, now_us, timestamp};

use crate::Service;
use crate::store::invitations::{self, StoredInvitation, invitation_name};
use crate::store::surveys::{self, Lookup, survey_name};

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

/// Makes the invitation inside `transaction`. The distribution service is called before the
/// transaction commits: a crash in between leaves no invitation, and the caller's retry sends
/// with the same idempotency key, which the distribution service answers with the first
/// message instead of sending again.
pub(crate) async fn invite(
    service: &Service,
    transaction: &DatabaseTransaction,
    tenant: &str,
    invite: Invite,
) -> Result<Invitation, Error> {
    let survey = match surveys::published(transaction, tenant, &invite.survey_id, 0).await? {
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
    // Fatigue counts per person: the profile when known, so that invitations by email and by
    // CRM id of one customer count together.
    let contact = invite
        .profile
        .clone()
        .unwrap_or_else(|| invite.customer.as_str().to_owned());
    let previous = invitations::last_invited(transaction, tenant, &contact).await?;
    let admitted =
        invitations::take_contact_slot(transaction, tenant, &contact, now, fatigue).await?;

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
    if !admitted {
        invitation.state = InvitationState::Throttled as i32;
        invitation.state_reason = "fatigue".to_owned();
    } else if let Some(delivery) = &invite.delivery {
        let template = if delivery.template.is_empty() {
            survey.invitation_template.clone()
        } else {
            delivery.template.clone()
        };
        if template.is_empty() {
            return Err(Error::invalid(
                "delivery.template",
                "is required: the survey has no invitation_template",
            ));
        }
        let outcome = send(
            service,
            tenant,
            &invite,
            &invitation,
            &survey.display_name,
            delivery,
            template,
        )
        .await?;
        invitation.state = outcome.state as i32;
        invitation.state_reason = outcome.reason.to_owned();
        invitation.message = outcome.message;
        if outcome.state != InvitationState::Sent {
            // The customer was not contacted: the fatigue rule's slot goes back.
            invitations::restore_contact_slot(transaction, tenant, &contact, now, previous).await?;
        }
    }
    let stored = StoredInvitation {
        id,
        survey_id: invite.survey_id.clone(),
        customer: invite.customer.clone(),
        invitation: invitation.clone(),
        expire_us: now.saturating_add(ttl),
    };
    invitations::insert(transaction, tenant, &stored).await?;
    Ok(invitation)
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
    invite: &Invite,
    invitation: &Invitation,
    survey_name: &str,
    delivery: &InvitationDelivery,
    template: String,
) -> Result<Outcome, Error> {
    let Some(channel) = service.peers.channel(DISTRIBUTION, Some(tenant))? else {
        return Err(Error::FailedPrecondition {
            reason: "DISTRIBUTION_NOT_DEPLOYED",
            message: "delivery needs the distribution service, which is not deployed; \
                      leave delivery unset and present the survey yourself"
                .to_owned(),
        });
    };
    let Some(recipient) = recipient_of(invite) else {
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
        template,
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
        request_id: format!("feedback:{}", invite.request_id),
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
fn recipient_of(invite: &Invite) -> Option<recipient::Recipient> {
    if let Some(profile) = &invite.profile {
        return Some(recipient::Recipient::Profile(profile.clone()));
    }
    let key = invite.customer.as_str();
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
