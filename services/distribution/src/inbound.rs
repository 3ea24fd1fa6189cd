//! What providers report back: delivery receipts move a message's status (a hard bounce or a
//! complaint suppresses the address), and customers' replies are recorded as inbound
//! interactions in the interaction service and emitted as `inbound.received`; a STOP reply
//! suppresses the address and revokes marketing and survey consent in the profile service.
//!
//! Each report is acted on once: its key (a receipt's message, status and link; a reply's
//! provider id) is stored with the first answer, which repeats get back marked `duplicate`.
//! Calls to other services come first and are idempotent themselves, so a report that fails
//! half-way can be retried by the provider.

use prost::Message as _;
use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};
use throughline_proto::common::v1::{
    Channel, ConsentStatus, CustomerRef, Direction, Identifier, IdentifierType, Purpose,
    customer_ref,
};
use throughline_proto::distribution::v1::{
    DeliveryReceipt, InboundReply, InboundResult, MessageStatus, StatusReason, SuppressionReason,
};
use throughline_proto::event::v1::InboundReceived;
use throughline_proto::interaction::v1::interaction_service_client::InteractionServiceClient;
use throughline_proto::interaction::v1::{Interaction, RecordInteractionRequest};
use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use throughline_proto::profile::v1::{CheckConsentRequest, Consent, SetConsentRequest};
use throughline_runtime::db::write_transaction;
use throughline_runtime::events::{Outbox, new_event};
use throughline_runtime::sql::Sql;
use throughline_runtime::time::{now_us, timestamp, timestamp_us};
use throughline_runtime::{Error, FieldViolation};

use crate::Service;
use crate::api::resource_id;
use crate::recipient::normalise_address;
use crate::send::status_event;
use crate::store::messages::{self, Change, MESSAGE_COLUMNS, MESSAGES, MessageRow, Update};
use crate::store::suppressions::{self, SuppressionRow};
use throughline_runtime::peers as peer;

/// Replies that unsubscribe (the keywords carriers require for SMS).
const STOP_KEYWORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const REPORTS: &str = "distribution_inbound";

/// The first word of a reply, trimmed of punctuation and upper-cased.
pub fn keyword(body: &str) -> String {
    body.split_whitespace()
        .next()
        .unwrap_or("")
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_uppercase()
}

/// A receipt status's place in a message's life: a later status never goes back to an earlier
/// one (an `opened` that arrives before `delivered` stays opened).
fn rank(status: i32) -> i32 {
    match MessageStatus::try_from(status) {
        Ok(MessageStatus::Bounced | MessageStatus::Complained | MessageStatus::Failed) => 100,
        _ => status,
    }
}

fn event_type(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Delivered => "message.delivered",
        MessageStatus::Opened => "message.opened",
        MessageStatus::Clicked => "message.clicked",
        MessageStatus::Bounced => "message.bounced",
        MessageStatus::Complained => "message.complained",
        _ => "message.failed",
    }
}

/// The address kind messages on `channel` use.
fn address_kind(channel: i32) -> &'static str {
    match Channel::try_from(channel) {
        Ok(Channel::Email) => "email",
        Ok(Channel::Push) => "device",
        _ => "phone",
    }
}

async fn stored_result<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    provider: &str,
    key: &str,
) -> Result<Option<InboundResult>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("SELECT result FROM {REPORTS} WHERE tenant = "))
        .bind(tenant)
        .push(" AND provider = ")
        .bind(provider)
        .push(" AND report_key = ")
        .bind(key);
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Ok(None);
    };
    let bytes: Vec<u8> = row.try_get_by_index(0)?;
    let mut result = InboundResult::decode(bytes.as_slice()).map_err(Error::internal)?;
    result.duplicate = true;
    Ok(Some(result))
}

/// Records a report's key with its answer; `false` if a concurrent repeat came first.
async fn remember<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    provider: &str,
    key: &str,
    result: &InboundResult,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {REPORTS} (tenant, provider, report_key, result, create_us) VALUES "
    ))
    .bind_list::<sea_orm::Value>([
        tenant.into(),
        provider.into(),
        key.into(),
        result.encode_to_vec().into(),
        now_us().into(),
    ])
    .push(" ON CONFLICT (tenant, provider, report_key) DO NOTHING");
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

impl Service {
    /// Applies a delivery receipt from `provider`.
    pub(crate) async fn record_receipt(
        &self,
        tenant: &str,
        provider: &str,
        receipt: &DeliveryReceipt,
    ) -> Result<InboundResult, Error> {
        let status = match MessageStatus::try_from(receipt.status) {
            Ok(
                status @ (MessageStatus::Delivered
                | MessageStatus::Opened
                | MessageStatus::Clicked
                | MessageStatus::Bounced
                | MessageStatus::Complained
                | MessageStatus::Failed),
            ) => status,
            _ => {
                return Err(Error::invalid(
                    "inbound.receipt.status",
                    "must be DELIVERED, OPENED, CLICKED, BOUNCED, COMPLAINED or FAILED",
                ));
            }
        };
        let db = self.db();
        let row = if receipt.message.is_empty() {
            if receipt.provider_message_id.is_empty() {
                return Err(Error::invalid(
                    "inbound.receipt",
                    "needs the message or the provider's id for it",
                ));
            }
            let mut sql = Sql::new(db.get_database_backend());
            sql.push(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM {MESSAGES} WHERE provider = "
            ))
            .bind(provider)
            .push(" AND provider_message_id <> '' AND provider_message_id = ")
            .bind(receipt.provider_message_id.as_str())
            .push(" AND tenant = ")
            .bind(tenant);
            db.query_one_raw(sql.statement())
                .await?
                .map(|row| MessageRow::read(&row))
                .transpose()?
        } else {
            let id = resource_id(&receipt.message, "messages", "inbound.receipt.message")?;
            messages::get(db, tenant, id).await?
        };
        let row = row.ok_or_else(|| {
            Error::NotFound(if receipt.message.is_empty() {
                format!(
                    "a message with provider id {:?}",
                    receipt.provider_message_id
                )
            } else {
                receipt.message.clone()
            })
        })?;
        let key = format!("receipt:{}:{}:{}", row.id, receipt.status, receipt.url);
        if let Some(result) = stored_result(db, tenant, provider, &key).await? {
            return Ok(result);
        }
        let result = InboundResult {
            message: row.name(),
            profile: row.profile.clone(),
            ..InboundResult::default()
        };
        let transaction = write_transaction(db).await?;
        if !remember(&transaction, tenant, provider, &key, &result).await? {
            drop(transaction);
            return stored_result(db, tenant, provider, &key)
                .await?
                .ok_or_else(|| Error::Aborted("a repeat of this report is being recorded".into()));
        }
        // Read again inside the transaction: the row may have moved on since.
        let row = messages::get(&transaction, tenant, &row.id)
            .await?
            .ok_or_else(|| Error::NotFound(result.message.clone()))?;
        if row.lease_until_us > now_us() {
            return Err(Error::Unavailable(
                "the message's hand-over to its provider is still being recorded; retry".into(),
            ));
        }
        let time_us = receipt
            .event_time
            .as_ref()
            .and_then(timestamp_us)
            .unwrap_or_else(now_us);
        let moves_on = rank(status as i32) > rank(row.status);
        let update = Update {
            status: if moves_on { status as i32 } else { row.status },
            provider: row.provider.clone(),
            provider_message_id: row.provider_message_id.clone(),
            attempt_count: row.attempt_count,
            next_attempt_us: row.next_attempt_us,
            changes: vec![Change {
                status: status as i32,
                reason: StatusReason::Unspecified as i32,
                time_us,
                provider: provider.to_owned(),
                attempt: row.attempt_count,
                detail: receipt.detail.chars().take(500).collect(),
            }],
        };
        messages::apply(&transaction, &[(&row, update)]).await?;
        let suppress = match status {
            MessageStatus::Bounced if receipt.permanent => Some(SuppressionReason::HardBounce),
            MessageStatus::Complained => Some(SuppressionReason::Complaint),
            _ => None,
        };
        if let (Some(reason), false) = (suppress, row.address.is_empty()) {
            suppressions::add(
                &transaction,
                tenant,
                &SuppressionRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    address: format!("{}:{}", address_kind(row.channel), row.address),
                    channel: row.channel,
                    purpose: 0,
                    reason: reason as i32,
                    source: format!("providers/{provider}"),
                    note: format!("{} on {}", status.as_str_name(), row.name()),
                    expire_us: None,
                    create_us: now_us(),
                },
            )
            .await?;
        }
        let mut event = status_event(&row, event_type(status), StatusReason::Unspecified);
        if status == MessageStatus::Clicked {
            // The payload is re-encoded with the link.
            let mut payload = throughline_proto::event::v1::MessageStatusChanged::decode(
                event
                    .data
                    .as_ref()
                    .map(|d| d.value.as_slice())
                    .unwrap_or_default(),
            )
            .map_err(Error::internal)?;
            payload.url = receipt.url.clone();
            if let Some(data) = event.data.as_mut() {
                data.value = payload.encode_to_vec();
            }
        }
        Outbox::new(crate::NAME)
            .append(&transaction, &event)
            .await?;
        transaction.commit().await?;
        Ok(result)
    }

    /// Records a customer's reply from `provider`.
    pub(crate) async fn record_reply(
        &self,
        tenant: &str,
        provider: &str,
        reply: &InboundReply,
    ) -> Result<InboundResult, Error> {
        let mut violations = Vec::new();
        let channel = match Channel::try_from(reply.channel) {
            Ok(channel @ (Channel::Sms | Channel::Whatsapp | Channel::Email | Channel::Chat)) => {
                channel
            }
            _ => {
                violations.push(FieldViolation::new(
                    "inbound.reply.channel",
                    "must be SMS, WHATSAPP, EMAIL or CHAT",
                ));
                Channel::Unspecified
            }
        };
        let sender = match &reply.sender {
            Some(address) => match normalise_address(address, "inbound.reply.sender") {
                Ok((kind, value)) => (kind, value),
                Err(Error::InvalidArgument(found)) => {
                    violations.extend(found);
                    ("", String::new())
                }
                Err(error) => return Err(error),
            },
            None => {
                violations.push(FieldViolation::new("inbound.reply.sender", "is required"));
                ("", String::new())
            }
        };
        if reply.provider_message_id.is_empty() || reply.provider_message_id.len() > 256 {
            violations.push(FieldViolation::new(
                "inbound.reply.provider_message_id",
                "is required: 1 to 256 characters",
            ));
        }
        if reply.body.len() > 64 * 1024 {
            violations.push(FieldViolation::new("inbound.reply.body", "at most 64 KiB"));
        }
        Error::unless_valid(violations)?;
        let db = self.db();
        let key = format!("reply:{}", reply.provider_message_id);
        if let Some(result) = stored_result(db, tenant, provider, &key).await? {
            return Ok(result);
        }
        let (kind, sender) = sender;
        let in_reply_to = if reply.in_reply_to.is_empty() {
            self.last_message_to(tenant, &sender).await?
        } else {
            resource_id(&reply.in_reply_to, "messages", "inbound.reply.in_reply_to")?;
            reply.in_reply_to.clone()
        };
        let keyword = keyword(&reply.body);
        let unsubscribe = STOP_KEYWORDS.contains(&keyword.as_str());
        let identifier = Identifier {
            r#type: if kind == "email" {
                IdentifierType::Email as i32
            } else {
                IdentifierType::Phone as i32
            },
            value: sender.clone(),
            source: String::new(),
        };
        let profile = self.profile_of(tenant, &identifier, channel).await?;
        if unsubscribe && !profile.is_empty() {
            self.revoke_consent(tenant, &profile, channel, &reply.provider_message_id)
                .await?;
        }
        let interaction = self
            .record_interaction(
                tenant,
                provider,
                reply,
                channel,
                &profile,
                identifier,
                &in_reply_to,
            )
            .await?;
        let result = InboundResult {
            message: in_reply_to.clone(),
            interaction: interaction.clone(),
            profile: profile.clone(),
            unsubscribed: unsubscribe,
            duplicate: false,
        };
        let transaction = write_transaction(db).await?;
        if !remember(&transaction, tenant, provider, &key, &result).await? {
            drop(transaction);
            return stored_result(db, tenant, provider, &key)
                .await?
                .ok_or_else(|| Error::Aborted("a repeat of this report is being recorded".into()));
        }
        if unsubscribe {
            suppressions::add(
                &transaction,
                tenant,
                &SuppressionRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    address: format!("{kind}:{sender}"),
                    channel: channel as i32,
                    purpose: 0,
                    reason: SuppressionReason::Unsubscribe as i32,
                    source: format!("providers/{provider}"),
                    note: format!("{keyword} reply"),
                    expire_us: None,
                    create_us: now_us(),
                },
            )
            .await?;
        }
        let payload = InboundReceived {
            profile: profile.clone(),
            channel: channel as i32,
            in_reply_to,
            interaction,
            body: reply.body.clone(),
            keyword,
            unsubscribe,
        };
        let event = new_event(
            crate::NAME,
            tenant,
            "inbound.received",
            &profile,
            "InboundReceived",
            &payload,
        );
        Outbox::new(crate::NAME)
            .append(&transaction, &event)
            .await?;
        transaction.commit().await?;
        Ok(result)
    }

    /// The last message sent to an address in the last 30 days, `messages/{id}`, or empty.
    async fn last_message_to(&self, tenant: &str, address: &str) -> Result<String, Error> {
        let db = self.db();
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!("SELECT id FROM {MESSAGES} WHERE tenant = "))
            .bind(tenant)
            .push(" AND address = ")
            .bind(address)
            .push(" AND create_us > ")
            .bind(now_us() - 30 * 24 * 3600 * 1_000_000)
            .push(" ORDER BY create_us DESC LIMIT 1");
        Ok(match db.query_one_raw(sql.statement()).await? {
            Some(row) => messages::message_name(&row.try_get_by_index::<String>(0)?),
            None => String::new(),
        })
    }

    /// The profile holding `identifier`, without creating one; empty when none does or the
    /// profile service is not deployed.
    async fn profile_of(
        &self,
        tenant: &str,
        identifier: &Identifier,
        channel: Channel,
    ) -> Result<String, Error> {
        let Some(channel_to_profiles) = self.peers.channel("profile", Some(tenant))? else {
            return Ok(String::new());
        };
        let request = CheckConsentRequest {
            customer: Some(CustomerRef {
                customer: Some(customer_ref::Customer::Identifier(identifier.clone())),
            }),
            channel: channel as i32,
            purpose: Purpose::Marketing as i32,
        };
        let mut client = ProfileServiceClient::new(channel_to_profiles);
        Ok(peer::call("profile", client.check_consent(request))
            .await?
            .map(|answer| answer.profile)
            .unwrap_or_default())
    }

    /// A STOP withdraws marketing and survey consent on the reply's channel.
    async fn revoke_consent(
        &self,
        tenant: &str,
        profile: &str,
        channel: Channel,
        provider_message_id: &str,
    ) -> Result<(), Error> {
        let Some(peer) = self.peers.channel("profile", Some(tenant))? else {
            return Ok(());
        };
        let mut client = ProfileServiceClient::new(peer);
        for purpose in [Purpose::Marketing, Purpose::Survey] {
            let request = SetConsentRequest {
                profile: profile.to_owned(),
                consent: Some(Consent {
                    channel: channel as i32,
                    purpose: purpose as i32,
                    status: ConsentStatus::Denied as i32,
                    source: format!("{}-stop", channel.as_str_name().to_lowercase()),
                    evidence: format!("reply {provider_message_id}"),
                    ..Consent::default()
                }),
                // The same reply revokes once, however often it is retried.
                request_id: short_key(&format!("stop:{provider_message_id}:{}", purpose as i32)),
            };
            if peer::call("profile", client.set_consent(request))
                .await?
                .is_none()
            {
                // The profile is gone (erased): nothing to revoke.
                return Ok(());
            }
        }
        Ok(())
    }

    /// Records the reply in the interaction service; `interactions/{id}`, or empty when it is
    /// not deployed.
    #[allow(clippy::too_many_arguments)]
    async fn record_interaction(
        &self,
        tenant: &str,
        provider: &str,
        reply: &InboundReply,
        channel: Channel,
        profile: &str,
        identifier: Identifier,
        in_reply_to: &str,
    ) -> Result<String, Error> {
        let Some(peer) = self.peers.channel("interaction", Some(tenant))? else {
            return Ok(String::new());
        };
        let customer = if profile.is_empty() {
            customer_ref::Customer::Identifier(identifier)
        } else {
            customer_ref::Customer::Profile(profile.to_owned())
        };
        let mut attributes = serde_json::Map::new();
        attributes.insert("body".into(), reply.body.clone().into());
        if !in_reply_to.is_empty() {
            attributes.insert("in_reply_to".into(), in_reply_to.into());
        }
        let request = RecordInteractionRequest {
            interaction_id: short_key(&format!("inbound:{provider}:{}", reply.provider_message_id)),
            interaction: Some(Interaction {
                customer: Some(CustomerRef {
                    customer: Some(customer),
                }),
                channel: channel as i32,
                direction: Direction::Inbound as i32,
                r#type: "message.received".into(),
                occur_time: Some(reply.receive_time.unwrap_or_else(|| timestamp(now_us()))),
                touchpoint: reply.recipient.chars().take(128).collect(),
                source: crate::NAME.into(),
                attributes: Some(throughline_runtime::json::json_to_struct(
                    serde_json::Value::Object(attributes),
                )),
                ..Interaction::default()
            }),
        };
        let mut client = InteractionServiceClient::new(peer);
        Ok(
            peer::call("interaction", client.record_interaction(request))
                .await?
                .and_then(|answer| answer.interaction)
                .map(|interaction| interaction.name)
                .unwrap_or_default(),
        )
    }
}

/// A stable id of at most 64 characters for a key of any length (provider ids are theirs).
fn short_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_the_first_word_trimmed_and_upper_cased() {
        assert_eq!(keyword("  stop. please"), "STOP");
        assert_eq!(keyword("9"), "9");
        assert_eq!(keyword(""), "");
        assert!(STOP_KEYWORDS.contains(&keyword("Unsubscribe!").as_str()));
    }

    #[test]
    fn later_statuses_win_and_failures_always_do() {
        assert!(rank(MessageStatus::Opened as i32) > rank(MessageStatus::Delivered as i32));
        assert!(rank(MessageStatus::Bounced as i32) > rank(MessageStatus::Clicked as i32));
    }
}
