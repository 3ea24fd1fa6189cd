//! Journeys acting through the other services, on SQLite and PostgreSQL, on the engine's
//! manual clock: the brief's abandoned-cart journey end to end (profile, interaction,
//! distribution and orchestration in one process), and the policies against creep — minimum
//! delay, frequency cap, quiet hours and suppression over recent interactions.
#![allow(clippy::unwrap_used)]

mod orchestration_engine_support;

use orchestration_engine_support::*;
use throughline_harness::{TestDatabase, on_both_databases, token};
use throughline_proto::common::v1::{Channel, ConsentStatus, Direction, LocalTimeWindow, Purpose};
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::{
    CreateTemplateRequest, EmailContent, ListMessagesRequest, Message, MessageStatus, SmsContent,
    Template, TemplateVariant,
};
use throughline_proto::google::r#type::TimeOfDay;
use throughline_proto::interaction::v1::{Interaction, RecordInteractionRequest};
use throughline_proto::orchestration::v1::*;
use throughline_proto::profile::v1::{
    Consent, CreateProfileRequest, Preferences, Profile, SetConsentRequest,
};

const ALL: [&str; 4] = ["profile", "interaction", "distribution", "orchestration"];

fn scopes() -> Vec<&'static str> {
    vec![
        "profile:read",
        "profile:write",
        "interaction:read",
        "interaction:write",
        "distribution:read",
        "distribution:write",
        "distribution:send",
    ]
}

async fn create_template(clients: &mut throughline_harness::Clients, id: &str) {
    clients
        .distribution
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: id.into(),
                variants: vec![
                    TemplateVariant {
                        channel: Channel::Email as i32,
                        locale: String::new(),
                        content: Some(Content::Email(EmailContent {
                            subject: "Still thinking it over?".into(),
                            html_body: "<p>Your cart is waiting.</p>".into(),
                            text_body: String::new(),
                        })),
                    },
                    TemplateVariant {
                        channel: Channel::Sms as i32,
                        locale: String::new(),
                        content: Some(Content::Sms(SmsContent {
                            body: "Your cart is waiting".into(),
                            max_segments: 0,
                        })),
                    },
                ],
                ..Template::default()
            }),
            template_id: id.into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

/// An interaction of `kind` by `customer` at `at_us`.
fn recorded_at(
    customer: throughline_proto::common::v1::CustomerRef,
    id: &str,
    kind: &str,
    at_us: i64,
) -> RecordInteractionRequest {
    RecordInteractionRequest {
        interaction_id: id.into(),
        interaction: Some(Interaction {
            customer: Some(customer),
            channel: Channel::Web as i32,
            direction: Direction::Inbound as i32,
            r#type: kind.into(),
            occur_time: Some(throughline_runtime::time::timestamp(at_us)),
            ..Interaction::default()
        }),
    }
}

/// An interaction of `kind` by `customer`, now.
fn recorded(
    customer: throughline_proto::common::v1::CustomerRef,
    id: &str,
    kind: &str,
) -> RecordInteractionRequest {
    recorded_at(customer, id, kind, throughline_runtime::time::now_us())
}

async fn messages_of(clients: &mut throughline_harness::Clients, instance: &str) -> Vec<Message> {
    let mut messages = clients
        .distribution
        .list_messages(ListMessagesRequest {
            origin: instance.into(),
            ..ListMessagesRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    messages.sort_by_key(|m| m.channel);
    messages
}

/// The one instance of `journey` a customer has, once it exists.
async fn instance_of(client: &Client, journey: &str, customer: &str) -> String {
    let journey = format!("journeys/{journey}");
    eventually("an instance starts", || {
        let mut client = client.clone();
        let journey = journey.clone();
        async move {
            client
                .list_journey_instances(ListJourneyInstancesRequest {
                    customer: Some(profile(customer)),
                    journey,
                    ..ListJourneyInstancesRequest::default()
                })
                .await
                .unwrap()
                .into_inner()
                .instances
                .first()
                .map(|i| i.name.clone())
        }
    })
    .await
}

fn at(hours: i32) -> Option<TimeOfDay> {
    Some(TimeOfDay {
        hours,
        ..TimeOfDay::default()
    })
}

on_both_databases!(
    the_abandoned_cart_journey_of_the_brief,
    |db: TestDatabase| async move {
        let (suite, clock) = start(&ALL, &db).await;
        let mut journeys = client(&suite, "acme").await;
        let mut clients = suite.clients(&token("acme", &scopes())).await;
        create_template(&mut clients, "cart-reminder").await;
        let mut customers = Vec::new();
        for (given, email, phone) in [
            ("Ada", "ada@example.com", "+33612345678"),
            ("Bea", "bea@example.com", "+33612345679"),
        ] {
            let name = clients
                .profile
                .create_profile(CreateProfileRequest {
                    profile: Some(Profile {
                        given_name: given.into(),
                        email: email.into(),
                        phone: phone.into(),
                        preferences: Some(Preferences {
                            time_zone: "Europe/Paris".into(),
                            ..Preferences::default()
                        }),
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
            // Marketing email is allowed; SMS consent was never given.
            clients
                .profile
                .set_consent(SetConsentRequest {
                    profile: name.clone(),
                    consent: Some(Consent {
                        channel: Channel::Email as i32,
                        purpose: Purpose::Marketing as i32,
                        status: ConsentStatus::Granted as i32,
                        source: "checkout".into(),
                        ..Consent::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .unwrap();
            customers.push(name);
        }
        let daytime = node(
            "daytime",
            node::Kind::Wait(WaitNode {
                until: Some(wait_node::Until::LocalWindow(LocalTimeWindow {
                    start_time: at(9),
                    end_time: at(18),
                    days: Vec::new(),
                })),
            }),
            "email",
        );
        let mut cart = definition(
            interaction_trigger("cart.updated"),
            vec![
                wait("an-hour", HOUR, "daytime"),
                daytime,
                send(
                    "email",
                    "cart-reminder",
                    Channel::Email,
                    Purpose::Marketing,
                    "a-day",
                ),
                wait("a-day", DAY, "sms"),
                send("sms", "cart-reminder", Channel::Sms, Purpose::Marketing, ""),
            ],
        );
        cart.goal = Some(Goal {
            event: Some(interaction("order.placed", "")),
            window: None,
        });
        cart.policies = Some(JourneyPolicies {
            minimum_delay: Some(seconds(HOUR)),
            ..JourneyPolicies::default()
        });
        publish(&mut journeys, "abandoned-cart", cart).await;

        // 20:30 in Paris: both customers leave a cart; Bea orders at once.
        for (i, customer) in customers.iter().enumerate() {
            clients
                .interaction
                .record_interaction(recorded(
                    profile(customer),
                    &format!("cart-{i}"),
                    "cart.updated",
                ))
                .await
                .unwrap();
        }
        let ada = instance_of(&journeys, "abandoned-cart", &customers[0]).await;
        let bea = instance_of(&journeys, "abandoned-cart", &customers[1]).await;
        clients
            .interaction
            .record_interaction(recorded(profile(&customers[1]), "order-1", "order.placed"))
            .await
            .unwrap();
        let bea_done = instance_when(&journeys, &bea, "Bea converted", has_ended).await;
        assert_eq!(
            (bea_done.exit_reason.as_str(), bea_done.converted),
            ("goal", true)
        );

        // An hour on it is 21:30 in Paris: the email waits for the morning.
        let waiting =
            instance_when(&journeys, &ada, "waiting an hour", is_waiting_at("an-hour")).await;
        assert_eq!(waiting.wake_time.unwrap().seconds, T0_US / 1_000_000 + HOUR);
        advance(&clock, HOUR).await;
        let morning = instance_when(
            &journeys,
            &ada,
            "waiting for daytime",
            is_waiting_at("daytime"),
        )
        .await;
        // 09:00 in Paris on the 15th is 08:00 UTC.
        assert_eq!(morning.wake_time.unwrap().seconds, 1_768_464_000);
        assert!(
            messages_of(&mut clients, &ada).await.is_empty(),
            "nothing at night"
        );

        advance(&clock, 1_768_464_000 - (T0_US / 1_000_000 + HOUR)).await;
        let emailed = instance_when(&journeys, &ada, "emailed", is_waiting_at("a-day")).await;
        let email_step = &emailed.steps[2];
        assert_eq!(
            (email_step.node_id.as_str(), email_step.outcome.as_str()),
            ("email", "sent")
        );
        assert!(email_step.effect.starts_with("messages/"));

        advance(&clock, DAY).await;
        let done = instance_when(&journeys, &ada, "journey done", has_ended).await;
        assert_eq!(done.exit_reason, "completed");
        let sms_step = done.steps.last().unwrap();
        assert_eq!(sms_step.node_id, "sms");
        assert!(
            sms_step.outcome.starts_with("held:"),
            "no SMS consent: {sms_step:?}"
        );

        let messages = messages_of(&mut clients, &ada).await;
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(messages[0].channel, Channel::Email as i32);
        assert_ne!(messages[0].status, MessageStatus::Suppressed as i32);
        assert_eq!(messages[1].channel, Channel::Sms as i32);
        assert_eq!(messages[1].status, MessageStatus::Suppressed as i32);
        assert!(
            messages_of(&mut clients, &bea).await.is_empty(),
            "Bea ordered: nothing sent"
        );
        suite.stop().await;
    }
);

on_both_databases!(
    policies_delay_cap_quiet_hours_and_suppress_messages,
    |db: TestDatabase| async move {
        let (suite, clock) = start(&["interaction", "distribution", "orchestration"], &db).await;
        let mut journeys = client(&suite, "acme").await;
        let mut clients = suite.clients(&token("acme", &scopes())).await;
        create_template(&mut clients, "note").await;

        // A minimum delay of ten minutes and one message a week from this journey.
        let mut nudge = definition(
            api_trigger(),
            vec![
                send("first", "note", Channel::Email, Purpose::Service, "second"),
                send("second", "note", Channel::Email, Purpose::Service, ""),
            ],
        );
        nudge.policies = Some(JourneyPolicies {
            minimum_delay: Some(seconds(10 * MINUTE)),
            frequency_cap: Some(FrequencyCap {
                max_messages: 1,
                period: Some(seconds(7 * DAY)),
            }),
            ..JourneyPolicies::default()
        });
        publish(&mut journeys, "nudge", nudge).await;
        let ann = start_journey(&mut journeys, "nudge", email("ann@example.com")).await;
        let held = instance_when(
            &journeys,
            &ann.name,
            "held by the delay",
            is_waiting_at("first"),
        )
        .await;
        assert_eq!(
            held.wake_time.unwrap().seconds,
            T0_US / 1_000_000 + 10 * MINUTE
        );
        advance(&clock, 10 * MINUTE).await;
        let ann = instance_when(&journeys, &ann.name, "nudged", has_ended).await;
        assert_eq!(outcomes(&ann), ["sent", "skipped:frequency_cap"]);
        assert_eq!(messages_of(&mut clients, &ann.name).await.len(), 1);

        // Quiet hours of the journey, 19:00 to 08:00: a send at 19:40 waits for the morning.
        let mut quiet = definition(
            api_trigger(),
            vec![send("note", "note", Channel::Email, Purpose::Service, "")],
        );
        quiet.policies = Some(JourneyPolicies {
            quiet_hours: Some(LocalTimeWindow {
                start_time: at(19),
                end_time: at(8),
                days: Vec::new(),
            }),
            ..JourneyPolicies::default()
        });
        publish(&mut journeys, "quiet", quiet).await;
        let cat = start_journey(&mut journeys, "quiet", email("cat@example.com")).await;
        let night = instance_when(&journeys, &cat.name, "quiet hours", is_waiting_at("note")).await;
        // 08:00 UTC on the 15th (no profile: the customer's zone is UTC).
        assert_eq!(night.wake_time.unwrap().seconds, 1_768_464_000);
        advance(&clock, 1_768_464_000 - (T0_US / 1_000_000 + 10 * MINUTE)).await;
        let cat = instance_when(&journeys, &cat.name, "sent in the morning", has_ended).await;
        assert_eq!(outcomes(&cat), ["sent"]);

        // No coupon for what the customer just bought.
        let mut coupon = definition(
            api_trigger(),
            vec![send("coupon", "note", Channel::Email, Purpose::Service, "")],
        );
        coupon.policies = Some(JourneyPolicies {
            suppressions: vec![SuppressionRule {
                condition: "interactions.exists(i, i.type == 'order.placed')".into(),
                lookback: None,
                action: SuppressionAction::Exit as i32,
                reason: "bought".into(),
            }],
            ..JourneyPolicies::default()
        });
        publish(&mut journeys, "coupon", coupon).await;
        clients
            .interaction
            // An hour ago on the engine's clock, which the rule's seven-day lookback covers.
            .record_interaction(recorded_at(
                email("ben@example.com"),
                "ben-order",
                "order.placed",
                clock.now_us() - HOUR * 1_000_000,
            ))
            .await
            .unwrap();
        let ben = start_journey(&mut journeys, "coupon", email("ben@example.com")).await;
        let ben = instance_when(&journeys, &ben.name, "suppressed", has_ended).await;
        assert_eq!(ben.exit_reason, "bought");
        assert_eq!(outcomes(&ben), ["suppressed:bought"]);
        assert!(messages_of(&mut clients, &ben.name).await.is_empty());
        let dan = start_journey(&mut journeys, "coupon", email("dan@example.com")).await;
        let dan = instance_when(&journeys, &dan.name, "couponed", has_ended).await;
        assert_eq!(outcomes(&dan), ["sent"]);
        suite.stop().await;
    }
);
