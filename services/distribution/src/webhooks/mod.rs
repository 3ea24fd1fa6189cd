//! Webhooks: outside systems (typically a CRM) subscribe to Throughline event types and
//! receive each event as signed CloudEvents JSON over HTTP POST.
//!
//! - Fan-out: [`webhook_subscriptions`] consumes every service's event log; each event queues
//!   one delivery per enabled subscription of its tenant that wants its type, in the
//!   consumer's transaction, once per (subscription, event).
//! - `worker`: claims due deliveries with leases, signs and POSTs them, retries with backoff,
//!   and disables a subscription that keeps failing.
//! - `runtime::outbound::guard`: the SSRF guard on subscription URLs, at save time and at each
//!   delivery.

pub(crate) mod cloudevent;
pub(crate) mod store;
pub(crate) mod worker;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use prost::Message as _;
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use serde::{Deserialize, Serialize};
use throughline_proto::distribution::v1::WebhookDeliveryState;
use throughline_proto::event::v1::Event;
use throughline_runtime::Error;
use throughline_runtime::events::{Consumer, Handler, Subscription};
use throughline_runtime::outbound::guard::Policy;
use throughline_runtime::time::now_us;

/// The consumer that fans events out to webhook subscriptions.
pub const WEBHOOKS_CONSUMER: &str = "webhooks";

/// The services whose events can be subscribed to.
pub const EVENT_SOURCES: [&str; 5] = [
    "profile",
    "interaction",
    "feedback",
    "orchestration",
    "distribution",
];

/// `[distribution.webhooks]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookOptions {
    /// Whether this process runs the webhook worker (API-only replicas may leave it to others).
    pub enabled: bool,
    /// Allows `http` URLs (tests, development); production endpoints must use https.
    pub allow_http: bool,
    /// Allows URLs that reach loopback, private, link-local and other internal addresses.
    pub allow_private_addresses: bool,
    /// How long one POST may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts before a delivery is FAILED.
    pub max_attempts: u32,
    /// FAILED deliveries in a row that disable a subscription.
    pub disable_after: u32,
    /// The first retry's delay; doubled per attempt, with jitter, up to `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// How long a claimed delivery is held before another worker may take it; longer than
    /// `timeout`.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often the queue is read.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Deliveries claimed per query.
    pub batch_size: usize,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_http: false,
            allow_private_addresses: false,
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            disable_after: 20,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            batch_size: 32,
            concurrency: 16,
        }
    }
}

impl WebhookOptions {
    pub(crate) fn problems(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_attempts == 0
            || self.disable_after == 0
            || self.batch_size == 0
            || self.concurrency == 0
        {
            problems.push(format!(
                "{prefix}.webhooks: max_attempts, disable_after, batch_size and concurrency \
                 must be at least 1"
            ));
        }
        if self.timeout.is_zero() || self.poll_interval.is_zero() {
            problems.push(format!(
                "{prefix}.webhooks: timeout and poll_interval must be more than zero"
            ));
        }
        if self.lease <= self.timeout {
            problems.push(format!(
                "{prefix}.webhooks.lease: must be longer than the timeout, or a slow endpoint \
                 gets the same delivery twice"
            ));
        }
        problems
    }

    pub(crate) fn policy(&self) -> Policy {
        Policy {
            allow_http: self.allow_http,
            allow_private_addresses: self.allow_private_addresses,
        }
    }
}

/// Whether `value` is an event type: lower-case dotted words, `service.thing` or
/// `service.thing.more` (letters, digits and underscores, each word starting with a letter).
pub(crate) fn is_event_type(value: &str) -> bool {
    let words: Vec<&str> = value.split('.').collect();
    value.len() <= 128
        && (2..=4).contains(&words.len())
        && words.iter().all(|word| {
            word.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// The subscriptions that fan every service's events out to webhook subscriptions, one per
/// source; register them with the process's server. Sources not deployed are skipped by the
/// server.
pub fn webhook_subscriptions(db: DatabaseConnection) -> Vec<Subscription> {
    EVENT_SOURCES
        .iter()
        .map(|source| Subscription {
            consumer: Consumer::new(crate::NAME, WEBHOOKS_CONSUMER, db.clone()),
            source: (*source).to_owned(),
            // All types: which ones are wanted changes with the subscriptions.
            event_types: Vec::new(),
            handler: fan_out_handler(),
        })
        .collect()
}

/// Queues the event for every enabled subscription of its tenant that wants its type.
pub fn fan_out_handler() -> Handler {
    Arc::new(|transaction, event| fan_out(transaction, event).boxed())
}

async fn fan_out(transaction: &DatabaseTransaction, event: &Event) -> Result<(), Error> {
    if event.tenant.is_empty() {
        return Ok(());
    }
    let subscriptions = store::enabled(transaction, &event.tenant).await?;
    let wanted: Vec<&String> = subscriptions
        .iter()
        .filter(|(_, types)| types.contains(&event.r#type))
        .map(|(id, _)| id)
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let encoded = event.encode_to_vec();
    let now = now_us();
    for subscription in wanted {
        let row = store::DeliveryRow {
            tenant: event.tenant.clone(),
            id: uuid::Uuid::now_v7().simple().to_string(),
            subscription: subscription.clone(),
            event_id: event.id.clone(),
            event_type: event.r#type.clone(),
            event: encoded.clone(),
            state: WebhookDeliveryState::Pending as i32,
            attempt_count: 0,
            last_status_code: 0,
            last_error: String::new(),
            next_attempt_us: now,
            lease_until_us: 0,
            create_us: now,
            complete_us: None,
        };
        store::insert_delivery(transaction, &row).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_lower_case_dotted_words() {
        for good in [
            "message.suppressed",
            "profile.created",
            "feedback.detractor",
            "journey.step.completed",
            "inbound.received",
        ] {
            assert!(is_event_type(good), "{good}");
        }
        for bad in [
            "",
            "message",
            "Message.sent",
            "message.",
            ".sent",
            "message..sent",
            "message.sent*",
            "message.*",
            "1message.sent",
            "message sent.x",
        ] {
            assert!(!is_event_type(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(
            WebhookOptions::default()
                .problems("distribution")
                .is_empty()
        );
    }
}
