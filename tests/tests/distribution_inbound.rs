//! Two-way messaging on SQLite and PostgreSQL, with the profile and interaction services
//! deployed: receipts move a message's status once per report and a hard bounce suppresses the
//! address; a signed STOP reply posted to the HTTP endpoint unsubscribes the customer (consent
//! revoked, address suppressed) and reaches their timeline; unsigned or stale reports are
//! refused.
#![allow(clippy::unwrap_used)]

mod distribution_support;

use distribution_support::*;

use throughline_distribution::provider::{HttpOptions, ProviderOptions};
use throughline_harness::{Clients, HttpSink, TestDatabase, TestSuite, on_both_databases, token};
use throughline_proto::common::v1::{
    Channel, ChannelSelector, ConsentStatus, CustomerRef, Purpose, channel_selector, customer_ref,
};
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::*;
use throughline_proto::interaction::v1::ListInteractionsRequest;
use throughline_proto::profile::v1::{
    CheckConsentRequest, Consent, CreateProfileRequest, Profile, SetConsentRequest,
};

const SECRET: &str = "a-provider-signing-secret-of-32-bytes!";
const PHONE: &str = "+33612345678";

struct Setup {
    suite: TestSuite,
    sink: HttpSink,
    endpoint: String,
    clients: Clients,
}

async fn start(test_db: &TestDatabase) -> Setup {
    let sink = HttpSink::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = TestSuite::config(&["profile", "interaction", "distribution"], test_db, &[]);
    let distribution = &mut config.distribution;
    distribution.providers = [(
        "sms".to_owned(),
        ProviderOptions {
            kind: "http".into(),
            channels: vec!["sms".into()],
            priority: 0,
            rate_limit: 0.0,
            smtp: None,
            http: Some(HttpOptions {
                url: format!("{}/messages", sink.url()),
                body: Some(r#"{"to": {{ address|tojson }}}"#.into()),
                response_id_pointer: Some("/id".into()),
                ..HttpOptions::default()
            }),
        },
    )]
    .into();
    distribution.inbound.listen_addr = format!("127.0.0.1:{port}");
    distribution.inbound.secrets = [(
        "sms".to_owned(),
        throughline_runtime::config::Secret::new(SECRET),
    )]
    .into();
    let suite = TestSuite::start_config(config).await;
    let clients = suite
        .clients(&token(
            "acme",
            &[
                "distribution:read",
                "distribution:write",
                "distribution:send",
                "distribution:inbound",
                "profile:read",
                "profile:write",
                "interaction:read",
            ],
        ))
        .await;
    let mut distribution = clients.distribution.clone();
    distribution
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: "Offer".into(),
                variants: vec![TemplateVariant {
                    channel: Channel::Sms as i32,
                    locale: String::new(),
                    content: Some(Content::Sms(SmsContent {
                        body: "20% off today. Reply STOP to opt out.".into(),
                        max_segments: 0,
                    })),
                }],
                ..Template::default()
            }),
            template_id: "offer".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    Setup {
        suite,
        sink,
        endpoint: format!("http://127.0.0.1:{port}/inbound/acme/sms"),
        clients,
    }
}

fn sms_to(recipient: recipient::Recipient, purpose: Purpose, request_id: &str) -> SendRequest {
    SendRequest {
        recipient: Some(Recipient {
            recipient: Some(recipient),
            ..Recipient::default()
        }),
        channel: Some(ChannelSelector {
            selector: Some(channel_selector::Selector::Channel(Channel::Sms as i32)),
        }),
        purpose: purpose as i32,
        template: "templates/offer".into(),
        request_id: request_id.into(),
        ..SendRequest::default()
    }
}

fn to_phone() -> recipient::Recipient {
    recipient::Recipient::Address(Address {
        address: Some(address::Address::Phone(PHONE.into())),
    })
}

fn receipt(
    provider_message_id: &str,
    status: MessageStatus,
    permanent: bool,
) -> RecordInboundRequest {
    RecordInboundRequest {
        inbound: Some(Inbound {
            provider: "sms".into(),
            kind: Some(inbound::Kind::Receipt(DeliveryReceipt {
                provider_message_id: provider_message_id.into(),
                status: status as i32,
                permanent,
                ..DeliveryReceipt::default()
            })),
        }),
    }
}

async fn post(
    endpoint: &str,
    body: &str,
    timestamp: i64,
    secret: &str,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(endpoint)
        .header("Webhook-Timestamp", timestamp.to_string())
        .header(
            "Webhook-Signature",
            throughline_runtime::outbound::signature::sign(
                secret.as_bytes(),
                timestamp,
                body.as_bytes(),
            ),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

on_both_databases!(
    receipts_move_a_message_on_once_and_a_hard_bounce_suppresses,
    |test_db: TestDatabase| async move {
        let setup = start(&test_db).await;
        let mut client = setup.clients.distribution.clone();
        let sent = client
            .send(sms_to(to_phone(), Purpose::Service, "r1"))
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        let sent = wait_for(&mut client, &sent.name, MessageStatus::Sent).await;
        assert_eq!(sent.provider_message_id, "sink-1");

        let first = client
            .record_inbound(receipt("sink-1", MessageStatus::Delivered, false))
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap();
        assert_eq!(first.message, sent.name);
        assert!(!first.duplicate);
        let repeat = client
            .record_inbound(receipt("sink-1", MessageStatus::Delivered, false))
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap();
        assert!(repeat.duplicate);
        let delivered = message(&mut client, &sent.name).await;
        assert_eq!(delivered.status, MessageStatus::Delivered as i32);
        assert_eq!(
            delivered.status_history.len(),
            3,
            "the repeat changed nothing"
        );

        client
            .record_inbound(receipt("sink-1", MessageStatus::Bounced, true))
            .await
            .unwrap();
        assert_eq!(
            message(&mut client, &sent.name).await.status,
            MessageStatus::Bounced as i32
        );
        let suppressions = client
            .list_suppressions(ListSuppressionsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .suppressions;
        assert_eq!(suppressions.len(), 1);
        assert_eq!(suppressions[0].reason, SuppressionReason::HardBounce as i32);
        let next = client
            .send(sms_to(to_phone(), Purpose::Service, "r2"))
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        assert_eq!(next.status, MessageStatus::Suppressed as i32);

        let unknown = client
            .record_inbound(receipt("nobody-sent-this", MessageStatus::Delivered, false))
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        assert_eq!(setup.sink.count(), 1);
        setup.suite.stop().await;
    }
);

on_both_databases!(
    a_signed_stop_reply_unsubscribes_and_reaches_the_timeline,
    |test_db: TestDatabase| async move {
        let setup = start(&test_db).await;
        let mut client = setup.clients.distribution.clone();
        let mut profiles = setup.clients.profile.clone();
        let ada = profiles
            .create_profile(CreateProfileRequest {
                profile: Some(Profile {
                    given_name: "Ada".into(),
                    phone: PHONE.into(),
                    ..Profile::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap()
            .name;
        profiles
            .set_consent(SetConsentRequest {
                profile: ada.clone(),
                consent: Some(Consent {
                    channel: Channel::Sms as i32,
                    purpose: Purpose::Marketing as i32,
                    status: ConsentStatus::Granted as i32,
                    source: "web-form".into(),
                    ..Consent::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
        let offer = client
            .send(sms_to(
                recipient::Recipient::Profile(ada.clone()),
                Purpose::Marketing,
                "offer-1",
            ))
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        wait_for(&mut client, &offer.name, MessageStatus::Sent).await;

        let body = format!(
            r#"{{"reply": {{"channel": "sms", "sender": {{"phone": "{PHONE}"}}, "body": "stop", "provider_message_id": "in-1", "recipient": "12345"}}}}"#
        );
        let now = chrono::Utc::now().timestamp();
        let (status, result) = post(&setup.endpoint, &body, now, SECRET).await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["unsubscribed"], true);
        assert_eq!(result["profile"], ada.as_str());
        assert_eq!(result["message"], offer.name.as_str());
        let interaction = result["interaction"].as_str().unwrap().to_owned();
        assert!(interaction.starts_with("interactions/"), "{interaction}");

        let (status, repeat) = post(&setup.endpoint, &body, now, SECRET).await;
        assert_eq!(status, 200);
        assert_eq!(repeat["duplicate"], true);

        let consent = profiles
            .check_consent(CheckConsentRequest {
                customer: Some(CustomerRef {
                    customer: Some(customer_ref::Customer::Profile(ada.clone())),
                }),
                channel: Channel::Sms as i32,
                purpose: Purpose::Marketing as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(consent.status, ConsentStatus::Denied as i32);
        let timeline = setup
            .clients
            .interaction
            .clone()
            .list_interactions(ListInteractionsRequest {
                customer: Some(CustomerRef {
                    customer: Some(customer_ref::Customer::Profile(ada.clone())),
                }),
                ..ListInteractionsRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .interactions;
        assert_eq!(timeline.len(), 1);
        assert_eq!(timeline[0].name, interaction);
        let again = client
            .send(sms_to(
                recipient::Recipient::Profile(ada.clone()),
                Purpose::Marketing,
                "offer-2",
            ))
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        assert_eq!(again.status, MessageStatus::Suppressed as i32);

        // Forged, stale and unknown-provider reports are refused before anything is read.
        let forged = body.replace("stop", "yes");
        assert_eq!(
            post(&setup.endpoint, &forged, now, "not-the-secret")
                .await
                .0,
            401
        );
        assert_eq!(
            post(&setup.endpoint, &forged, now - 3600, SECRET).await.0,
            401
        );
        let other = setup.endpoint.replace("/sms", "/email");
        assert_eq!(post(&other, &forged, now, SECRET).await.0, 401);
        // A malformed report is a 400 naming the problem.
        let (status, _) = post(
            &setup.endpoint,
            r#"{"reply": {"channel": "fax"}}"#,
            now,
            SECRET,
        )
        .await;
        assert_eq!(status, 400);
        setup.suite.stop().await;
    }
);
