use proptest::prelude::*;
use prost_types::Duration;
use throughline_proto::common::v1::channel_selector::Selector;
use throughline_proto::common::v1::{
    Channel, ChannelSelector, LocalTimeWindow, PreferredChannel, Purpose,
};
use throughline_proto::google::r#type::TimeOfDay;
use throughline_proto::orchestration::v1::node::Kind;
use throughline_proto::orchestration::v1::wait_node::Until;
use throughline_proto::orchestration::v1::{
    AbSplitArm, AbSplitNode, BranchCase, BranchNode, EntryPolicy, EventMatcher, ExitCondition,
    ExitNode, FrequencyCap, Goal, JourneyPolicies, Node, SendNode, SuppressionRule, Trigger,
    UpdateProfileNode, WaitForEventNode, WaitNode, WebhookNode,
};

use super::*;

fn hours(h: i64) -> Option<Duration> {
    Some(Duration {
        seconds: h * 3600,
        nanos: 0,
    })
}

fn node(id: &str, kind: Kind, next: &str) -> Node {
    Node {
        id: id.into(),
        kind: Some(kind),
        next: next.into(),
        ..Node::default()
    }
}

fn email() -> Option<ChannelSelector> {
    Some(ChannelSelector {
        selector: Some(Selector::Channel(Channel::Email as i32)),
    })
}

fn send(template: &str, purpose: Purpose) -> Kind {
    Kind::Send(SendNode {
        template: format!("templates/{template}"),
        channel: email(),
        purpose: purpose as i32,
        variables: [(
            "total".to_owned(),
            "trigger.data.attributes.total".to_owned(),
        )]
        .into(),
        ..SendNode::default()
    })
}

fn wait(h: i64) -> Kind {
    Kind::Wait(WaitNode {
        until: hours(h).map(Until::Duration),
    })
}

fn time(hours: i32) -> Option<TimeOfDay> {
    Some(TimeOfDay {
        hours,
        ..TimeOfDay::default()
    })
}

fn matcher(interaction_type: &str) -> Option<EventMatcher> {
    Some(EventMatcher {
        interaction_type: interaction_type.into(),
        ..EventMatcher::default()
    })
}

/// An abandoned-cart journey using every node kind.
fn valid() -> JourneyDefinition {
    JourneyDefinition {
        trigger: Some(Trigger {
            kind: Some(TriggerKind::Event(EventMatcher {
                interaction_type: "cart.updated".into(),
                condition: "event.data.attributes.total > 0".into(),
                ..EventMatcher::default()
            })),
        }),
        entry_policy: Some(EntryPolicy {
            mode: EntryMode::OncePerInterval as i32,
            reentry_interval: hours(24 * 7),
            ..EntryPolicy::default()
        }),
        start_node: "wait-1h".into(),
        nodes: vec![
            node("wait-1h", wait(1), "office-hours"),
            node(
                "office-hours",
                Kind::Wait(WaitNode {
                    until: Some(Until::LocalWindow(LocalTimeWindow {
                        start_time: time(9),
                        end_time: time(18),
                        days: vec![1, 2, 3, 4, 5],
                    })),
                }),
                "reminder",
            ),
            node(
                "reminder",
                send("cart-reminder", Purpose::Marketing),
                "split",
            ),
            node(
                "split",
                Kind::AbSplit(AbSplitNode {
                    arms: vec![
                        AbSplitArm {
                            name: "a".into(),
                            weight: 1,
                            next: "await-reply".into(),
                        },
                        AbSplitArm {
                            name: "b".into(),
                            weight: 3,
                            next: "tag".into(),
                        },
                    ],
                }),
                "",
            ),
            node(
                "await-reply",
                Kind::WaitForEvent(WaitForEventNode {
                    event: Some(EventMatcher {
                        event_type: "inbound.received".into(),
                        ..EventMatcher::default()
                    }),
                    timeout: hours(24),
                    timeout_next: "vip".into(),
                    event_variable: "reply".into(),
                }),
                "tag",
            ),
            node(
                "vip",
                Kind::Branch(BranchNode {
                    cases: vec![BranchCase {
                        condition: "profile.attributes.tier == 'gold'".into(),
                        next: "crm".into(),
                        name: "gold".into(),
                    }],
                    default_next: "done".into(),
                }),
                "",
            ),
            node(
                "crm",
                Kind::Webhook(WebhookNode {
                    url: "https://crm.example.com/hooks/cart".into(),
                    method: "POST".into(),
                    headers: [("X-Source".to_owned(), "throughline".to_owned())].into(),
                    timeout: Some(Duration {
                        seconds: 10,
                        nanos: 0,
                    }),
                    max_attempts: 3,
                    result_variable: "crm_response".into(),
                    failure_next: "done".into(),
                    ..WebhookNode::default()
                }),
                "tag",
            ),
            node(
                "tag",
                Kind::UpdateProfile(UpdateProfileNode {
                    attributes: [("cart.reminded".to_owned(), "true".to_owned())].into(),
                }),
                "done",
            ),
            node(
                "done",
                Kind::Exit(ExitNode {
                    reason: "reminded".into(),
                }),
                "",
            ),
        ],
        goal: Some(Goal {
            event: matcher("order.placed"),
            window: hours(24 * 7),
        }),
        exit_conditions: vec![ExitCondition {
            event: matcher("order.placed"),
            reason: "ordered".into(),
        }],
        holdout_percent: 10.0,
        policies: Some(JourneyPolicies {
            minimum_delay: hours(1),
            quiet_hours: Some(LocalTimeWindow {
                start_time: time(21),
                end_time: time(8),
                days: Vec::new(),
            }),
            ignore_quiet_hours: false,
            frequency_cap: Some(FrequencyCap {
                max_messages: 2,
                period: hours(24 * 7),
            }),
            suppressions: vec![SuppressionRule {
                condition: "interactions.exists(i, i.type == 'order.placed')".into(),
                lookback: hours(24),
                action: SuppressionAction::Exit as i32,
                reason: "ordered".into(),
            }],
        }),
        variables: Some(throughline_runtime::json::json_to_struct(
            serde_json::json!({"coupon": "SAVE10"}),
        )),
    }
}

fn fields(definition: &JourneyDefinition) -> Vec<String> {
    super::definition(definition, "journey.definition")
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Violation fields, sorted: compared with a list in any order.
#[derive(Debug)]
struct Fields(Vec<String>);

impl<const N: usize> PartialEq<[&str; N]> for Fields {
    fn eq(&self, other: &[&str; N]) -> bool {
        let mut other: Vec<&str> = other.to_vec();
        other.sort_unstable();
        self.0 == other
    }
}

/// The violations' fields after `change`, without the common prefix.
fn after(change: impl FnOnce(&mut JourneyDefinition)) -> Fields {
    let mut definition = valid();
    change(&mut definition);
    let mut fields: Vec<String> = fields(&definition)
        .into_iter()
        .map(|f| f.trim_start_matches("journey.definition.").to_owned())
        .collect();
    fields.sort();
    Fields(fields)
}

fn kind_mut<'a>(definition: &'a mut JourneyDefinition, id: &str) -> &'a mut Kind {
    definition
        .nodes
        .iter_mut()
        .find(|n| n.id == id)
        .and_then(|n| n.kind.as_mut())
        .expect("node")
}

#[test]
fn valid_definition_is_clean() {
    assert_eq!(
        definition(&valid(), "journey.definition"),
        Vec::<FieldViolation>::new()
    );
}

#[test]
fn trigger_and_entry_policy() {
    assert_eq!(after(|d| d.trigger = None), ["trigger"]);
    assert_eq!(
        after(|d| {
            d.trigger = Some(Trigger {
                kind: Some(TriggerKind::Event(EventMatcher::default())),
            })
        }),
        ["trigger.event"]
    );
    assert_eq!(
        after(|d| {
            d.trigger = Some(Trigger {
                kind: Some(TriggerKind::Event(EventMatcher {
                    event_type: "Feedback.Detractor".into(),
                    condition: "foo == 1".into(),
                    ..EventMatcher::default()
                })),
            })
        }),
        ["trigger.event.event_type", "trigger.event.condition"]
    );
    assert_eq!(
        after(|d| {
            d.trigger = Some(Trigger {
                kind: Some(TriggerKind::SegmentEntered(
                    throughline_proto::orchestration::v1::SegmentTrigger {
                        segment: "vip".into(),
                    },
                )),
            })
        }),
        ["trigger.segment_entered.segment"]
    );
    assert_eq!(
        after(|d| d.entry_policy.as_mut().expect("policy").reentry_interval = None),
        ["entry_policy.reentry_interval"]
    );
    assert_eq!(
        after(|d| d.entry_policy.as_mut().expect("policy").mode = EntryMode::Always as i32),
        ["entry_policy.reentry_interval"]
    );
    assert_eq!(
        after(|d| {
            d.entry_policy.as_mut().expect("policy").reentry_interval = Some(Duration {
                seconds: -5,
                nanos: 0,
            })
        }),
        ["entry_policy.reentry_interval"]
    );
}

#[test]
fn graph_problems_point_at_their_place() {
    assert_eq!(after(|d| d.start_node.clear()), ["start_node"]);
    assert_eq!(after(|d| d.start_node = "nope".into()), ["start_node"]);
    assert_eq!(
        after(|d| d.nodes[7].next = "missing".into()),
        ["nodes[7].next"]
    );
    assert_eq!(
        after(|d| {
            if let Kind::AbSplit(split) = kind_mut(d, "split") {
                split.arms[1].next = "missing".into();
            }
        }),
        ["nodes[3].ab_split.arms[1].next"]
    );
    // The case after one without `next` keeps its own index.
    assert_eq!(
        after(|d| {
            if let Kind::Branch(branch) = kind_mut(d, "vip") {
                branch.cases.insert(
                    0,
                    BranchCase {
                        condition: "true".into(),
                        next: String::new(),
                        name: String::new(),
                    },
                );
                branch.cases[1].next = "missing".into();
            }
        }),
        [
            "nodes[5].branch.cases[1].next",
            "nodes[5].branch.cases[0].next",
            // `crm` was only reached through that case.
            "nodes[6].id",
        ]
    );
    assert_eq!(
        after(|d| d.nodes.push(node("orphan", wait(1), ""))),
        ["nodes[9].id"]
    );
    assert_eq!(
        after(|d| d.nodes.push(node("tag", wait(1), ""))),
        ["nodes[9].id"]
    );
    assert_eq!(
        after(|d| d.nodes[0].id = "Wait 1h".into()),
        ["nodes[0].id", "start_node"]
    );
    assert_eq!(after(|d| d.nodes[1].kind = None), ["nodes[1]"]);
    assert_eq!(
        after(|d| {
            d.nodes.clear();
            d.start_node.clear();
        }),
        ["nodes", "start_node"]
    );
    let too_many = after(|d| {
        for i in 0..200 {
            d.nodes.push(node(&format!("n{i}"), wait(1), ""));
        }
        d.nodes[8].next = "n0".into();
        d.nodes[8].kind = Some(wait(1));
    });
    assert!(too_many.0.contains(&"nodes".to_owned()));
}

#[test]
fn cycles_need_a_wait() {
    // tag → done becomes tag → crm → tag: no wait on the way.
    let fields = after(|d| {
        if let Kind::Webhook(webhook) = kind_mut(d, "crm") {
            webhook.failure_next = "tag".into();
        }
        d.nodes[7].next = "crm".into();
    });
    assert_eq!(fields, ["nodes[6].id"]);
    // Through a wait, a loop is fine: reminder again after the reply wait's timeout.
    assert_eq!(
        after(|d| {
            if let Kind::Webhook(webhook) = kind_mut(d, "crm") {
                webhook.failure_next = "wait-1h".into();
            }
        }),
        []
    );
    // A node that leads to itself.
    assert_eq!(after(|d| d.nodes[7].next = "tag".into()), ["nodes[7].id"]);
}

#[test]
fn node_fields() {
    assert_eq!(
        after(|d| {
            *kind_mut(d, "reminder") = Kind::Send(SendNode {
                template: "cart-reminder".into(),
                channel: Some(ChannelSelector {
                    selector: Some(Selector::Preferred(PreferredChannel {
                        candidates: vec![Channel::Sms as i32, 99],
                    })),
                }),
                purpose: 0,
                variables: [("bad name".to_owned(), "vars.".to_owned())].into(),
                ..SendNode::default()
            })
        }),
        [
            "nodes[2].send.template",
            "nodes[2].send.channel.preferred.candidates[1]",
            "nodes[2].send.purpose",
            "nodes[2].send.variables.bad name",
            "nodes[2].send.variables.bad name",
        ]
    );
    assert_eq!(
        after(|d| *kind_mut(d, "wait-1h") = Kind::Wait(WaitNode { until: None })),
        ["nodes[0].wait"]
    );
    assert_eq!(
        after(|d| *kind_mut(d, "wait-1h") = wait(24 * 366)),
        ["nodes[0].wait.duration"]
    );
    assert_eq!(
        after(|d| *kind_mut(d, "wait-1h") = wait(0)),
        ["nodes[0].wait.duration"]
    );
    assert_eq!(
        after(|d| {
            *kind_mut(d, "wait-1h") = Kind::Wait(WaitNode {
                until: Some(Until::Duration(Duration {
                    seconds: 1,
                    nanos: 2_000_000_000,
                })),
            })
        }),
        ["nodes[0].wait.duration"]
    );
    assert_eq!(
        after(|d| {
            *kind_mut(d, "office-hours") = Kind::Wait(WaitNode {
                until: Some(Until::LocalWindow(LocalTimeWindow {
                    start_time: time(24),
                    end_time: Some(TimeOfDay {
                        hours: 9,
                        minutes: 60,
                        ..TimeOfDay::default()
                    }),
                    days: vec![0, 8],
                })),
            })
        }),
        [
            "nodes[1].wait.local_window.start_time.hours",
            "nodes[1].wait.local_window.end_time.minutes",
            "nodes[1].wait.local_window.days[0]",
            "nodes[1].wait.local_window.days[1]",
        ]
    );
    assert_eq!(
        after(|d| {
            *kind_mut(d, "office-hours") = Kind::Wait(WaitNode {
                until: Some(Until::LocalWindow(LocalTimeWindow {
                    start_time: time(9),
                    end_time: time(9),
                    days: Vec::new(),
                })),
            })
        }),
        ["nodes[1].wait.local_window"]
    );
    assert_eq!(
        after(|d| {
            if let Kind::WaitForEvent(wait) = kind_mut(d, "await-reply") {
                wait.timeout = None;
                wait.event_variable = "1reply".into();
                wait.event.as_mut().expect("event").condition = "event.data.x +".into();
            }
        }),
        [
            "nodes[4].wait_for_event.event.condition",
            "nodes[4].wait_for_event.timeout",
            "nodes[4].wait_for_event.event_variable",
        ]
    );
    assert_eq!(
        after(|d| {
            if let Kind::Branch(branch) = kind_mut(d, "vip") {
                branch.cases[0].condition = "1 + 2".into();
            }
        }),
        ["nodes[5].branch.cases[0].condition"]
    );
    assert_eq!(
        after(|d| {
            if let Kind::Branch(branch) = kind_mut(d, "vip") {
                branch.cases.clear();
            }
        }),
        ["nodes[5].branch.cases", "nodes[6].id"]
    );
    assert_eq!(
        after(|d| {
            if let Kind::AbSplit(split) = kind_mut(d, "split") {
                split.arms[1].name = "a".into();
                split.arms[0].weight = 0;
            }
        }),
        [
            "nodes[3].ab_split.arms[0].weight",
            "nodes[3].ab_split.arms[1].name"
        ]
    );
    assert_eq!(
        after(|d| {
            if let Kind::AbSplit(split) = kind_mut(d, "split") {
                split.arms.truncate(1);
            }
        }),
        ["nodes[3].ab_split.arms"]
    );
    assert_eq!(
        after(|d| {
            *kind_mut(d, "tag") = Kind::UpdateProfile(UpdateProfileNode {
                attributes: [("bad key!".to_owned(), "1 +".to_owned())].into(),
            })
        }),
        [
            "nodes[7].update_profile.attributes.bad key!",
            "nodes[7].update_profile.attributes.bad key!",
        ]
    );
    assert_eq!(
        after(|d| { *kind_mut(d, "tag") = Kind::UpdateProfile(UpdateProfileNode::default()) }),
        ["nodes[7].update_profile.attributes"]
    );
    assert_eq!(
        after(|d| {
            *kind_mut(d, "tag") =
                Kind::RequestFeedback(throughline_proto::orchestration::v1::RequestFeedbackNode {
                    survey: "nps".into(),
                    channel: None,
                    template: "templates/".into(),
                })
        }),
        [
            "nodes[7].request_feedback.survey",
            "nodes[7].request_feedback.channel",
            "nodes[7].request_feedback.template",
        ]
    );
    assert_eq!(
        after(|d| {
            if let Kind::Webhook(webhook) = kind_mut(d, "crm") {
                webhook.url = "ftp://crm.example.com".into();
                webhook.method = "TRACE".into();
                webhook.headers.insert("Bad Header".into(), "x".into());
                webhook.timeout = Some(Duration {
                    seconds: 61,
                    nanos: 0,
                });
                webhook.max_attempts = 21;
                webhook.result_variable = "a-b".into();
            }
        }),
        [
            "nodes[6].webhook.url",
            "nodes[6].webhook.method",
            "nodes[6].webhook.headers.Bad Header",
            "nodes[6].webhook.timeout",
            "nodes[6].webhook.max_attempts",
            "nodes[6].webhook.result_variable",
        ]
    );
    assert_eq!(
        after(|d| {
            if let Kind::Webhook(webhook) = kind_mut(d, "crm") {
                webhook.url = "not a url".into();
            }
        }),
        ["nodes[6].webhook.url"]
    );
    assert_eq!(
        after(|d| *kind_mut(d, "done") = Kind::Exit(ExitNode {
            reason: "x".repeat(65)
        })),
        ["nodes[8].exit.reason"]
    );
}

#[test]
fn goal_exits_holdout_and_variables() {
    assert_eq!(
        after(|d| {
            d.goal = Some(Goal {
                event: None,
                window: Some(Duration {
                    seconds: -1,
                    nanos: 0,
                }),
            })
        }),
        ["goal.event", "goal.window"]
    );
    assert_eq!(
        after(|d| d.exit_conditions[0].reason.clear()),
        ["exit_conditions[0].reason"]
    );
    assert_eq!(after(|d| d.holdout_percent = 50.5), ["holdout_percent"]);
    assert_eq!(after(|d| d.holdout_percent = f64::NAN), ["holdout_percent"]);
    assert_eq!(after(|d| d.holdout_percent = -1.0), ["holdout_percent"]);
    assert_eq!(
        after(|d| {
            d.variables = Some(throughline_runtime::json::json_to_struct(
                serde_json::json!({"big": "x".repeat(70_000)}),
            ))
        }),
        ["variables"]
    );
}

fn policies(d: &mut JourneyDefinition) -> &mut JourneyPolicies {
    d.policies.as_mut().expect("policies")
}

#[test]
fn policy_rules() {
    assert_eq!(
        after(|d| policies(d).ignore_quiet_hours = true),
        ["policies.ignore_quiet_hours"]
    );
    // A service journey may send during quiet hours.
    assert_eq!(
        after(|d| {
            policies(d).ignore_quiet_hours = true;
            *kind_mut(d, "reminder") = send("cart-reminder", Purpose::Service);
        }),
        []
    );
    assert_eq!(
        after(|d| {
            let p = policies(d);
            p.minimum_delay = hours(24 * 400);
            p.quiet_hours = Some(LocalTimeWindow::default());
            p.frequency_cap = Some(FrequencyCap {
                max_messages: 0,
                period: None,
            });
        }),
        [
            "policies.minimum_delay",
            "policies.quiet_hours",
            "policies.frequency_cap.max_messages",
            "policies.frequency_cap.period",
        ]
    );
    assert_eq!(
        after(|d| {
            policies(d).suppressions = vec![SuppressionRule {
                condition: "event.type == 'x'".into(),
                lookback: hours(24 * 91),
                action: 0,
                reason: String::new(),
            }]
        }),
        [
            "policies.suppressions[0].condition",
            "policies.suppressions[0].lookback",
            "policies.suppressions[0].action",
            "policies.suppressions[0].reason",
        ]
    );
}

#[test]
fn paths_go_under_the_given_field() {
    let mut definition = valid();
    definition.start_node.clear();
    let violations = super::definition(&definition, "journey.definition");
    assert_eq!(violations[0].field, "journey.definition.start_node");
    let violations = super::definition(&definition, "");
    assert_eq!(violations[0].field, "start_node");
}

/// A valid journey of `n` steps: each a node of some kind, moving forward (waits may loop
/// back, which is allowed) and ending in an exit.
fn valid_journey() -> impl Strategy<Value = JourneyDefinition> {
    (1usize..30)
        .prop_flat_map(|n| (Just(n), prop::collection::vec((0u8..6, any::<u16>()), n)))
        .prop_map(|(n, steps)| {
            let id = |i: usize| format!("step-{i}");
            let mut nodes: Vec<Node> = steps
                .iter()
                .enumerate()
                .map(|(i, (kind, seed))| {
                    let next = id(i + 1);
                    let back = id(usize::from(*seed) % (i + 1));
                    let kind = match kind {
                        0 => wait(i64::from(*seed % 100) + 1),
                        1 => send("t", Purpose::Service),
                        2 => branch_to(&next),
                        3 => Kind::WaitForEvent(WaitForEventNode {
                            event: matcher("order.placed"),
                            timeout: hours(1),
                            timeout_next: back,
                            event_variable: String::new(),
                        }),
                        4 => Kind::AbSplit(AbSplitNode {
                            arms: vec![
                                AbSplitArm {
                                    name: "a".into(),
                                    weight: 1,
                                    next: next.clone(),
                                },
                                AbSplitArm {
                                    name: "b".into(),
                                    weight: i32::from(*seed % 5) + 1,
                                    next: next.clone(),
                                },
                            ],
                        }),
                        _ => Kind::UpdateProfile(UpdateProfileNode {
                            attributes: [("visits".to_owned(), "1".to_owned())].into(),
                        }),
                    };
                    node(&id(i), kind, &next)
                })
                .collect();
            nodes.push(node(&id(n), Kind::Exit(ExitNode::default()), ""));
            JourneyDefinition {
                trigger: Some(Trigger {
                    kind: Some(TriggerKind::Api(Default::default())),
                }),
                start_node: id(0),
                nodes,
                ..JourneyDefinition::default()
            }
        })
}

/// A branch whose one case and default both go to `next`.
fn branch_to(next: &str) -> Kind {
    Kind::Branch(BranchNode {
        cases: vec![BranchCase {
            condition: "size(vars) > 0".into(),
            next: next.into(),
            name: String::new(),
        }],
        default_next: next.into(),
    })
}

/// Definitions of random graphs and random strings: most are invalid in many ways.
fn arbitrary_definition() -> impl Strategy<Value = JourneyDefinition> {
    let id = prop_oneof!["[a-c]", "[a-z_-]{0,6}", "\\PC{0,8}"];
    let text = prop_oneof!["\\PC{0,12}", "[a-z.()=' 0-9]{0,20}"];
    let duration =
        (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| Duration { seconds, nanos });
    let node = (
        id.clone(),
        id.clone(),
        id.clone(),
        text.clone(),
        0u8..10,
        duration.clone(),
        any::<i32>(),
    )
        .prop_map(|(id, next, other, text, kind, duration, number)| {
            let kind = match kind {
                0 => Some(Kind::Wait(WaitNode {
                    until: Some(Until::Duration(duration)),
                })),
                1 => Some(Kind::Send(SendNode {
                    template: text.clone(),
                    purpose: number,
                    variables: [(text.clone(), text)].into(),
                    ..SendNode::default()
                })),
                2 => Some(Kind::Branch(BranchNode {
                    cases: vec![BranchCase {
                        condition: text,
                        next: other.clone(),
                        name: String::new(),
                    }],
                    default_next: other,
                })),
                3 => Some(Kind::WaitForEvent(WaitForEventNode {
                    event: Some(EventMatcher {
                        event_type: text.clone(),
                        interaction_type: other.clone(),
                        condition: text,
                    }),
                    timeout: Some(duration),
                    timeout_next: other,
                    event_variable: String::new(),
                })),
                4 => Some(Kind::AbSplit(AbSplitNode {
                    arms: vec![AbSplitArm {
                        name: text,
                        weight: number,
                        next: other,
                    }],
                })),
                5 => Some(Kind::Webhook(WebhookNode {
                    url: text.clone(),
                    method: text.clone(),
                    headers: [(text.clone(), text)].into(),
                    timeout: Some(duration),
                    max_attempts: number,
                    failure_next: other,
                    ..WebhookNode::default()
                })),
                6 => Some(Kind::UpdateProfile(UpdateProfileNode {
                    attributes: [(other, text)].into(),
                })),
                7 => Some(Kind::Wait(WaitNode {
                    until: Some(Until::LocalWindow(LocalTimeWindow {
                        start_time: Some(TimeOfDay {
                            hours: number,
                            minutes: number,
                            seconds: number,
                            nanos: number,
                        }),
                        end_time: None,
                        days: vec![number],
                    })),
                })),
                8 => Some(Kind::Exit(ExitNode { reason: text })),
                _ => None,
            };
            Node {
                id,
                kind,
                next,
                ..Node::default()
            }
        });
    (
        prop::collection::vec(node, 0..40),
        id,
        any::<f64>(),
        duration,
        "\\PC{0,12}",
    )
        .prop_map(
            |(nodes, start_node, holdout_percent, duration, text)| JourneyDefinition {
                trigger: Some(Trigger {
                    kind: Some(TriggerKind::Event(EventMatcher {
                        event_type: text.clone(),
                        condition: text.clone(),
                        ..EventMatcher::default()
                    })),
                }),
                entry_policy: Some(EntryPolicy {
                    mode: 2,
                    reentry_interval: Some(duration),
                    ..EntryPolicy::default()
                }),
                start_node,
                nodes,
                holdout_percent,
                policies: Some(JourneyPolicies {
                    minimum_delay: Some(duration),
                    suppressions: vec![SuppressionRule {
                        condition: text.clone(),
                        lookback: Some(duration),
                        action: 1,
                        reason: text,
                    }],
                    ..JourneyPolicies::default()
                }),
                ..JourneyDefinition::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_definitions_never_panic(definition in arbitrary_definition()) {
        let violations = super::definition(&definition, "journey.definition");
        for violation in violations {
            prop_assert!(violation.field.starts_with("journey.definition."));
            prop_assert!(!violation.description.is_empty());
        }
    }

    #[test]
    fn generated_valid_journeys_validate_clean(definition in valid_journey()) {
        prop_assert_eq!(super::definition(&definition, "journey.definition"), Vec::new());
    }
}
