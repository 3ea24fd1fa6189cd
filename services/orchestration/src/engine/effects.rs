//! The side effects of nodes, through the other services' APIs. Each call carries the step's
//! idempotency key, so a retry after a crash between the call and its bookkeeping finds the
//! first call's result instead of acting twice.

use std::collections::BTreeMap;

use prost_types::FieldMask;
use throughline_proto::common::v1::attribute_value::Kind as AttributeKind;
use throughline_proto::common::v1::channel_selector::Selector;
use throughline_proto::common::v1::{AttributeList, AttributeValue, Channel};
use throughline_proto::distribution::v1::distribution_service_client::DistributionServiceClient;
use throughline_proto::distribution::v1::{MessageStatus, Recipient, SendRequest, recipient};
use throughline_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use throughline_proto::feedback::v1::{
    FeedbackContext, InvitationDelivery, InvitationState, RequestFeedbackRequest,
};
use throughline_proto::orchestration::v1::{RequestFeedbackNode, SendNode};
use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use throughline_proto::profile::v1::{Profile, UpdateProfileRequest};
use throughline_runtime::Error;
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::peers::{self, PeerChannel};

use crate::Service;
use crate::store::instances::Instance;

const DISTRIBUTION: &str = "distribution";
const FEEDBACK: &str = "feedback";
const PROFILE: &str = "profile";

/// What a side effect came to.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Done: the step's outcome (`sent`, `held:<reason>`, …), the resource it made, whether it
    /// counts as a message for the frequency cap, and a result to keep.
    Done {
        outcome: String,
        effect: String,
        contacted: bool,
        result: Option<serde_json::Value>,
    },
    /// Worth another attempt later (the other service unavailable, a transient HTTP error).
    Retry(String),
    /// Will not succeed: the step fails with this outcome detail.
    Failed(String),
}

impl Effect {
    fn done(outcome: impl Into<String>, effect: impl Into<String>, contacted: bool) -> Self {
        Self::Done {
            outcome: outcome.into(),
            effect: effect.into(),
            contacted,
            result: None,
        }
    }
}

/// A channel to `service` for the instance's tenant; `None` when it is not deployed.
fn channel(service: &Service, name: &str, tenant: &str) -> Result<Option<PeerChannel>, Effect> {
    service
        .peers
        .channel(name, Some(tenant))
        .map_err(|error| Effect::Failed(error.to_string()))
}

/// Maps a peer call's failure: UNAVAILABLE is retried, a refusal fails the step.
fn failure(error: Error) -> Effect {
    match error {
        Error::Unavailable(detail) => Effect::Retry(detail),
        Error::FailedPrecondition { reason, .. } => Effect::Failed(reason.to_lowercase()),
        other => Effect::Failed(other.to_string()),
    }
}

/// The recipient of a message: the profile, or the email or phone the customer was named by.
fn recipient(instance: &Instance) -> Option<recipient::Recipient> {
    if !instance.profile.is_empty() {
        return Some(recipient::Recipient::Profile(instance.profile.clone()));
    }
    use throughline_proto::distribution::v1::{Address, address};
    let key = instance.customer_ref.as_str();
    if let Some(email) = key.strip_prefix("email:") {
        return Some(recipient::Recipient::Address(Address {
            address: Some(address::Address::Email(email.to_owned())),
        }));
    }
    key.strip_prefix("phone:").map(|phone| {
        recipient::Recipient::Address(Address {
            address: Some(address::Address::Phone(phone.to_owned())),
        })
    })
}

/// Sends the node's message through the distribution service.
pub(crate) async fn send(
    service: &Service,
    instance: &Instance,
    node: &SendNode,
    variables: prost_types::Struct,
    key: &str,
) -> Effect {
    let channel = match channel(service, DISTRIBUTION, &instance.tenant) {
        Ok(Some(channel)) => channel,
        Ok(None) => return Effect::done("skipped:no_distribution", "", false),
        Err(effect) => return effect,
    };
    let Some(recipient) = recipient(instance) else {
        return Effect::done("skipped:no_address", "", false);
    };
    let request = SendRequest {
        recipient: Some(Recipient {
            recipient: Some(recipient),
            ..Recipient::default()
        }),
        channel: node.channel.clone(),
        purpose: node.purpose,
        priority: node.priority,
        template: node.template.clone(),
        variables: Some(variables),
        origin: instance.name(),
        request_id: key.to_owned(),
        ..SendRequest::default()
    };
    let mut client = DistributionServiceClient::new(channel);
    let message = match peers::call(DISTRIBUTION, client.send(request)).await {
        Ok(Some(response)) => response.message.unwrap_or_default(),
        Ok(None) => return Effect::Failed("template_not_found".into()),
        Err(error) => return failure(error),
    };
    let status = MessageStatus::try_from(message.status).unwrap_or(MessageStatus::Unspecified);
    match status {
        MessageStatus::Suppressed | MessageStatus::Cancelled | MessageStatus::Failed => {
            // Held back centrally (consent, suppression list, contact budget): not an error of
            // the journey, which goes on.
            let reason = message
                .status_history
                .last()
                .map(|change| reason_name(change.reason))
                .unwrap_or_default();
            Effect::done(format!("held:{reason}"), message.name, false)
        }
        _ => Effect::done("sent", message.name, true),
    }
}

fn reason_name(reason: i32) -> String {
    throughline_proto::distribution::v1::StatusReason::try_from(reason)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("STATUS_REASON_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

/// Invites the customer to a survey through the feedback service.
pub(crate) async fn request_feedback(
    service: &Service,
    instance: &Instance,
    node_id: &str,
    node: &RequestFeedbackNode,
    key: &str,
) -> Effect {
    let channel = match channel(service, FEEDBACK, &instance.tenant) {
        Ok(Some(channel)) => channel,
        Ok(None) => return Effect::done("skipped:no_feedback", "", false),
        Err(effect) => return effect,
    };
    let customer = if instance.profile.is_empty() {
        CustomerKey::from_stored(instance.customer_ref.clone()).to_ref()
    } else {
        CustomerKey::from_stored(instance.profile.clone()).to_ref()
    };
    let context_channel = match node.channel.as_ref().and_then(|c| c.selector.as_ref()) {
        Some(Selector::Channel(channel)) => *channel,
        _ => Channel::Unspecified as i32,
    };
    let request = RequestFeedbackRequest {
        survey: node.survey.clone(),
        customer: Some(customer),
        context: Some(FeedbackContext {
            journey: format!("journeys/{}", instance.journey),
            journey_instance: instance.name(),
            journey_node: node_id.to_owned(),
            channel: context_channel,
            ..FeedbackContext::default()
        }),
        delivery: Some(InvitationDelivery {
            channel: node.channel.clone(),
            template: node.template.clone(),
        }),
        request_id: key.to_owned(),
        ..RequestFeedbackRequest::default()
    };
    let mut client = FeedbackServiceClient::new(channel);
    let invitation = match peers::call(FEEDBACK, client.request_feedback(request)).await {
        Ok(Some(response)) => response.invitation.unwrap_or_default(),
        Ok(None) => return Effect::Failed("survey_not_found".into()),
        Err(error) => return failure(error),
    };
    let state = InvitationState::try_from(invitation.state).unwrap_or_default();
    let outcome = match state {
        InvitationState::Sent | InvitationState::Pending => "sent".to_owned(),
        other => format!(
            "held:{}",
            other
                .as_str_name()
                .trim_start_matches("INVITATION_STATE_")
                .to_lowercase()
        ),
    };
    let contacted = outcome == "sent";
    Effect::done(outcome, invitation.name, contacted)
}

/// Writes profile attributes through the profile service.
pub(crate) async fn update_profile(
    service: &Service,
    instance: &Instance,
    attributes: BTreeMap<String, serde_json::Value>,
) -> Effect {
    if instance.profile.is_empty() {
        return Effect::done("skipped:no_profile", "", false);
    }
    let channel = match channel(service, PROFILE, &instance.tenant) {
        Ok(Some(channel)) => channel,
        Ok(None) => return Effect::done("skipped:no_profile_service", "", false),
        Err(effect) => return effect,
    };
    let paths = attributes
        .keys()
        .map(|key| format!("attributes.{key}"))
        .collect();
    let attributes: BTreeMap<String, AttributeValue> = attributes
        .into_iter()
        .map(|(key, value)| (key, attribute(&value)))
        .collect();
    let request = UpdateProfileRequest {
        profile: Some(Profile {
            name: instance.profile.clone(),
            attributes,
            ..Profile::default()
        }),
        update_mask: Some(FieldMask { paths }),
    };
    let mut client = ProfileServiceClient::new(channel);
    // Setting the same values twice leaves the profile as once: no key is needed.
    match peers::call(PROFILE, client.update_profile(request)).await {
        Ok(Some(_)) => Effect::done("updated", instance.profile.clone(), false),
        Ok(None) => Effect::done("skipped:no_profile", "", false),
        Err(error) => failure(error),
    }
}

/// A JSON value as a profile attribute: strings, numbers, bools and lists of them; objects
/// are kept as their JSON text.
fn attribute(value: &serde_json::Value) -> AttributeValue {
    let kind = match value {
        serde_json::Value::String(text) => AttributeKind::StringValue(text.clone()),
        serde_json::Value::Number(number) => {
            AttributeKind::NumberValue(number.as_f64().unwrap_or_default())
        }
        serde_json::Value::Bool(flag) => AttributeKind::BoolValue(*flag),
        serde_json::Value::Array(items) => AttributeKind::ListValue(AttributeList {
            values: items.iter().map(attribute).collect(),
        }),
        serde_json::Value::Null => AttributeKind::StringValue(String::new()),
        object => AttributeKind::StringValue(object.to_string()),
    };
    AttributeValue { kind: Some(kind) }
}

/// The customer's profile, when the profile service is deployed and knows it.
pub(crate) async fn profile(
    service: &Service,
    instance: &Instance,
) -> Result<Option<Profile>, Error> {
    if instance.profile.is_empty() {
        return Ok(None);
    }
    let Some(channel) = service.peers.channel(PROFILE, Some(&instance.tenant))? else {
        return Ok(None);
    };
    let mut client = ProfileServiceClient::new(channel);
    let request = throughline_proto::profile::v1::GetProfileRequest {
        name: instance.profile.clone(),
    };
    Ok(peers::call(PROFILE, client.get_profile(request))
        .await?
        .and_then(|response| response.profile))
}

/// The customer's interactions since `since_us`, newest first, as suppression rules see them:
/// `type`, `channel`, `occur_time` and `attributes`. Empty where the interaction service is
/// not deployed.
pub(crate) async fn recent_interactions(
    service: &Service,
    instance: &Instance,
    since_us: i64,
    now_us: i64,
) -> Result<Vec<(i64, serde_json::Value)>, Error> {
    use throughline_proto::interaction::v1::ListInteractionsRequest;
    use throughline_proto::interaction::v1::interaction_service_client::InteractionServiceClient;
    use throughline_runtime::time::{timestamp, timestamp_us};
    const INTERACTION: &str = "interaction";
    let Some(channel) = service.peers.channel(INTERACTION, Some(&instance.tenant))? else {
        return Ok(Vec::new());
    };
    let customer = if instance.profile.is_empty() {
        CustomerKey::from_stored(instance.customer_ref.clone()).to_ref()
    } else {
        CustomerKey::from_stored(instance.profile.clone()).to_ref()
    };
    let request = ListInteractionsRequest {
        customer: Some(customer),
        occur_time_range: Some(throughline_proto::google::r#type::Interval {
            start_time: Some(timestamp(since_us)),
            end_time: Some(timestamp(now_us.saturating_add(1))),
        }),
        page_size: 200,
        ..ListInteractionsRequest::default()
    };
    let mut client = InteractionServiceClient::new(channel);
    let interactions = peers::call(INTERACTION, client.list_interactions(request))
        .await?
        .map(|response| response.interactions)
        .unwrap_or_default();
    Ok(interactions
        .iter()
        .map(|interaction| {
            let channel = Channel::try_from(interaction.channel).unwrap_or_default();
            let occur_us = interaction
                .occur_time
                .as_ref()
                .and_then(timestamp_us)
                .unwrap_or_default();
            let value = serde_json::json!({
                "type": interaction.r#type,
                "channel": channel.as_str_name(),
                "occur_time": crate::engine::rfc3339(occur_us),
                "attributes": interaction
                    .attributes
                    .as_ref()
                    .map(throughline_runtime::json::struct_to_json)
                    .unwrap_or_default(),
            });
            (occur_us, value)
        })
        .collect())
}
