//! Message RPCs: Send, SendMulti, GetMessage, ListMessages, CancelMessage.

use std::collections::HashSet;

use throughline_proto::common::v1::{Channel, Priority, Purpose, channel_selector};
use throughline_proto::distribution::v1::*;
use throughline_runtime::db::write_transaction;
use throughline_runtime::events::Outbox;
use throughline_runtime::json::struct_to_json;
use throughline_runtime::time::{PageToken, now_us, timestamp_us};
use throughline_runtime::{Error, FieldViolation};

use super::{Api, page_size, resource_id};
use crate::policy::may_bypass_quiet_hours;
use crate::provider::OUTBOUND_CHANNELS;
use crate::recipient::{self, normalise_address};
use crate::send::{Selector, SendSpec, status_event};
use crate::store::budget;
use crate::store::messages::{self, Change, Filter, Update};

/// How far ahead a send may be scheduled.
const MAX_NOT_BEFORE_US: i64 = 366 * 24 * 3600 * 1_000_000;
/// Channels one SendMulti may reach.
const MAX_TARGETS: usize = 5;

fn outbound_channel(value: i32, field: &str, violations: &mut Vec<FieldViolation>) -> Channel {
    match Channel::try_from(value) {
        Ok(channel) if OUTBOUND_CHANNELS.contains(&channel) => channel,
        _ => {
            violations.push(FieldViolation::new(
                field,
                format!("{value} is not a channel messages can be sent on"),
            ));
            Channel::Unspecified
        }
    }
}

/// The fields Send and SendMulti share.
struct Common<'a> {
    recipient: Option<&'a Recipient>,
    purpose: i32,
    priority: i32,
    variables: Option<&'a prost_types::Struct>,
    not_before_time: Option<&'a prost_types::Timestamp>,
    bypass_quiet_hours: bool,
    origin: &'a str,
    request_id: &'a str,
}

/// Checks what Send and SendMulti share; the spec's selector and template are the caller's.
fn common_spec(common: &Common<'_>, violations: &mut Vec<FieldViolation>) -> SendSpec {
    recipient::validate(common.recipient, violations);
    let purpose = match Purpose::try_from(common.purpose) {
        Ok(purpose) if purpose != Purpose::Unspecified => purpose,
        _ => {
            violations.push(FieldViolation::new("purpose", "is required"));
            Purpose::Unspecified
        }
    };
    let priority = match Priority::try_from(common.priority) {
        Ok(Priority::Unspecified) => Priority::Normal,
        Ok(priority) => priority,
        Err(_) => {
            violations.push(FieldViolation::new("priority", "unknown priority"));
            Priority::Normal
        }
    };
    let now = now_us();
    let not_before_us = match common.not_before_time {
        None => None,
        Some(time) => match timestamp_us(time) {
            Some(us) if us <= now + MAX_NOT_BEFORE_US => Some(us).filter(|us| *us > now),
            Some(_) => {
                violations.push(FieldViolation::new(
                    "not_before_time",
                    "must be within a year from now",
                ));
                None
            }
            None => {
                violations.push(FieldViolation::new("not_before_time", "not a valid time"));
                None
            }
        },
    };
    if common.origin.len() > 256 {
        violations.push(FieldViolation::new("origin", "at most 256 characters"));
    }
    if common.request_id.is_empty() || common.request_id.len() > 128 {
        violations.push(FieldViolation::new(
            "request_id",
            "is required: 1 to 128 characters (sends must never repeat)",
        ));
    }
    let variables = match common.variables.map(struct_to_json) {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    for reserved in ["profile", "message"] {
        if variables.contains_key(reserved) {
            violations.push(FieldViolation::new(
                format!("variables.{reserved}"),
                "is set by the service",
            ));
        }
    }
    SendSpec {
        recipient: common.recipient.cloned().unwrap_or_default(),
        selector: Selector::Preferred(Vec::new()),
        purpose,
        priority,
        template_id: String::new(),
        variables,
        not_before_us,
        bypass_quiet_hours: common.bypass_quiet_hours,
        origin: common.origin.to_owned(),
        request_id: common.request_id.to_owned(),
        send_group: String::new(),
    }
}

/// `bypass_quiet_hours` is only for the purposes the contact policy lets bypass them.
fn check_bypass(policy: &ContactPolicy, spec: &SendSpec) -> Result<(), Error> {
    if spec.bypass_quiet_hours && !may_bypass_quiet_hours(policy, spec.purpose) {
        return Err(Error::invalid(
            "bypass_quiet_hours",
            "the contact policy does not let this purpose bypass quiet hours",
        ));
    }
    Ok(())
}

fn template_id(name: &str, field: &str, violations: &mut Vec<FieldViolation>) -> String {
    match resource_id(name, "templates", field) {
        Ok(id) => id.to_owned(),
        Err(_) => {
            violations.push(FieldViolation::new(field, "must be templates/{template}"));
            String::new()
        }
    }
}

/// An explicit address must be able to receive the given channel.
fn check_address_fits(
    recipient: &Recipient,
    channel: Channel,
    violations: &mut Vec<FieldViolation>,
) {
    let Some(throughline_proto::distribution::v1::recipient::Recipient::Address(address)) =
        &recipient.recipient
    else {
        return;
    };
    if channel == Channel::Unspecified {
        // The channel itself is invalid, and reported as such.
        return;
    }
    let Ok((kind, _)) = normalise_address(address, "recipient.address") else {
        return;
    };
    let fits = match channel {
        Channel::Email => kind == "email",
        Channel::Sms | Channel::Whatsapp | Channel::Phone => kind == "phone",
        Channel::Push => kind == "device",
        _ => false,
    };
    if !fits {
        violations.push(FieldViolation::new(
            "recipient.address",
            format!("cannot receive {}", channel.as_str_name()),
        ));
    }
}

impl Api {
    pub(super) async fn send(
        &self,
        tenant: &str,
        request: SendRequest,
    ) -> Result<SendResponse, Error> {
        let mut violations = Vec::new();
        let mut spec = common_spec(
            &Common {
                recipient: request.recipient.as_ref(),
                purpose: request.purpose,
                priority: request.priority,
                variables: request.variables.as_ref(),
                not_before_time: request.not_before_time.as_ref(),
                bypass_quiet_hours: request.bypass_quiet_hours,
                origin: &request.origin,
                request_id: &request.request_id,
            },
            &mut violations,
        );
        spec.template_id = template_id(&request.template, "template", &mut violations);
        spec.selector = match request.channel.and_then(|c| c.selector) {
            Some(channel_selector::Selector::Channel(value)) => {
                let channel = outbound_channel(value, "channel.channel", &mut violations);
                check_address_fits(&spec.recipient, channel, &mut violations);
                Selector::Given(channel)
            }
            Some(channel_selector::Selector::Preferred(preferred)) => {
                let candidates = preferred
                    .candidates
                    .iter()
                    .enumerate()
                    .map(|(index, value)| {
                        outbound_channel(
                            *value,
                            &format!("channel.preferred.candidates[{index}]"),
                            &mut violations,
                        )
                    })
                    .collect();
                Selector::Preferred(candidates)
            }
            None => {
                violations.push(FieldViolation::new("channel", "is required"));
                Selector::Preferred(Vec::new())
            }
        };
        Error::unless_valid(violations)?;
        let service = &self.service;
        // Repeats are resolved where messages are written; only a send that can no longer be
        // made looks for the first message of its request id.
        let prepared = async {
            let policy = service.policy(tenant).await?;
            check_bypass(&policy, &spec)?;
            let audience = recipient::resolve(&service.peers, tenant, &spec.recipient).await?;
            Ok::<_, Error>((policy, audience))
        };
        let message = match prepared.await {
            Ok((policy, audience)) => service.send(tenant, &spec, &audience, &policy).await?,
            Err(error) => {
                service
                    .first_message_or(tenant, &spec.request_id, error)
                    .await?
            }
        };
        Ok(SendResponse {
            message: Some(message),
        })
    }

    pub(super) async fn send_multi(
        &self,
        tenant: &str,
        request: SendMultiRequest,
    ) -> Result<SendMultiResponse, Error> {
        let mut violations = Vec::new();
        let base = common_spec(
            &Common {
                recipient: request.recipient.as_ref(),
                purpose: request.purpose,
                priority: request.priority,
                variables: request.variables.as_ref(),
                not_before_time: request.not_before_time.as_ref(),
                bypass_quiet_hours: request.bypass_quiet_hours,
                origin: &request.origin,
                request_id: &request.request_id,
            },
            &mut violations,
        );
        if request.targets.is_empty() || request.targets.len() > MAX_TARGETS {
            violations.push(FieldViolation::new(
                "targets",
                format!("1 to {MAX_TARGETS} targets"),
            ));
        }
        let mut seen = HashSet::new();
        let mut specs = Vec::with_capacity(request.targets.len());
        for (index, target) in request.targets.iter().enumerate() {
            let channel = outbound_channel(
                target.channel,
                &format!("targets[{index}].channel"),
                &mut violations,
            );
            if !seen.insert(channel) {
                violations.push(FieldViolation::new(
                    format!("targets[{index}].channel"),
                    "each target needs a different channel",
                ));
            }
            check_address_fits(&base.recipient, channel, &mut violations);
            let (name, field) = if target.template.is_empty() {
                (request.template.as_str(), "template".to_owned())
            } else {
                (
                    target.template.as_str(),
                    format!("targets[{index}].template"),
                )
            };
            let mut spec = base.clone();
            spec.template_id = template_id(name, &field, &mut violations);
            spec.selector = Selector::Given(channel);
            // Each message's key derives from the call's and its channel, so a retry of the
            // call finds every message it made.
            spec.request_id = format!("{}/{}", base.request_id, channel.as_str_name());
            spec.send_group = base.request_id.clone();
            specs.push(spec);
        }
        Error::unless_valid(violations)?;
        let service = &self.service;
        let policy = service.policy(tenant).await?;
        check_bypass(&policy, &base)?;
        let audience = recipient::resolve(&service.peers, tenant, &base.recipient).await?;
        let mut sent = Vec::with_capacity(specs.len());
        for spec in &specs {
            sent.push(service.send(tenant, spec, &audience, &policy).await?);
        }
        Ok(SendMultiResponse { messages: sent })
    }

    async fn with_history(
        &self,
        tenant: &str,
        row: messages::MessageRow,
    ) -> Result<Message, Error> {
        self.service.with_history(tenant, row).await
    }

    pub(super) async fn get_message(
        &self,
        tenant: &str,
        request: GetMessageRequest,
    ) -> Result<GetMessageResponse, Error> {
        let id = resource_id(&request.name, "messages", "name")?;
        let row = messages::get(self.service.db(), tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(request.name.clone()))?;
        Ok(GetMessageResponse {
            message: Some(self.with_history(tenant, row).await?),
        })
    }

    pub(super) async fn list_messages(
        &self,
        tenant: &str,
        request: ListMessagesRequest,
    ) -> Result<ListMessagesResponse, Error> {
        let mut violations = Vec::new();
        let mut filter = Filter::default();
        if !request.profile.is_empty() {
            if resource_id(&request.profile, "profiles", "profile").is_err() {
                violations.push(FieldViolation::new("profile", "must be profiles/{profile}"));
            }
            filter.profile = Some(request.profile.clone());
        }
        for (index, status) in request.statuses.iter().enumerate() {
            match MessageStatus::try_from(*status) {
                Ok(status) if status != MessageStatus::Unspecified => {
                    filter.statuses.push(status as i32);
                }
                _ => violations.push(FieldViolation::new(
                    format!("statuses[{index}]"),
                    "unknown status",
                )),
            }
        }
        for (index, channel) in request.channels.iter().enumerate() {
            let channel =
                outbound_channel(*channel, &format!("channels[{index}]"), &mut violations);
            filter.channels.push(channel as i32);
        }
        if !request.origin.is_empty() {
            filter.origin = Some(request.origin.clone());
        }
        if !request.template.is_empty() {
            template_id(&request.template, "template", &mut violations);
            filter.template = Some(request.template.clone());
        }
        if let Some(range) = &request.create_time_range {
            filter.from_us = range.start_time.as_ref().and_then(timestamp_us);
            filter.until_us = range.end_time.as_ref().and_then(timestamp_us);
        }
        let size = match page_size(request.page_size) {
            Ok(size) => size,
            Err(Error::InvalidArgument(found)) => {
                violations.extend(found);
                0
            }
            Err(error) => return Err(error),
        };
        Error::unless_valid(violations)?;
        let filters = format!("{filter:?}");
        let after = PageToken::decode(&request.page_token, &filters)
            .map_err(|message| Error::invalid("page_token", message))?;
        let db = self.service.db();
        let (rows, next) = messages::list(db, tenant, &filter, after.as_ref(), size).await?;
        Ok(ListMessagesResponse {
            messages: messages::with_histories(db, tenant, &rows).await?,
            next_page_token: next.map(|token| token.encode(&filters)).unwrap_or_default(),
        })
    }

    pub(super) async fn cancel_message(
        &self,
        tenant: &str,
        request: CancelMessageRequest,
    ) -> Result<CancelMessageResponse, Error> {
        let id = resource_id(&request.name, "messages", "name")?;
        let transaction = write_transaction(self.service.db()).await?;
        let row = messages::get(&transaction, tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(request.name.clone()))?;
        let status = MessageStatus::try_from(row.status).unwrap_or(MessageStatus::Unspecified);
        match status {
            MessageStatus::Cancelled => {}
            MessageStatus::Queued | MessageStatus::Deferred => {
                let now = now_us();
                if row.lease_until_us > now {
                    return Err(Error::Aborted(
                        "the message is being handed to a provider; retry shortly".to_owned(),
                    ));
                }
                let update = Update {
                    status: MessageStatus::Cancelled as i32,
                    provider: row.provider.clone(),
                    provider_message_id: String::new(),
                    attempt_count: row.attempt_count,
                    next_attempt_us: row.next_attempt_us,
                    changes: vec![Change {
                        status: MessageStatus::Cancelled as i32,
                        reason: StatusReason::Cancelled as i32,
                        time_us: now,
                        ..Change::default()
                    }],
                };
                if messages::apply(&transaction, &[(&row, update)]).await? != [true] {
                    return Err(Error::Aborted(
                        "the message changed meanwhile; retry".to_owned(),
                    ));
                }
                // It never reached the customer: the contact goes back to their budget.
                budget::give_back_encoded(&transaction, tenant, &row.budget_keys).await?;
                Outbox::new(crate::NAME)
                    .append(
                        &transaction,
                        &status_event(&row, "message.cancelled", StatusReason::Cancelled),
                    )
                    .await?;
            }
            _ => {
                return Err(Error::FailedPrecondition {
                    reason: "MESSAGE_ALREADY_SENT",
                    message: format!(
                        "{} is {} and can no longer be cancelled",
                        request.name,
                        status.as_str_name()
                    ),
                });
            }
        }
        transaction.commit().await?;
        let row = messages::get(self.service.db(), tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(request.name.clone()))?;
        Ok(CancelMessageResponse {
            message: Some(self.with_history(tenant, row).await?),
        })
    }
}
