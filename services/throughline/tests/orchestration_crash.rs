//! The real `throughline` binary running the orchestration service, SIGKILLed between the
//! messages a journey sent and their bookkeeping: after a restart on the same database, the
//! engine repeats the steps with the same idempotency keys and the distribution service (its
//! own process) holds exactly one message per step.
//!
//! The orchestrator runs with the fault point `THROUGHLINE_FAULT_HOLD_AFTER_SEND`: a round that
//! sent messages logs it and stops before recording them, which is where the test kills it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use throughline_harness::TestDatabase;
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::common::v1::{
    Channel, ChannelSelector, CustomerRef, Identifier, IdentifierType, Purpose, channel_selector,
};
use throughline_proto::distribution::v1::distribution_service_client::DistributionServiceClient;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::{
    CreateTemplateRequest, EmailContent, ListMessagesRequest, Template, TemplateVariant,
};
use throughline_proto::orchestration::v1::orchestration_service_client::OrchestrationServiceClient;
use throughline_proto::orchestration::v1::*;

const CUSTOMERS: usize = 5;

fn send(id: &str, next: &str) -> Node {
    Node {
        id: id.into(),
        kind: Some(node::Kind::Send(SendNode {
            template: "templates/note".into(),
            channel: Some(ChannelSelector {
                selector: Some(channel_selector::Selector::Channel(Channel::Email as i32)),
            }),
            purpose: Purpose::Service as i32,
            ..SendNode::default()
        })),
        next: next.into(),
        ..Node::default()
    }
}

fn customer(index: usize) -> CustomerRef {
    CustomerRef {
        customer: Some(Customer::Identifier(Identifier {
            r#type: IdentifierType::Email as i32,
            value: format!("c{index}@example.com"),
            source: String::new(),
        })),
    }
}

async fn killed_between_send_and_bookkeeping_sends_once(orchestration_db: &str) {
    let distribution = common::spawn(&["--services", "distribution"], &[]);
    let mut messages = DistributionServiceClient::new(
        common::authorised(
            distribution.endpoint(),
            &["distribution:read", "distribution:write"],
        )
        .await,
    );
    messages
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: "Note".into(),
                variants: vec![TemplateVariant {
                    channel: Channel::Email as i32,
                    locale: String::new(),
                    content: Some(Content::Email(EmailContent {
                        subject: "A note".into(),
                        html_body: "<p>Hello</p>".into(),
                        text_body: String::new(),
                    })),
                }],
                ..Template::default()
            }),
            template_id: "note".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();

    let endpoint = distribution.endpoint();
    let env = |fault: bool| {
        let mut env = vec![
            ("THROUGHLINE__DATABASE__URL", orchestration_db.to_owned()),
            ("THROUGHLINE__ENDPOINTS__DISTRIBUTION", endpoint.clone()),
            // A killed engine's claims come back quickly.
            ("THROUGHLINE__ORCHESTRATION__ENGINE__LEASE", "1s".to_owned()),
            (
                "THROUGHLINE__ORCHESTRATION__ENGINE__POLL_INTERVAL",
                "100ms".to_owned(),
            ),
        ];
        if fault {
            env.push(("THROUGHLINE_FAULT_HOLD_AFTER_SEND", "1".to_owned()));
        }
        env
    };
    let spawn = |fault: bool| {
        let env = env(fault);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        common::spawn(&["--services", "orchestration"], &env)
    };
    let mut orchestrator = spawn(true);
    let mut journeys = OrchestrationServiceClient::new(
        common::authorised(
            orchestrator.endpoint(),
            &["orchestration:read", "orchestration:write"],
        )
        .await,
    );
    journeys
        .create_journey(CreateJourneyRequest {
            journey: Some(Journey {
                display_name: "Two notes".into(),
                definition: Some(JourneyDefinition {
                    trigger: Some(Trigger {
                        kind: Some(trigger::Kind::Api(ApiTrigger {})),
                    }),
                    start_node: "first".into(),
                    nodes: vec![send("first", "second"), send("second", "")],
                    ..JourneyDefinition::default()
                }),
                ..Journey::default()
            }),
            journey_id: "notes".into(),
            ..CreateJourneyRequest::default()
        })
        .await
        .unwrap();
    journeys
        .publish_journey(PublishJourneyRequest {
            name: "journeys/notes".into(),
            ..PublishJourneyRequest::default()
        })
        .await
        .unwrap();
    let mut instances = Vec::new();
    for index in 0..CUSTOMERS {
        let instance = journeys
            .start_journey(StartJourneyRequest {
                journey: "journeys/notes".into(),
                customer: Some(customer(index)),
                ..StartJourneyRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .instance
            .unwrap();
        instances.push(instance.name);
    }

    // The engine sends, then holds at the fault point: kill it there.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = orchestrator
            .logs
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the engine never reached the fault point");
        if line.contains("fault point: messages sent, bookkeeping held") {
            break;
        }
    }
    orchestrator.signal("KILL");
    let status = orchestrator.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), None, "killed by a signal: {status:?}");
    let mut sent_before = 0;
    for name in &instances {
        sent_before += count(&mut messages, name).await;
    }
    assert!(sent_before > 0, "messages went out before the kill");

    // Restarted without the fault: the steps run again and their bookkeeping lands.
    let restarted = spawn(false);
    let mut journeys = OrchestrationServiceClient::new(
        common::authorised(restarted.endpoint(), &["orchestration:read"]).await,
    );
    for name in &instances {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let instance = loop {
            let instance = journeys
                .get_journey_instance(GetJourneyInstanceRequest { name: name.clone() })
                .await
                .unwrap()
                .into_inner()
                .instance
                .unwrap();
            if instance.state == JourneyInstanceState::Exited as i32 {
                break instance;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never finished: {instance:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let outcomes: Vec<&str> = instance.steps.iter().map(|s| s.outcome.as_str()).collect();
        assert_eq!(outcomes, ["sent", "sent"], "{name}");
        assert_eq!(
            count(&mut messages, name).await,
            2,
            "{name}: exactly one message per step"
        );
    }
    eprintln!(
        "orchestration crash: {sent_before} messages sent before SIGKILL, {} after restart \
         ({CUSTOMERS} instances, 2 steps each)",
        2 * CUSTOMERS
    );
}

async fn count(client: &mut DistributionServiceClient<common::Authorised>, origin: &str) -> usize {
    client
        .list_messages(ListMessagesRequest {
            origin: origin.into(),
            ..ListMessagesRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/orchestration.db", data.path().display());
    killed_between_send_and_bookkeeping_sends_once(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let database = TestDatabase::postgres().await;
    killed_between_send_and_bookkeeping_sends_once(database.url()).await;
}
