//! Sends through the real gRPC API on SQLite and PostgreSQL, with the profile service deployed
//! beside the distribution service: idempotent sends delivered once, central enforcement
//! (consent, suppressions, quiet hours in the customer's zone, one contact budget across
//! purposes and channels), preferred channels, SendMulti, cancellation, bad input.
#![allow(clippy::unwrap_used)]

mod distribution_support;

use distribution_support::*;

use chrono::Timelike;
use prost_types::FieldMask;
use throughline_harness::{
    Authenticated, TestDatabase, TestSuite, on_both_databases, token, violations,
};
use throughline_proto::common::v1::{
    BudgetPeriod, Channel, ChannelSelector, ConsentStatus, ContactBudget, ContactLimit,
    LocalTimeWindow, PreferredChannel, Purpose, channel_selector,
};
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::*;
use throughline_proto::google::r#type::TimeOfDay;
use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use throughline_proto::profile::v1::{
    Consent, CreateProfileRequest, Preferences, Profile, SetConsentRequest,
};
use tonic::Code;

type Profiles = ProfileServiceClient<Authenticated>;

const SCOPES: [&str; 5] = [
    "distribution:read",
    "distribution:write",
    "distribution:send",
    "profile:read",
    "profile:write",
];

async fn clients(suite: &TestSuite, tenant: &str) -> (Client, Profiles) {
    let clients = suite.clients(&token(tenant, &SCOPES)).await;
    (clients.distribution, clients.profile)
}

async fn start(test_db: &TestDatabase) -> TestSuite {
    TestSuite::start(&["profile", "distribution"], test_db).await
}

/// `templates/welcome`: an email and an SMS variant, each using `name`.
async fn welcome_template(client: &mut Client) {
    let variants = vec![
        TemplateVariant {
            channel: Channel::Email as i32,
            locale: String::new(),
            content: Some(Content::Email(EmailContent {
                subject: "Hello {{ name }}".into(),
                html_body: "<p>Welcome, {{ name }}!</p>".into(),
                text_body: String::new(),
            })),
        },
        TemplateVariant {
            channel: Channel::Sms as i32,
            locale: String::new(),
            content: Some(Content::Sms(SmsContent {
                body: "Welcome, {{ name }}!".into(),
                max_segments: 0,
            })),
        },
    ];
    client
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: "Welcome".into(),
                variants,
                ..Template::default()
            }),
            template_id: "welcome".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

fn variables() -> prost_types::Struct {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(
        "name".to_owned(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue("Ada".into())),
        },
    );
    prost_types::Struct { fields }
}

fn to_email(address: &str) -> Recipient {
    Recipient {
        recipient: Some(recipient::Recipient::Address(Address {
            address: Some(address::Address::Email(address.into())),
        })),
        ..Recipient::default()
    }
}

fn to_profile(profile: &str) -> Recipient {
    Recipient {
        recipient: Some(recipient::Recipient::Profile(profile.into())),
        ..Recipient::default()
    }
}

fn on(channel: Channel) -> Option<ChannelSelector> {
    Some(ChannelSelector {
        selector: Some(channel_selector::Selector::Channel(channel as i32)),
    })
}

fn preferred(candidates: &[Channel]) -> Option<ChannelSelector> {
    Some(ChannelSelector {
        selector: Some(channel_selector::Selector::Preferred(PreferredChannel {
            candidates: candidates.iter().map(|c| *c as i32).collect(),
        })),
    })
}

fn send_request(
    recipient: Recipient,
    channel: Option<ChannelSelector>,
    purpose: Purpose,
    request_id: &str,
) -> SendRequest {
    SendRequest {
        recipient: Some(recipient),
        channel,
        purpose: purpose as i32,
        template: "templates/welcome".into(),
        variables: Some(variables()),
        request_id: request_id.into(),
        ..SendRequest::default()
    }
}

fn status_of(message: &Message) -> (MessageStatus, StatusReason) {
    let last = message.status_history.last().cloned().unwrap_or_default();
    (
        MessageStatus::try_from(message.status).unwrap(),
        StatusReason::try_from(last.reason).unwrap(),
    )
}

async fn create_profile(profiles: &mut Profiles, profile: Profile) -> String {
    profiles
        .create_profile(CreateProfileRequest {
            profile: Some(profile),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap()
        .name
}

async fn set_consent(
    profiles: &mut Profiles,
    profile: &str,
    channel: Channel,
    purpose: Purpose,
    status: ConsentStatus,
) {
    profiles
        .set_consent(SetConsentRequest {
            profile: profile.into(),
            consent: Some(Consent {
                channel: channel as i32,
                purpose: purpose as i32,
                status: status as i32,
                source: "test".into(),
                ..Consent::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

on_both_databases!(
    a_send_is_queued_then_sent_once_and_a_retry_returns_the_same_message,
    |test_db: TestDatabase| async move {
        let suite = start(&test_db).await;
        let (mut client, _) = clients(&suite, "acme").await;
        welcome_template(&mut client).await;
        let request = send_request(
            to_email("Ada@Example.com"),
            on(Channel::Email),
            Purpose::Service,
            "order-1-confirmation",
        );
        let first = send(&mut client, request.clone()).await;
        assert_eq!(first.status, MessageStatus::Queued as i32);
        assert_eq!(first.address, "ada@example.com");
        assert_eq!(first.idempotency_key, "order-1-confirmation");
        let retry = send(&mut client, request).await;
        assert_eq!(retry.name, first.name);

        let sent = wait_for(&mut client, &first.name, MessageStatus::Sent).await;
        let history: Vec<i32> = sent.status_history.iter().map(|c| c.status).collect();
        assert_eq!(
            history,
            [MessageStatus::Queued as i32, MessageStatus::Sent as i32]
        );
        assert_eq!(sent.provider, "log");
        assert_eq!(sent.attempt_count, 1);
        assert!(!sent.provider_message_id.is_empty());
        let listed = client
            .list_messages(ListMessagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .messages;
        assert_eq!(listed.len(), 1, "the retry made no second message");

        // Another tenant sees nothing of it.
        let (mut other, _) = clients(&suite, "globex").await;
        let status = other
            .get_message(GetMessageRequest {
                name: first.name.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        suite.stop().await;
    }
);

on_both_databases!(
    consent_suppressions_and_one_budget_across_purposes_are_enforced,
    |test_db: TestDatabase| async move {
        let suite = start(&test_db).await;
        let (mut client, mut profiles) = clients(&suite, "acme").await;
        welcome_template(&mut client).await;
        let ada = create_profile(
            &mut profiles,
            Profile {
                given_name: "Ada".into(),
                email: "ada@example.com".into(),
                phone: "+33612345678".into(),
                ..Profile::default()
            },
        )
        .await;
        set_consent(
            &mut profiles,
            &ada,
            Channel::Email,
            Purpose::Marketing,
            ConsentStatus::Denied,
        )
        .await;
        set_consent(
            &mut profiles,
            &ada,
            Channel::Sms,
            Purpose::Marketing,
            ConsentStatus::Granted,
        )
        .await;

        let denied = send(
            &mut client,
            send_request(
                to_profile(&ada),
                on(Channel::Email),
                Purpose::Marketing,
                "m1",
            ),
        )
        .await;
        assert_eq!(
            status_of(&denied),
            (MessageStatus::Suppressed, StatusReason::ConsentDenied)
        );

        // An unsubscribed number: nothing on SMS for any purpose.
        client
            .add_suppression(AddSuppressionRequest {
                suppression: Some(Suppression {
                    address: Some(Address {
                        address: Some(address::Address::Phone("+33612345678".into())),
                    }),
                    channel: Channel::Sms as i32,
                    reason: SuppressionReason::Unsubscribe as i32,
                    ..Suppression::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
        let blocked = send(
            &mut client,
            send_request(to_profile(&ada), on(Channel::Sms), Purpose::Marketing, "m2"),
        )
        .await;
        assert_eq!(
            status_of(&blocked),
            (MessageStatus::Suppressed, StatusReason::AddressSuppressed)
        );

        // Two contacts a day, whatever the channel and purpose; service messages are exempt.
        client
            .update_contact_policy(UpdateContactPolicyRequest {
                contact_policy: Some(ContactPolicy {
                    default_budget: Some(ContactBudget {
                        limits: vec![ContactLimit {
                            channel: Channel::Unspecified as i32,
                            purpose: Purpose::Unspecified as i32,
                            max_contacts: 2,
                            period: BudgetPeriod::Day as i32,
                        }],
                    }),
                    ..ContactPolicy::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["default_budget".into()],
                }),
            })
            .await
            .unwrap();
        let survey = send(
            &mut client,
            send_request(to_profile(&ada), on(Channel::Email), Purpose::Survey, "s1"),
        )
        .await;
        assert_eq!(survey.status, MessageStatus::Queued as i32);
        let second = send(
            &mut client,
            send_request(to_profile(&ada), on(Channel::Email), Purpose::Survey, "s2"),
        )
        .await;
        assert_eq!(second.status, MessageStatus::Queued as i32);
        let over = send(
            &mut client,
            send_request(to_profile(&ada), on(Channel::Email), Purpose::Survey, "s3"),
        )
        .await;
        assert_eq!(
            status_of(&over),
            (
                MessageStatus::Suppressed,
                StatusReason::ContactBudgetExceeded
            )
        );
        let service = send(
            &mut client,
            send_request(to_profile(&ada), on(Channel::Email), Purpose::Service, "o1"),
        )
        .await;
        assert_eq!(service.status, MessageStatus::Queued as i32);
        let usage = client
            .get_contact_budget_usage(GetContactBudgetUsageRequest {
                profile: ada.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .usage
            .unwrap();
        assert_eq!(usage.limits.len(), 1);
        assert_eq!(usage.limits[0].used, 2);
        suite.stop().await;
    }
);

on_both_databases!(
    quiet_hours_defer_in_the_customer_zone_and_only_allowed_purposes_bypass,
    |test_db: TestDatabase| async move {
        let suite = start(&test_db).await;
        let (mut client, mut profiles) = clients(&suite, "acme").await;
        welcome_template(&mut client).await;
        // Quiet from an hour ago to two hours ahead, Tokyo time.
        let zone: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        let hour = chrono::Utc::now().with_timezone(&zone).hour() as i32;
        let at = |hours: i32| TimeOfDay {
            hours: hours.rem_euclid(24),
            ..TimeOfDay::default()
        };
        let ada = create_profile(
            &mut profiles,
            Profile {
                email: "ada@example.com".into(),
                preferences: Some(Preferences {
                    time_zone: "Asia/Tokyo".into(),
                    quiet_hours: Some(LocalTimeWindow {
                        start_time: Some(at(hour - 1)),
                        end_time: Some(at(hour + 2)),
                        days: vec![],
                    }),
                    ..Preferences::default()
                }),
                ..Profile::default()
            },
        )
        .await;
        let deferred = send(
            &mut client,
            send_request(to_profile(&ada), on(Channel::Email), Purpose::Survey, "q1"),
        )
        .await;
        assert_eq!(
            status_of(&deferred),
            (MessageStatus::Deferred, StatusReason::QuietHours)
        );
        let next = deferred.next_attempt_time.unwrap().seconds;
        let now = chrono::Utc::now().timestamp();
        assert!(
            next > now + 3600 && next <= now + 2 * 3600,
            "{next} vs {now}"
        );

        let mut urgent = send_request(to_profile(&ada), on(Channel::Email), Purpose::Service, "q2");
        urgent.bypass_quiet_hours = true;
        assert_eq!(
            send(&mut client, urgent).await.status,
            MessageStatus::Queued as i32
        );

        let mut pushy = send_request(
            to_profile(&ada),
            on(Channel::Email),
            Purpose::Marketing,
            "q3",
        );
        pushy.bypass_quiet_hours = true;
        let refused = client.send(pushy).await.unwrap_err();
        assert_eq!(violations(&refused), ["bypass_quiet_hours"]);
        suite.stop().await;
    }
);

on_both_databases!(
    preferred_channels_follow_the_ranking_and_send_multi_reaches_several,
    |test_db: TestDatabase| async move {
        let suite = start(&test_db).await;
        let (mut client, mut profiles) = clients(&suite, "acme").await;
        welcome_template(&mut client).await;
        let ranking = vec![Channel::Sms as i32, Channel::Email as i32];
        let email_only = create_profile(
            &mut profiles,
            Profile {
                email: "ada@example.com".into(),
                preferences: Some(Preferences {
                    channel_ranking: ranking.clone(),
                    ..Preferences::default()
                }),
                ..Profile::default()
            },
        )
        .await;
        // SMS ranks first but there is no number: email it is.
        let chosen = send(
            &mut client,
            send_request(
                to_profile(&email_only),
                preferred(&[]),
                Purpose::Service,
                "p1",
            ),
        )
        .await;
        assert_eq!(chosen.channel, Channel::Email as i32);
        let none = send(
            &mut client,
            send_request(
                to_profile(&email_only),
                preferred(&[Channel::Sms]),
                Purpose::Service,
                "p2",
            ),
        )
        .await;
        assert_eq!(
            status_of(&none),
            (MessageStatus::Suppressed, StatusReason::NoEligibleChannel)
        );

        let both = create_profile(
            &mut profiles,
            Profile {
                email: "grace@example.com".into(),
                phone: "+14155550123".into(),
                ..Profile::default()
            },
        )
        .await;
        let multi = SendMultiRequest {
            recipient: Some(to_profile(&both)),
            targets: vec![
                SendMultiTarget {
                    channel: Channel::Sms as i32,
                    template: String::new(),
                },
                SendMultiTarget {
                    channel: Channel::Email as i32,
                    template: String::new(),
                },
            ],
            purpose: Purpose::Service as i32,
            template: "templates/welcome".into(),
            variables: Some(variables()),
            request_id: "call-77-link".into(),
            ..SendMultiRequest::default()
        };
        let sent = client
            .send_multi(multi.clone())
            .await
            .unwrap()
            .into_inner()
            .messages;
        let channels: Vec<i32> = sent.iter().map(|m| m.channel).collect();
        assert_eq!(channels, [Channel::Sms as i32, Channel::Email as i32]);
        assert_eq!(sent[0].address, "+14155550123");
        assert_eq!(sent[0].send_group, sent[1].send_group);
        let again = client
            .send_multi(multi)
            .await
            .unwrap()
            .into_inner()
            .messages;
        let names = |m: &[Message]| m.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&again), names(&sent));
        suite.stop().await;
    }
);

on_both_databases!(
    a_deferred_message_can_be_cancelled_and_gives_its_contact_back,
    |test_db: TestDatabase| async move {
        let suite = start(&test_db).await;
        let (mut client, _) = clients(&suite, "acme").await;
        welcome_template(&mut client).await;
        let mut later = send_request(
            to_email("ada@example.com"),
            on(Channel::Email),
            Purpose::Service,
            "reminder-1",
        );
        let hour_ahead = chrono::Utc::now().timestamp() + 3600;
        later.not_before_time = Some(prost_types::Timestamp {
            seconds: hour_ahead,
            nanos: 0,
        });
        let deferred = send(&mut client, later).await;
        assert_eq!(
            status_of(&deferred),
            (MessageStatus::Deferred, StatusReason::NotBefore)
        );
        let cancel = CancelMessageRequest {
            name: deferred.name.clone(),
            request_id: String::new(),
        };
        let cancelled = client
            .cancel_message(cancel.clone())
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        assert_eq!(
            status_of(&cancelled),
            (MessageStatus::Cancelled, StatusReason::Cancelled)
        );
        // Cancelling again changes nothing.
        let again = client
            .cancel_message(cancel)
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        assert_eq!(again.status_history.len(), cancelled.status_history.len());

        let now = send(
            &mut client,
            send_request(
                to_email("ada@example.com"),
                on(Channel::Email),
                Purpose::Service,
                "now",
            ),
        )
        .await;
        wait_for(&mut client, &now.name, MessageStatus::Sent).await;
        let status = client
            .cancel_message(CancelMessageRequest {
                name: now.name.clone(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        suite.stop().await;
    }
);

on_both_databases!(
    bad_sends_are_refused_naming_the_field,
    |test_db: TestDatabase| async move {
        let suite = start(&test_db).await;
        let (mut client, _) = clients(&suite, "acme").await;
        welcome_template(&mut client).await;
        let no_key = send_request(
            to_email("ada@example.com"),
            on(Channel::Email),
            Purpose::Service,
            "",
        );
        assert_eq!(
            violations(&client.send(no_key).await.unwrap_err()),
            ["request_id"]
        );
        let bad_address = send_request(
            to_email("not-an-address"),
            on(Channel::Email),
            Purpose::Service,
            "b1",
        );
        assert_eq!(
            violations(&client.send(bad_address).await.unwrap_err()),
            ["recipient.address.email"]
        );
        let wrong_channel = send_request(
            to_email("ada@example.com"),
            on(Channel::Sms),
            Purpose::Service,
            "b2",
        );
        assert_eq!(
            violations(&client.send(wrong_channel).await.unwrap_err()),
            ["recipient.address"]
        );
        let mut no_purpose = send_request(
            to_email("ada@example.com"),
            on(Channel::Email),
            Purpose::Service,
            "b3",
        );
        no_purpose.purpose = 0;
        no_purpose.channel = on(Channel::Web);
        let mut fields = violations(&client.send(no_purpose).await.unwrap_err());
        fields.sort();
        assert_eq!(fields, ["channel.channel", "purpose"]);
        let mut missing_variable = send_request(
            to_email("ada@example.com"),
            on(Channel::Email),
            Purpose::Service,
            "b4",
        );
        missing_variable.variables = None;
        assert_eq!(
            violations(&client.send(missing_variable).await.unwrap_err()),
            ["variables.name"]
        );
        let mut unknown = send_request(
            to_email("ada@example.com"),
            on(Channel::Email),
            Purpose::Service,
            "b5",
        );
        unknown.template = "templates/nope".into();
        assert_eq!(
            client.send(unknown).await.unwrap_err().code(),
            Code::NotFound
        );
        suite.stop().await;
    }
);

on_both_databases!(
    suppressions_and_policy_refuse_bad_input_and_other_tenants,
    |test_db: TestDatabase| async move {
        let suite = start(&test_db).await;
        let (mut acme, _) = clients(&suite, "acme").await;
        let (mut globex, _) = clients(&suite, "globex").await;
        let bad = acme
            .add_suppression(AddSuppressionRequest {
                suppression: Some(Suppression {
                    address: Some(Address {
                        address: Some(address::Address::Phone("0612".into())),
                    }),
                    channel: 99,
                    ..Suppression::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        let mut fields = violations(&bad);
        fields.sort();
        assert_eq!(
            fields,
            [
                "suppression.address.phone",
                "suppression.channel",
                "suppression.reason"
            ]
        );
        let added = acme
            .add_suppression(AddSuppressionRequest {
                suppression: Some(Suppression {
                    address: Some(Address {
                        address: Some(address::Address::Email("ada@example.com".into())),
                    }),
                    reason: SuppressionReason::Manual as i32,
                    ..Suppression::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .suppression
            .unwrap();
        // Another tenant neither sees nor removes it.
        let listed = globex
            .list_suppressions(ListSuppressionsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .suppressions;
        assert!(listed.is_empty());
        let status = globex
            .remove_suppression(RemoveSuppressionRequest {
                name: added.name.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        // Nor cancels another tenant's message.
        welcome_template(&mut acme).await;
        let mut later = send_request(
            to_email("grace@example.com"),
            on(Channel::Email),
            Purpose::Service,
            "later",
        );
        later.not_before_time = Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() + 3600,
            nanos: 0,
        });
        let message = send(&mut acme, later).await;
        let status = globex
            .cancel_message(CancelMessageRequest {
                name: message.name.clone(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        let bad_policy = acme
            .update_contact_policy(UpdateContactPolicyRequest {
                contact_policy: Some(ContactPolicy {
                    default_budget: Some(ContactBudget {
                        limits: vec![ContactLimit {
                            max_contacts: -1,
                            ..ContactLimit::default()
                        }],
                    }),
                    ..ContactPolicy::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["default_budget".into(), "colour".into()],
                }),
            })
            .await
            .unwrap_err();
        let mut fields = violations(&bad_policy);
        fields.sort();
        assert_eq!(
            fields,
            [
                "contact_policy.default_budget.limits[0].max_contacts",
                "contact_policy.default_budget.limits[0].period",
                "update_mask"
            ]
        );
        suite.stop().await;
    }
);
