use throughline_proto::common::v1::channel_selector::Selector;
use throughline_proto::common::v1::{Channel, Purpose};
use throughline_proto::orchestration::v1::node::Kind;
use throughline_proto::orchestration::v1::trigger::Kind as TriggerKind;
use throughline_proto::orchestration::v1::wait_node::Until;
use throughline_proto::orchestration::v1::{EntryMode, SuppressionAction};

use super::*;
use crate::definition::validate;

const CART: &str = r#"
id: abandoned-cart
display_name: Abandoned cart
description: Reminds customers of their cart.
definition:
  trigger:
    event:
      interaction_type: cart.updated
  entryPolicy:
    mode: ENTRY_MODE_ONCE_PER_INTERVAL
    reentryInterval: 86400s
  exit_conditions:
    - event: { interaction_type: order.placed }
      reason: ordered
  policies:
    suppressions:
      - condition: size(interactions) > 3
        action: SUPPRESSION_ACTION_SKIP_SEND
        reason: busy
  variables:
    coupon: SAVE10
    tries: 2
  start_node: wait-1h
  nodes:
    - id: wait-1h
      wait: { duration: 3600s }
      next: office-hours
    - id: office-hours
      wait:
        local_window:
          start_time: { hours: 9 }
          end_time: { hours: 18, minutes: 30 }
          days: [MONDAY, FRIDAY]
      next: email
    - id: email
      send:
        template: templates/cart
        channel: { preferred: { candidates: [CHANNEL_EMAIL, CHANNEL_SMS] } }
        purpose: PURPOSE_MARKETING
        variables: { total: trigger.data.attributes.total }
      next: wait-1d
    - id: wait-1d
      wait: { duration: 86400s }
      next: consent
    - id: consent
      branch:
        cases:
          - condition: profile.attributes.vip == true
            next: sms
        default_next: ""
    - id: sms
      send:
        template: templates/cart-sms
        channel: { channel: CHANNEL_SMS }
        purpose: PURPOSE_MARKETING
"#;

#[test]
fn reads_a_journey() {
    let journeys = read_journeys(CART).expect("journeys");
    assert_eq!(journeys.len(), 1);
    let (id, journey) = &journeys[0];
    assert_eq!(id, "abandoned-cart");
    assert_eq!(journey.name, "journeys/abandoned-cart");
    assert_eq!(journey.display_name, "Abandoned cart");
    assert_eq!(journey.description, "Reminds customers of their cart.");
    let definition = journey.definition.as_ref().expect("definition");
    match definition.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
        Some(TriggerKind::Event(matcher)) => assert_eq!(matcher.interaction_type, "cart.updated"),
        other => panic!("trigger {other:?}"),
    }
    let policy = definition.entry_policy.as_ref().expect("entry policy");
    assert_eq!(policy.mode, EntryMode::OncePerInterval as i32);
    assert_eq!(
        policy.reentry_interval.as_ref().map(|d| d.seconds),
        Some(86_400)
    );
    assert_eq!(definition.exit_conditions[0].reason, "ordered");
    let suppression = &definition.policies.as_ref().expect("policies").suppressions[0];
    assert_eq!(suppression.action, SuppressionAction::SkipSend as i32);
    let variables = throughline_runtime::json::struct_to_json(
        definition.variables.as_ref().expect("variables"),
    );
    assert_eq!(
        variables,
        serde_json::json!({"coupon": "SAVE10", "tries": 2})
    );
    assert_eq!(definition.start_node, "wait-1h");
    assert_eq!(definition.nodes.len(), 6);
    match &definition.nodes[0].kind {
        Some(Kind::Wait(wait)) => match &wait.until {
            Some(Until::Duration(d)) => assert_eq!(d.seconds, 3600),
            other => panic!("until {other:?}"),
        },
        other => panic!("kind {other:?}"),
    }
    match &definition.nodes[1].kind {
        Some(Kind::Wait(wait)) => match &wait.until {
            Some(Until::LocalWindow(window)) => {
                assert_eq!(window.start_time.as_ref().map(|t| t.hours), Some(9));
                assert_eq!(
                    window.end_time.as_ref().map(|t| (t.hours, t.minutes)),
                    Some((18, 30))
                );
                assert_eq!(window.days, [1, 5]);
            }
            other => panic!("until {other:?}"),
        },
        other => panic!("kind {other:?}"),
    }
    match &definition.nodes[2].kind {
        Some(Kind::Send(send)) => {
            assert_eq!(send.template, "templates/cart");
            assert_eq!(send.purpose, Purpose::Marketing as i32);
            assert_eq!(send.variables["total"], "trigger.data.attributes.total");
            match send.channel.as_ref().and_then(|c| c.selector.as_ref()) {
                Some(Selector::Preferred(p)) => {
                    assert_eq!(p.candidates, [Channel::Email as i32, Channel::Sms as i32])
                }
                other => panic!("channel {other:?}"),
            }
        }
        other => panic!("kind {other:?}"),
    }
    match &definition.nodes[4].kind {
        Some(Kind::Branch(branch)) => {
            assert_eq!(branch.cases[0].next, "sms");
            assert_eq!(branch.cases[0].condition, "profile.attributes.vip == true");
        }
        other => panic!("kind {other:?}"),
    }
    assert_eq!(validate::definition(definition, "definition"), Vec::new());
}

#[test]
fn reads_several_documents() {
    let text = "id: one\ndisplay_name: One\n---\n---\nid: two\ndisplayName: Two\n---\n";
    let journeys = read_journeys(text).expect("journeys");
    let ids: Vec<&str> = journeys.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["one", "two"]);
    assert_eq!(journeys[1].1.display_name, "Two");
    assert_eq!(read_journeys("").map(|j| j.len()), Ok(0));
}

#[test]
fn errors_name_the_document_and_the_problem() {
    let error = |text: &str| read_journeys(text).err().unwrap_or_default();
    assert!(error("id: a\n---\nid: Bad_Id\n").starts_with("document 2: id `Bad_Id`"));
    assert!(error("display_name: x\n").starts_with("document 1: id: required"));
    assert!(error("id: a\ncolour: red\n").contains("unknown key `colour`"));
    assert!(error("- 1\n- 2\n").contains("must be a mapping"));
    assert!(error("id: a\n---\nid: a\n").contains("appears twice"));
    assert!(error("id: a\n  b: [\n").starts_with("document 1: not valid YAML"));
    let unknown = error("id: a\ndefinition:\n  start: x\n");
    assert!(
        unknown.starts_with("document 1:") && unknown.contains("start"),
        "{unknown}"
    );
    let wrong = error("id: a\ndefinition:\n  holdout_percent: lots\n");
    assert!(wrong.starts_with("document 1:"), "{wrong}");
}

#[test]
fn the_example_journey_validates_clean() {
    let text = include_str!("../../../../examples/journeys/abandoned-cart.yaml");
    let journeys = read_journeys(text).expect("journeys");
    assert_eq!(journeys.len(), 1);
    let (id, journey) = &journeys[0];
    assert_eq!(id, "abandoned-cart");
    let definition = journey.definition.as_ref().expect("definition");
    assert_eq!(
        validate::definition(definition, "journey.definition"),
        Vec::new()
    );
    assert!(definition.nodes.len() >= 8);
}
