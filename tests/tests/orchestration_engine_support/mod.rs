//! What the engine tests share: suites on a manual clock, journey builders, starting and
//! reading instances, and polling until the engine has done something.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::time::Duration;

use throughline_harness::{Authenticated, TestDatabase, TestSuite, token};
use throughline_orchestration::Clock;
use throughline_proto::common::v1::channel_selector::Selector;
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::common::v1::{
    Channel, ChannelSelector, CustomerRef, Direction, Identifier, IdentifierType, Purpose,
};
use throughline_proto::interaction::v1::{Interaction, RecordInteractionRequest};
use throughline_proto::orchestration::v1::orchestration_service_client::OrchestrationServiceClient;
use throughline_proto::orchestration::v1::*;

pub type Client = OrchestrationServiceClient<Authenticated>;

/// 2026-01-14T19:30:00Z, a Wednesday evening: 20:30 in Paris.
pub const T0_US: i64 = 1_768_419_000_000_000;
pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3_600;
pub const DAY: i64 = 86_400;

/// Starts `services` on `db` with the orchestration engine on a manual clock at [`T0_US`],
/// polling often so that tests wait little.
pub async fn start(services: &[&str], db: &TestDatabase) -> (TestSuite, Clock) {
    let clock = Clock::manual(T0_US);
    let mut config = TestSuite::config(
        services,
        db,
        &[("THROUGHLINE__ORCHESTRATION__ENGINE__POLL_INTERVAL", "50ms")],
    );
    config.orchestration.clock = clock.clone();
    (TestSuite::start_config(config).await, clock)
}

pub async fn client(suite: &TestSuite, tenant: &str) -> Client {
    suite
        .clients(&token(
            tenant,
            &[
                "orchestration:read",
                "orchestration:write",
                "orchestration:admin",
            ],
        ))
        .await
        .orchestration
}

pub fn seconds(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

pub fn node(id: &str, kind: node::Kind, next: &str) -> Node {
    Node {
        id: id.into(),
        kind: Some(kind),
        next: next.into(),
        ..Node::default()
    }
}

pub fn wait(id: &str, secs: i64, next: &str) -> Node {
    node(
        id,
        node::Kind::Wait(WaitNode {
            until: Some(wait_node::Until::Duration(seconds(secs))),
        }),
        next,
    )
}

pub fn exit(id: &str, reason: &str) -> Node {
    node(
        id,
        node::Kind::Exit(ExitNode {
            reason: reason.into(),
        }),
        "",
    )
}

pub fn channel(channel: Channel) -> Option<ChannelSelector> {
    Some(ChannelSelector {
        selector: Some(Selector::Channel(channel as i32)),
    })
}

pub fn send(id: &str, template: &str, on: Channel, purpose: Purpose, next: &str) -> Node {
    node(
        id,
        node::Kind::Send(SendNode {
            template: format!("templates/{template}"),
            channel: channel(on),
            purpose: purpose as i32,
            ..SendNode::default()
        }),
        next,
    )
}

pub fn interaction(kind: &str, condition: &str) -> EventMatcher {
    EventMatcher {
        interaction_type: kind.into(),
        condition: condition.into(),
        ..EventMatcher::default()
    }
}

pub fn api_trigger() -> Option<Trigger> {
    Some(Trigger {
        kind: Some(trigger::Kind::Api(ApiTrigger {})),
    })
}

pub fn interaction_trigger(kind: &str) -> Option<Trigger> {
    Some(Trigger {
        kind: Some(trigger::Kind::Event(interaction(kind, ""))),
    })
}

pub fn definition(trigger: Option<Trigger>, nodes: Vec<Node>) -> JourneyDefinition {
    JourneyDefinition {
        trigger,
        start_node: nodes[0].id.clone(),
        nodes,
        ..JourneyDefinition::default()
    }
}

/// Creates `journeys/{id}` with `definition` and publishes it; returns the version.
pub async fn publish(client: &mut Client, id: &str, definition: JourneyDefinition) -> i32 {
    client
        .create_journey(CreateJourneyRequest {
            journey: Some(Journey {
                display_name: id.into(),
                definition: Some(definition),
                ..Journey::default()
            }),
            journey_id: id.into(),
            ..CreateJourneyRequest::default()
        })
        .await
        .unwrap();
    publish_draft(client, id).await
}

pub async fn publish_draft(client: &mut Client, id: &str) -> i32 {
    client
        .publish_journey(PublishJourneyRequest {
            name: format!("journeys/{id}"),
            ..PublishJourneyRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap()
        .version
}

pub fn email(address: &str) -> CustomerRef {
    CustomerRef {
        customer: Some(Customer::Identifier(Identifier {
            r#type: IdentifierType::Email as i32,
            value: address.into(),
            source: String::new(),
        })),
    }
}

pub fn profile(name: &str) -> CustomerRef {
    CustomerRef {
        customer: Some(Customer::Profile(name.into())),
    }
}

pub fn start_request(journey: &str, customer: CustomerRef) -> StartJourneyRequest {
    StartJourneyRequest {
        journey: format!("journeys/{journey}"),
        customer: Some(customer),
        ..StartJourneyRequest::default()
    }
}

/// Starts `journey` for `customer`; returns the instance.
pub async fn start_journey(
    client: &mut Client,
    journey: &str,
    customer: CustomerRef,
) -> JourneyInstance {
    client
        .start_journey(start_request(journey, customer))
        .await
        .unwrap()
        .into_inner()
        .instance
        .unwrap()
}

pub async fn instance(client: &mut Client, name: &str) -> JourneyInstance {
    client
        .get_journey_instance(GetJourneyInstanceRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .instance
        .unwrap()
}

/// Polls `probe` until it returns `Some` (15 s at most).
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..300 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// Waits until the instance satisfies `test`; returns it.
pub async fn instance_when(
    client: &Client,
    name: &str,
    what: &str,
    test: impl Fn(&JourneyInstance) -> bool,
) -> JourneyInstance {
    eventually(what, || {
        let mut client = client.clone();
        let name = name.to_owned();
        let test = &test;
        async move {
            let found = instance(&mut client, &name).await;
            test(&found).then_some(found)
        }
    })
    .await
}

pub fn is_waiting_at(node: &str) -> impl Fn(&JourneyInstance) -> bool + '_ {
    move |i| i.state == JourneyInstanceState::Waiting as i32 && i.current_node == node
}

pub fn has_ended(i: &JourneyInstance) -> bool {
    i.state >= JourneyInstanceState::Exited as i32
}

/// The steps' outcomes, in order.
pub fn outcomes(instance: &JourneyInstance) -> Vec<String> {
    instance.steps.iter().map(|s| s.outcome.clone()).collect()
}

/// Moves the clock and gives the engine a moment to notice that nothing else is due.
pub async fn advance(clock: &Clock, secs: i64) {
    clock.advance(Duration::from_secs(u64::try_from(secs).unwrap()));
}

pub fn struct_of(pairs: &[(&str, &str)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: pairs
            .iter()
            .map(|(key, value)| {
                (
                    (*key).to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue((*value).to_owned())),
                    },
                )
            })
            .collect(),
    }
}

/// An inbound web interaction of `kind` by `customer` (a profile name) with an `answer`.
pub fn record(customer: &str, id: &str, kind: &str, answer: &str) -> RecordInteractionRequest {
    RecordInteractionRequest {
        interaction_id: id.into(),
        interaction: Some(Interaction {
            customer: Some(profile(customer)),
            channel: Channel::Web as i32,
            direction: Direction::Inbound as i32,
            r#type: kind.into(),
            occur_time: Some(throughline_runtime::time::timestamp(
                throughline_runtime::time::now_us(),
            )),
            attributes: Some(struct_of(&[("answer", answer)])),
            ..Interaction::default()
        }),
    }
}
