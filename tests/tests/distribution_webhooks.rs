//! Webhooks through the real gRPC API on SQLite and PostgreSQL, delivered to a real HTTP
//! receiver on 127.0.0.1: signed CloudEvents JSON, only the subscribed types, retries with
//! backoff, disabling after repeated failure, the SSRF guard, tenant isolation, and a secret
//! that is never returned.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{Hmac, KeyInit, Mac};
use prost_types::FieldMask;
use sha2::Sha256;
use throughline_harness::{
    Authenticated, TestDatabase, TestSuite, on_both_databases, token, violations,
};
use throughline_proto::common::v1::{Channel, ChannelSelector, Purpose, channel_selector};
use throughline_proto::distribution::v1::distribution_service_client::DistributionServiceClient;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::*;
use tonic::Code;

type Client = DistributionServiceClient<Authenticated>;

const SCOPES: [&str; 3] = [
    "distribution:read",
    "distribution:write",
    "distribution:send",
];
const SECRET: &str = "whsec-0123456789abcdef0123456789abcdef";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A real HTTP receiver: `/fail…` always answers 500, `/flaky…` answers 500 twice then 200,
/// anything else 200.
#[derive(Debug, Clone, Default)]
struct Sink {
    received: Arc<Mutex<Vec<Received>>>,
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

async fn receive(
    State(sink): State<Sink>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    let calls = {
        let mut calls = sink.calls.lock().unwrap();
        let count = calls.entry(path.clone()).or_default();
        *count += 1;
        *count
    };
    sink.received.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body: body.to_vec(),
    });
    if path.starts_with("/fail") || (path.starts_with("/flaky") && calls <= 2) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

impl Sink {
    async fn start() -> (Self, SocketAddr) {
        let sink = Sink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new()
            .fallback(receive)
            .with_state(sink.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        (sink, address)
    }

    fn at(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits (15 s at most) until `path` has received `count` requests.
    async fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        for _ in 0..300 {
            let received = self.at(path);
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all: Vec<String> = self
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.path, String::from_utf8_lossy(&r.body)))
            .collect();
        panic!(
            "{path} received {} requests, not {count}; all: {all:?}",
            self.at(path).len()
        );
    }
}

/// A suite of the distribution service whose webhooks may reach this machine over http, with
/// fast retries.
async fn start(db: &TestDatabase, max_attempts: u32, disable_after: u32) -> TestSuite {
    let mut config = TestSuite::config(&["distribution"], db, &[]);
    let webhooks = &mut config.distribution.webhooks;
    webhooks.allow_http = true;
    webhooks.allow_private_addresses = true;
    webhooks.max_attempts = max_attempts;
    webhooks.disable_after = disable_after;
    webhooks.backoff_base = Duration::from_millis(50);
    webhooks.backoff_max = Duration::from_millis(100);
    webhooks.poll_interval = Duration::from_millis(50);
    webhooks.timeout = Duration::from_secs(5);
    TestSuite::start_config(config).await
}

async fn client(suite: &TestSuite, tenant: &str) -> Client {
    suite.clients(&token(tenant, &SCOPES)).await.distribution
}

fn subscription(url: &str, event_types: &[&str]) -> WebhookSubscription {
    WebhookSubscription {
        display_name: "CRM".into(),
        url: url.into(),
        event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
        signing_secret: SECRET.into(),
        enabled: true,
        ..WebhookSubscription::default()
    }
}

async fn subscribe(client: &mut Client, url: &str, event_types: &[&str]) -> WebhookSubscription {
    let created = client
        .create_webhook_subscription(CreateWebhookSubscriptionRequest {
            webhook_subscription: Some(subscription(url, event_types)),
            webhook_subscription_id: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .webhook_subscription
        .unwrap();
    assert!(created.signing_secret.is_empty(), "the secret was returned");
    created
}

/// `templates/welcome` (email) and a suppression of `blocked@example.com`.
async fn prepare_tenant(client: &mut Client) {
    client
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: "Welcome".into(),
                variants: vec![TemplateVariant {
                    channel: Channel::Email as i32,
                    locale: String::new(),
                    content: Some(Content::Email(EmailContent {
                        subject: "Hello".into(),
                        html_body: "<p>Welcome!</p>".into(),
                        text_body: String::new(),
                    })),
                }],
                ..Template::default()
            }),
            template_id: "welcome".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    client
        .add_suppression(AddSuppressionRequest {
            suppression: Some(Suppression {
                address: Some(Address {
                    address: Some(address::Address::Email("blocked@example.com".into())),
                }),
                channel: Channel::Email as i32,
                reason: SuppressionReason::Unsubscribe as i32,
                ..Suppression::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

/// Sends the welcome email to `email`; `blocked@example.com` is SUPPRESSED (`message.suppressed`).
async fn send(client: &mut Client, email: &str, request_id: &str) -> Message {
    client
        .send(SendRequest {
            recipient: Some(Recipient {
                recipient: Some(recipient::Recipient::Address(Address {
                    address: Some(address::Address::Email(email.into())),
                })),
                ..Recipient::default()
            }),
            channel: Some(ChannelSelector {
                selector: Some(channel_selector::Selector::Channel(Channel::Email as i32)),
            }),
            purpose: Purpose::Service as i32,
            template: "templates/welcome".into(),
            request_id: request_id.into(),
            ..SendRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap()
}

async fn deliveries(
    client: &mut Client,
    subscription: &str,
    states: &[WebhookDeliveryState],
) -> Vec<WebhookDelivery> {
    client
        .list_webhook_deliveries(ListWebhookDeliveriesRequest {
            webhook_subscription: subscription.into(),
            states: states.iter().map(|s| *s as i32).collect(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries
}

async fn get(client: &mut Client, name: &str) -> WebhookSubscription {
    client
        .get_webhook_subscription(GetWebhookSubscriptionRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .webhook_subscription
        .unwrap()
}

/// Polls until `check` holds for the subscription's deliveries (15 s at most).
async fn wait_deliveries(
    client: &mut Client,
    subscription: &str,
    what: &str,
    check: impl Fn(&[WebhookDelivery]) -> bool,
) -> Vec<WebhookDelivery> {
    let mut last = Vec::new();
    for _ in 0..300 {
        last = deliveries(client, subscription, &[]).await;
        if check(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{subscription}: never {what}: {last:?}");
}

fn verify_signature(received: &Received) {
    let timestamp = received.header("webhook-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        received.header("webhook-signature"),
        format!("v1={expected}")
    );
    // A signature with another secret does not match.
    let mut other =
        Hmac::<Sha256>::new_from_slice(b"another-secret-of-32-bytes-or-more!!").unwrap();
    other.update(timestamp.as_bytes());
    other.update(b".");
    other.update(&received.body);
    let wrong: String = other
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_ne!(received.header("webhook-signature"), format!("v1={wrong}"));
    let sent: i64 = timestamp.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - sent).abs() <= 60,
        "timestamp {sent} is not recent ({now})"
    );
}

on_both_databases!(
    subscribed_events_arrive_signed_as_cloudevents_per_tenant,
    |db: TestDatabase| async move {
        let (sink, address) = Sink::start().await;
        let base = format!("http://{address}");
        let suite = start(&db, 8, 20).await;
        let mut acme = client(&suite, "acme").await;
        let mut globex = client(&suite, "globex").await;

        let suppressed =
            subscribe(&mut acme, &format!("{base}/acme"), &["message.suppressed"]).await;
        let sent = subscribe(&mut acme, &format!("{base}/acme-sent"), &["message.sent"]).await;
        let theirs = subscribe(
            &mut globex,
            &format!("{base}/globex"),
            &["message.suppressed"],
        )
        .await;

        // The secret is never returned, and another tenant's subscription does not exist.
        assert!(
            get(&mut acme, &suppressed.name)
                .await
                .signing_secret
                .is_empty()
        );
        let listed = acme
            .list_webhook_subscriptions(ListWebhookSubscriptionsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .webhook_subscriptions;
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|s| s.signing_secret.is_empty()));
        assert!(listed.iter().all(|s| s.name != theirs.name));
        let status = acme
            .get_webhook_subscription(GetWebhookSubscriptionRequest {
                name: theirs.name.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = acme
            .update_webhook_subscription(UpdateWebhookSubscriptionRequest {
                webhook_subscription: Some(WebhookSubscription {
                    name: theirs.name.clone(),
                    url: format!("{base}/stolen"),
                    ..WebhookSubscription::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["url".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = acme
            .list_webhook_deliveries(ListWebhookDeliveriesRequest {
                webhook_subscription: theirs.name.clone(),
                ..ListWebhookDeliveriesRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = acme
            .delete_webhook_subscription(DeleteWebhookSubscriptionRequest {
                name: theirs.name.clone(),
                etag: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        prepare_tenant(&mut acme).await;
        prepare_tenant(&mut globex).await;
        let blocked = send(&mut acme, "blocked@example.com", "a1").await;
        assert_eq!(blocked.status, MessageStatus::Suppressed as i32);
        let queued = send(&mut acme, "ada@example.com", "a2").await;
        let other = send(&mut globex, "blocked@example.com", "g1").await;

        // message.sent follows the suppression in the log: once it arrived, everything before
        // it was fanned out.
        let sent_received = sink.wait_for("/acme-sent", 1).await;
        assert_eq!(sent_received[0].json()["type"], "message.sent");
        assert_eq!(
            sent_received[0].json()["data"]["message"],
            queued.name.as_str()
        );
        let received = sink.wait_for("/acme", 1).await;
        let theirs_received = sink.wait_for("/globex", 1).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            sink.at("/acme").len(),
            1,
            "only the subscribed type arrives, once"
        );
        assert_eq!(sink.at("/acme-sent").len(), 1);
        assert_eq!(sink.at("/globex").len(), 1);
        assert!(sink.at("/stolen").is_empty());

        let request = &received[0];
        assert_eq!(
            request.header("content-type"),
            "application/cloudevents+json"
        );
        verify_signature(request);
        let event = request.json();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "message.suppressed");
        assert_eq!(event["source"], "/throughline/distribution");
        assert_eq!(event["datacontenttype"], "application/json");
        assert_eq!(event["throughlinetenant"], "acme");
        assert!(!event["id"].as_str().unwrap().is_empty());
        assert!(event["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(event["data"]["message"], blocked.name.as_str());
        assert_eq!(event["data"]["reason"], "STATUS_REASON_ADDRESS_SUPPRESSED");

        // Each tenant's events reach only its own subscriptions.
        let theirs_event = theirs_received[0].json();
        assert_eq!(theirs_event["throughlinetenant"], "globex");
        assert_eq!(theirs_event["data"]["message"], other.name.as_str());

        let log = deliveries(&mut acme, &suppressed.name, &[]).await;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].state, WebhookDeliveryState::Succeeded as i32);
        assert_eq!(log[0].attempt_count, 1);
        assert_eq!(log[0].last_status_code, 200);
        assert_eq!(log[0].event_type, "message.suppressed");
        assert_eq!(log[0].event_id, event["id"].as_str().unwrap());
        assert_eq!(
            request.header("webhook-id"),
            log[0].name.rsplit('/').next().unwrap()
        );
        assert!(log[0].complete_time.is_some());
        assert!(
            deliveries(&mut acme, &suppressed.name, &[WebhookDeliveryState::Failed])
                .await
                .is_empty()
        );
        assert_eq!(deliveries(&mut acme, &sent.name, &[]).await.len(), 1);

        // Updates: the mask decides, the etag guards, the secret stays hidden.
        let updated = acme
            .update_webhook_subscription(UpdateWebhookSubscriptionRequest {
                webhook_subscription: Some(WebhookSubscription {
                    name: suppressed.name.clone(),
                    display_name: "Renamed".into(),
                    url: "http://ignored.invalid/".into(),
                    etag: suppressed.etag.clone(),
                    ..WebhookSubscription::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["display_name".into()],
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .webhook_subscription
            .unwrap();
        assert_eq!(updated.display_name, "Renamed");
        assert_eq!(updated.url, suppressed.url);
        assert!(updated.signing_secret.is_empty());
        assert_ne!(updated.etag, suppressed.etag);
        let stale = acme
            .update_webhook_subscription(UpdateWebhookSubscriptionRequest {
                webhook_subscription: Some(WebhookSubscription {
                    name: suppressed.name.clone(),
                    display_name: "Again".into(),
                    etag: suppressed.etag.clone(),
                    ..WebhookSubscription::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["display_name".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
        let status = acme
            .update_webhook_subscription(UpdateWebhookSubscriptionRequest {
                webhook_subscription: Some(WebhookSubscription {
                    name: suppressed.name.clone(),
                    ..WebhookSubscription::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["consecutive_failures".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["update_mask.paths[0]"]);

        // Idempotent create: the same request id gives the same subscription.
        let request = CreateWebhookSubscriptionRequest {
            webhook_subscription: Some(subscription(&format!("{base}/again"), &["message.sent"])),
            webhook_subscription_id: String::new(),
            request_id: "create-1".into(),
        };
        let first = acme
            .create_webhook_subscription(request.clone())
            .await
            .unwrap()
            .into_inner();
        let second = acme
            .create_webhook_subscription(request)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.webhook_subscription, second.webhook_subscription);
        assert!(
            first
                .webhook_subscription
                .unwrap()
                .signing_secret
                .is_empty()
        );

        // Deleted: gone, with its deliveries.
        acme.delete_webhook_subscription(DeleteWebhookSubscriptionRequest {
            name: sent.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
        let status = acme
            .get_webhook_subscription(GetWebhookSubscriptionRequest {
                name: sent.name.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        suite.stop().await;
    }
);

on_both_databases!(
    failures_are_retried_and_repeated_failure_disables,
    |db: TestDatabase| async move {
        let (sink, address) = Sink::start().await;
        let base = format!("http://{address}");
        let suite = start(&db, 3, 2).await;

        // A flaky endpoint: two 500s, then 200 on the third attempt.
        let mut acme = client(&suite, "acme").await;
        let flaky = subscribe(&mut acme, &format!("{base}/flaky"), &["message.suppressed"]).await;
        prepare_tenant(&mut acme).await;
        send(&mut acme, "blocked@example.com", "a1").await;
        let attempts = sink.wait_for("/flaky", 3).await;
        let log = wait_deliveries(&mut acme, &flaky.name, "succeeded", |log| {
            log.first()
                .is_some_and(|d| d.state == WebhookDeliveryState::Succeeded as i32)
        })
        .await;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].attempt_count, 3);
        assert_eq!(log[0].last_status_code, 200);
        let ids: Vec<String> = attempts.iter().map(|r| r.header("webhook-id")).collect();
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "one delivery id: {ids:?}"
        );
        assert_eq!(attempts[0].json()["id"], attempts[2].json()["id"]);
        for attempt in &attempts {
            verify_signature(attempt);
        }
        let flaky_now = get(&mut acme, &flaky.name).await;
        assert!(flaky_now.enabled);
        assert_eq!(flaky_now.consecutive_failures, 0);

        // An endpoint that always fails: each delivery FAILED after 3 attempts, and the
        // second failed delivery in a row disables the subscription.
        let mut initech = client(&suite, "initech").await;
        let failing = subscribe(
            &mut initech,
            &format!("{base}/fail"),
            &["message.suppressed"],
        )
        .await;
        prepare_tenant(&mut initech).await;
        send(&mut initech, "blocked@example.com", "i1").await;
        send(&mut initech, "blocked@example.com", "i2").await;
        let log = wait_deliveries(&mut initech, &failing.name, "failed twice", |log| {
            log.len() == 2
                && log
                    .iter()
                    .all(|d| d.state == WebhookDeliveryState::Failed as i32)
        })
        .await;
        for delivery in &log {
            assert_eq!(delivery.attempt_count, 3);
            assert_eq!(delivery.last_status_code, 500);
            assert!(!delivery.last_error.is_empty());
            assert!(delivery.complete_time.is_some());
        }
        assert_eq!(sink.at("/fail").len(), 6);
        let disabled = get(&mut initech, &failing.name).await;
        assert!(!disabled.enabled);
        assert_eq!(disabled.consecutive_failures, 2);
        assert!(!disabled.disabled_reason.is_empty());
        assert!(disabled.signing_secret.is_empty());

        // Disabled: new events are not queued for it.
        send(&mut initech, "blocked@example.com", "i3").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(deliveries(&mut initech, &failing.name, &[]).await.len(), 2);
        assert_eq!(sink.at("/fail").len(), 6);

        // The log pages newest first, and filters by state.
        let page = initech
            .list_webhook_deliveries(ListWebhookDeliveriesRequest {
                webhook_subscription: failing.name.clone(),
                states: vec![WebhookDeliveryState::Failed as i32],
                page_size: 1,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.deliveries.len(), 1);
        assert!(!page.next_page_token.is_empty());
        let rest = initech
            .list_webhook_deliveries(ListWebhookDeliveriesRequest {
                webhook_subscription: failing.name.clone(),
                states: vec![WebhookDeliveryState::Failed as i32],
                page_size: 1,
                page_token: page.next_page_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rest.deliveries.len(), 1);
        assert!(rest.next_page_token.is_empty());
        assert_ne!(page.deliveries[0].name, rest.deliveries[0].name);
        let time = |d: &WebhookDelivery| {
            let t = d.create_time.unwrap();
            (t.seconds, t.nanos)
        };
        assert!(time(&page.deliveries[0]) >= time(&rest.deliveries[0]));
        assert!(
            deliveries(
                &mut initech,
                &failing.name,
                &[WebhookDeliveryState::Succeeded]
            )
            .await
            .is_empty()
        );

        // Re-enabled by its owner: the failures are forgiven.
        let enabled = initech
            .update_webhook_subscription(UpdateWebhookSubscriptionRequest {
                webhook_subscription: Some(WebhookSubscription {
                    name: failing.name.clone(),
                    enabled: true,
                    ..WebhookSubscription::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["enabled".into()],
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .webhook_subscription
            .unwrap();
        assert!(enabled.enabled);
        assert_eq!(enabled.consecutive_failures, 0);
        assert!(enabled.disabled_reason.is_empty());
        suite.stop().await;
    }
);

on_both_databases!(
    urls_to_internal_addresses_and_bad_input_are_refused,
    |db: TestDatabase| async move {
        // The defaults: https only, no private addresses.
        let suite = TestSuite::start(&["distribution"], &db).await;
        let mut acme = client(&suite, "acme").await;
        for url in [
            "https://127.0.0.1/hook",
            "https://10.0.0.1/hook",
            "https://[::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "http://93.184.216.34/hook",
        ] {
            let status = acme
                .create_webhook_subscription(CreateWebhookSubscriptionRequest {
                    webhook_subscription: Some(subscription(url, &["message.sent"])),
                    ..CreateWebhookSubscriptionRequest::default()
                })
                .await
                .unwrap_err();
            assert_eq!(violations(&status), ["webhook_subscription.url"], "{url}");
        }

        // A public address passes (disabled, so nothing is ever sent to it).
        let mut public = subscription("https://93.184.216.34/hook", &["message.sent"]);
        public.enabled = false;
        let created = acme
            .create_webhook_subscription(CreateWebhookSubscriptionRequest {
                webhook_subscription: Some(public),
                ..CreateWebhookSubscriptionRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .webhook_subscription
            .unwrap();
        assert!(created.signing_secret.is_empty());
        assert!(!created.enabled);

        // ... and cannot be pointed inside afterwards.
        let status = acme
            .update_webhook_subscription(UpdateWebhookSubscriptionRequest {
                webhook_subscription: Some(WebhookSubscription {
                    name: created.name.clone(),
                    url: "https://[fd00::1]/hook".into(),
                    ..WebhookSubscription::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["url".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["webhook_subscription.url"]);

        // Event types and the secret are checked too.
        let mut bad = subscription("https://93.184.216.34/hook", &["Message.Sent"]);
        bad.signing_secret = "too-short".into();
        let status = acme
            .create_webhook_subscription(CreateWebhookSubscriptionRequest {
                webhook_subscription: Some(bad),
                ..CreateWebhookSubscriptionRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "webhook_subscription.event_types[0]",
                "webhook_subscription.signing_secret"
            ]
        );
        let status = acme
            .create_webhook_subscription(CreateWebhookSubscriptionRequest {
                webhook_subscription: Some(subscription("https://93.184.216.34/hook", &[])),
                ..CreateWebhookSubscriptionRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["webhook_subscription.event_types"]);
        suite.stop().await;
    }
);

on_both_databases!(
    addresses_are_checked_again_at_delivery,
    |db: TestDatabase| async move {
        // Saved while private addresses were allowed...
        let (sink, address) = Sink::start().await;
        let lenient = start(&db, 1, 20).await;
        let mut acme = client(&lenient, "acme").await;
        let inside = subscribe(
            &mut acme,
            &format!("http://{address}/inside"),
            &["message.suppressed"],
        )
        .await;
        prepare_tenant(&mut acme).await;
        lenient.stop().await;

        // ... and delivered by a server that forbids them, as if the name now resolved to
        // this machine (DNS rebinding): refused before any connection.
        let mut config = TestSuite::config(&["distribution"], &db, &[]);
        let webhooks = &mut config.distribution.webhooks;
        webhooks.allow_http = true;
        webhooks.max_attempts = 1;
        webhooks.poll_interval = Duration::from_millis(50);
        let strict = TestSuite::start_config(config).await;
        let mut acme = client(&strict, "acme").await;
        send(&mut acme, "blocked@example.com", "a1").await;
        let log = wait_deliveries(&mut acme, &inside.name, "failed", |log| {
            log.first()
                .is_some_and(|d| d.state == WebhookDeliveryState::Failed as i32)
        })
        .await;
        assert_eq!(log[0].last_status_code, 0);
        assert!(
            log[0].last_error.contains("refused"),
            "{}",
            log[0].last_error
        );
        assert!(
            sink.at("/inside").is_empty(),
            "the request reached the endpoint"
        );
        strict.stop().await;
    }
);
