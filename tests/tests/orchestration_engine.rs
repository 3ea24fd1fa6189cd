//! The journey engine through the real gRPC API on SQLite and PostgreSQL, on a manual clock:
//! waits, branches and A/B splits; entry policies, idempotent starts, cancellation and the
//! holdout; migration of running instances between versions; waits for events with their
//! timeout, goals and exit conditions from the interaction service's events.
#![allow(clippy::unwrap_used)]

mod orchestration_engine_support;

use orchestration_engine_support::*;
use throughline_harness::{TestDatabase, on_both_databases, token, violations};
use throughline_proto::orchestration::v1::*;
use tonic::Code;
use tonic_types::StatusExt;

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

on_both_databases!(
    waits_branches_and_splits_run_on_the_injectable_clock,
    |db: TestDatabase| async move {
        let (suite, clock) = start(&["orchestration"], &db).await;
        let mut client = client(&suite, "acme").await;
        let split = node(
            "split",
            node::Kind::AbSplit(AbSplitNode {
                arms: vec![
                    AbSplitArm {
                        name: "a".into(),
                        weight: 1,
                        next: "exit-a".into(),
                    },
                    AbSplitArm {
                        name: "b".into(),
                        weight: 1,
                        next: "exit-b".into(),
                    },
                ],
            }),
            "",
        );
        let branch = node(
            "tier",
            node::Kind::Branch(BranchNode {
                cases: vec![BranchCase {
                    condition: "vars.tier == 'gold'".into(),
                    next: "exit-gold".into(),
                    name: "gold".into(),
                }],
                default_next: "split".into(),
            }),
            "",
        );
        let mut welcome = definition(
            api_trigger(),
            vec![
                wait("an-hour", HOUR, "tier"),
                branch,
                split,
                exit("exit-gold", "gold"),
                exit("exit-a", "a"),
                exit("exit-b", "b"),
            ],
        );
        welcome.entry_policy = Some(EntryPolicy {
            mode: EntryMode::Always as i32,
            ..EntryPolicy::default()
        });
        publish(&mut client, "welcome", welcome).await;

        let mut gold_request = start_request("welcome", email("gold@example.com"));
        gold_request.variables = Some(struct_of(&[("tier", "gold")]));
        let gold = client
            .start_journey(gold_request)
            .await
            .unwrap()
            .into_inner()
            .instance
            .unwrap();
        let silver = start_journey(&mut client, "welcome", email("silver@example.com")).await;
        assert_eq!(gold.version, 1);
        assert_eq!(gold.current_node, "an-hour");

        let waiting = instance_when(
            &client,
            &gold.name,
            "waiting an hour",
            is_waiting_at("an-hour"),
        )
        .await;
        assert_eq!(
            waiting.wake_time.unwrap().seconds,
            T0_US / 1_000_000 + HOUR,
            "wakes an hour after entry, on the injectable clock"
        );
        // Fifty-nine minutes on: nothing moves.
        advance(&clock, 59 * MINUTE).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(is_waiting_at("an-hour")(
            &instance(&mut client, &gold.name).await
        ));

        advance(&clock, MINUTE).await;
        let gold = instance_when(&client, &gold.name, "gold done", has_ended).await;
        assert_eq!(gold.state, JourneyInstanceState::Exited as i32);
        assert_eq!(gold.exit_reason, "gold");
        assert_eq!(outcomes(&gold), ["elapsed", "case:gold", "exit"]);
        assert_eq!(
            gold.steps
                .iter()
                .map(|s| s.node_id.as_str())
                .collect::<Vec<_>>(),
            ["an-hour", "tier", "exit-gold"]
        );

        let silver = instance_when(&client, &silver.name, "silver done", has_ended).await;
        let arm = silver.split_arms.get("split").cloned().unwrap();
        assert!(arm == "a" || arm == "b");
        assert_eq!(silver.exit_reason, arm, "the arm's exit node ended it");
        assert_eq!(
            outcomes(&silver),
            [
                "elapsed",
                "case:default",
                format!("arm:{arm}").as_str(),
                "exit"
            ]
        );
        suite.stop().await;
    }
);

on_both_databases!(
    entry_policies_idempotent_starts_cancellation_and_the_holdout,
    |db: TestDatabase| async move {
        let (suite, _clock) = start(&["orchestration"], &db).await;
        let mut client = client(&suite, "acme").await;
        // Once ever (the default).
        publish(
            &mut client,
            "once",
            definition(api_trigger(), vec![wait("day", DAY, "")]),
        )
        .await;
        let mut request = start_request("once", email("ada@example.com"));
        request.request_id = "start-ada".into();
        let first = client
            .start_journey(request.clone())
            .await
            .unwrap()
            .into_inner();
        let again = client.start_journey(request).await.unwrap().into_inner();
        assert_eq!(
            first.instance.unwrap().name,
            again.instance.as_ref().unwrap().name
        );
        let refused = client
            .start_journey(start_request("once", email("ada@example.com")))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(reason(&refused), "ENTRY_POLICY");

        // Always, but one at a time: a second start waits for the first to end.
        let mut always = definition(api_trigger(), vec![wait("day", DAY, "")]);
        always.entry_policy = Some(EntryPolicy {
            mode: EntryMode::Always as i32,
            ..EntryPolicy::default()
        });
        publish(&mut client, "always", always).await;
        let running = start_journey(&mut client, "always", email("bob@example.com")).await;
        let busy = client
            .start_journey(start_request("always", email("bob@example.com")))
            .await
            .unwrap_err();
        assert_eq!(reason(&busy), "ENTRY_POLICY");
        let cancelled = client
            .cancel_journey_instance(CancelJourneyInstanceRequest {
                name: running.name.clone(),
                reason: "asked".into(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .instance
            .unwrap();
        assert_eq!(cancelled.state, JourneyInstanceState::Cancelled as i32);
        assert_eq!(cancelled.exit_reason, "cancelled");
        assert_eq!(cancelled.steps.last().unwrap().outcome, "cancelled:asked");
        start_journey(&mut client, "always", email("bob@example.com")).await;

        // Other tenants see nothing.
        let mut other = suite
            .clients(&token(
                "globex",
                &["orchestration:read", "orchestration:write"],
            ))
            .await
            .orchestration;
        let hidden = other
            .get_journey_instance(GetJourneyInstanceRequest {
                name: cancelled.name.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound);
        let not_theirs = other
            .start_journey(start_request("always", email("eve@example.com")))
            .await
            .unwrap_err();
        assert_eq!(not_theirs.code(), Code::NotFound);

        // A holdout of 50%: a deterministic half enters, measured but never contacted.
        let mut held = definition(api_trigger(), vec![wait("day", DAY, "")]);
        held.holdout_percent = 50.0;
        publish(&mut client, "held", held).await;
        let mut holdout = 0;
        for i in 0..40 {
            let instance =
                start_journey(&mut client, "held", email(&format!("c{i}@example.com"))).await;
            if instance.holdout {
                holdout += 1;
                assert_eq!(instance.state, JourneyInstanceState::Exited as i32);
                assert_eq!(instance.exit_reason, "holdout");
            } else {
                assert_eq!(instance.state, JourneyInstanceState::Running as i32);
            }
        }
        assert!((8..=32).contains(&holdout), "{holdout} of 40 held out");

        // Bad input names its fields.
        let bad = client
            .start_journey(StartJourneyRequest {
                journey: "trips/x".into(),
                ..StartJourneyRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&bad), ["journey", "customer"]);
        let listed = client
            .list_journey_instances(ListJourneyInstancesRequest {
                customer: Some(email("bob@example.com")),
                ..ListJourneyInstancesRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .instances;
        assert_eq!(listed.len(), 2);
        let start = |i: &JourneyInstance| {
            let t = i.start_time.unwrap();
            (t.seconds, t.nanos)
        };
        assert!(start(&listed[0]) >= start(&listed[1]), "newest first");
        suite.stop().await;
    }
);

on_both_databases!(
    running_instances_migrate_all_or_nothing_by_an_explicit_mapping,
    |db: TestDatabase| async move {
        let (suite, clock) = start(&["orchestration"], &db).await;
        let mut client = client(&suite, "acme").await;
        let mut v1 = definition(api_trigger(), vec![wait("first", HOUR, "done")]);
        v1.nodes.push(exit("done", "v1"));
        v1.entry_policy = Some(EntryPolicy {
            mode: EntryMode::Always as i32,
            allow_concurrent_instances: true,
            ..EntryPolicy::default()
        });
        publish(&mut client, "move", v1.clone()).await;
        let mut names = Vec::new();
        for i in 0..3 {
            let instance =
                start_journey(&mut client, "move", email(&format!("m{i}@example.com"))).await;
            instance_when(&client, &instance.name, "waiting", is_waiting_at("first")).await;
            names.push(instance.name);
        }
        let mut v2 = v1.clone();
        v2.nodes = vec![wait("hold", 2 * HOUR, "finish"), exit("finish", "v2")];
        v2.start_node = "hold".into();
        client
            .update_journey(UpdateJourneyRequest {
                journey: Some(Journey {
                    name: "journeys/move".into(),
                    display_name: "move".into(),
                    definition: Some(v2),
                    ..Journey::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["definition".into()],
                }),
                validate_only: false,
            })
            .await
            .unwrap();
        assert_eq!(publish_draft(&mut client, "move").await, 2);

        let migrate =
            |mapping: &[(&str, &str)], validate_only: bool| MigrateJourneyInstancesRequest {
                journey: "journeys/move".into(),
                from_version: 1,
                to_version: 0,
                node_mapping: mapping
                    .iter()
                    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                    .collect(),
                validate_only,
                request_id: String::new(),
            };
        let unmapped = client
            .migrate_journey_instances(migrate(&[], false))
            .await
            .unwrap_err();
        assert_eq!(violations(&unmapped), ["node_mapping[first]"]);
        let wrong_kind = client
            .migrate_journey_instances(migrate(&[("first", "finish")], false))
            .await
            .unwrap_err();
        assert_eq!(violations(&wrong_kind), ["node_mapping[first]"]);
        let dry = client
            .migrate_journey_instances(migrate(&[("first", "hold")], true))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(dry.migrated_count, 3);
        assert_eq!(
            instance(&mut client, &names[0]).await.version,
            1,
            "validate_only moves nothing"
        );

        let moved = client
            .migrate_journey_instances(migrate(&[("first", "hold")], false))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(moved.migrated_count, 3);
        assert_eq!(moved.migrated_by_node.get("first"), Some(&3));
        for name in &names {
            let moved = instance(&mut client, name).await;
            assert_eq!((moved.version, moved.current_node.as_str()), (2, "hold"));
        }
        // The wake time they had stands; then they finish on version 2's path.
        advance(&clock, HOUR).await;
        for name in &names {
            let done = instance_when(&client, name, "finished", has_ended).await;
            assert_eq!(done.exit_reason, "v2");
        }
        suite.stop().await;
    }
);

on_both_databases!(
    events_start_instances_end_waits_count_goals_and_exit,
    |db: TestDatabase| async move {
        let (suite, clock) = start(&["interaction", "orchestration"], &db).await;
        let mut client = client(&suite, "acme").await;
        let mut interactions = suite
            .clients(&token("acme", &["interaction:read", "interaction:write"]))
            .await
            .interaction;
        let mut cart = definition(
            interaction_trigger("cart.updated"),
            vec![
                node(
                    "ask",
                    node::Kind::WaitForEvent(WaitForEventNode {
                        event: Some(interaction(
                            "chat.reply",
                            "event.data.attributes.answer == 'yes'",
                        )),
                        timeout: Some(seconds(HOUR)),
                        timeout_next: "no".into(),
                        event_variable: "reply".into(),
                    }),
                    "yes",
                ),
                exit("yes", "said-yes"),
                exit("no", "no-answer"),
            ],
        );
        cart.goal = Some(Goal {
            event: Some(interaction("order.placed", "")),
            window: None,
        });
        cart.exit_conditions = vec![ExitCondition {
            event: Some(interaction("account.closed", "")),
            reason: "closed".into(),
        }];
        publish(&mut client, "cart", cart).await;
        for customer in ["c1", "c2", "c3", "c4"] {
            interactions
                .record_interaction(record(
                    &format!("profiles/{customer}"),
                    &format!("{customer}-cart"),
                    "cart.updated",
                    "",
                ))
                .await
                .unwrap();
        }
        let mut started = std::collections::HashMap::new();
        for customer in ["c1", "c2", "c3", "c4"] {
            let name = eventually("the cart starts an instance", || {
                let mut client = client.clone();
                async move {
                    let listed = client
                        .list_journey_instances(ListJourneyInstancesRequest {
                            customer: Some(profile(&format!("profiles/{customer}"))),
                            ..ListJourneyInstancesRequest::default()
                        })
                        .await
                        .unwrap()
                        .into_inner()
                        .instances;
                    listed.first().map(|i| i.name.clone())
                }
            })
            .await;
            instance_when(&client, &name, "waiting for a reply", is_waiting_at("ask")).await;
            started.insert(customer, name);
        }
        let record_for = |customer: &str, id: &str, kind: &str, answer: &str| {
            record(&format!("profiles/{customer}"), id, kind, answer)
        };
        // c1: a reply that does not meet the condition, then one that does.
        interactions
            .record_interaction(record_for("c1", "c1-r1", "chat.reply", "no"))
            .await
            .unwrap();
        interactions
            .record_interaction(record_for("c1", "c1-r2", "chat.reply", "yes"))
            .await
            .unwrap();
        let c1 = instance_when(&client, &started["c1"], "c1 answered", has_ended).await;
        assert_eq!(c1.exit_reason, "said-yes");
        assert_eq!(outcomes(&c1), ["event", "exit"]);
        // The matching event is kept in vars.reply.
        let vars = throughline_runtime::json::struct_to_json(&c1.variables.unwrap());
        assert_eq!(vars["reply"]["type"], "interaction.recorded");
        assert_eq!(vars["reply"]["data"]["attributes"]["answer"], "yes");
        // c2 orders: the goal exits it and counts a conversion.
        interactions
            .record_interaction(record_for("c2", "c2-order", "order.placed", ""))
            .await
            .unwrap();
        let c2 = instance_when(&client, &started["c2"], "c2 converted", has_ended).await;
        assert_eq!((c2.exit_reason.as_str(), c2.converted), ("goal", true));
        // c4 closes the account: an exit condition.
        interactions
            .record_interaction(record_for("c4", "c4-closed", "account.closed", ""))
            .await
            .unwrap();
        let c4 = instance_when(&client, &started["c4"], "c4 exited", has_ended).await;
        assert_eq!((c4.exit_reason.as_str(), c4.converted), ("closed", false));
        // c3 never answers: the timeout path.
        advance(&clock, HOUR).await;
        let c3 = instance_when(&client, &started["c3"], "c3 timed out", has_ended).await;
        assert_eq!(c3.exit_reason, "no-answer");
        assert_eq!(outcomes(&c3), ["timeout", "exit"]);
        // An order after the end still converts within the goal's window.
        interactions
            .record_interaction(record_for("c3", "c3-order", "order.placed", ""))
            .await
            .unwrap();
        instance_when(&client, &started["c3"], "c3 converted late", |i| {
            i.converted
        })
        .await;
        // Once per customer (the default): another cart starts nothing new for c1.
        interactions
            .record_interaction(record_for("c1", "c1-cart-2", "cart.updated", ""))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let c1_instances = client
            .list_journey_instances(ListJourneyInstancesRequest {
                customer: Some(profile("profiles/c1")),
                ..ListJourneyInstancesRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .instances;
        assert_eq!(c1_instances.len(), 1);
        suite.stop().await;
    }
);
