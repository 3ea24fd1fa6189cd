//! Identity changes from the profile service, fed through the service's consumer handler:
//! after `profile.merged` the surviving profile's timeline includes the merged one's
//! interactions, after `profile.unmerged` they separate exactly as before, and after
//! `profile.erased` the customer's interactions and threads are gone.
#![allow(clippy::unwrap_used)]

mod interaction_support;

use interaction_support::*;
use prost::Message;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases};
use throughline_interaction::{
    PROFILE_EVENTS_CONSUMER, PROFILE_EVENTS_SOURCE, profile_events_handler,
};
use throughline_proto::common::v1::Channel;
use throughline_proto::event::v1::{Event, ProfileErased, ProfileMerged, ProfileUnmerged};
use throughline_proto::interaction::v1::*;
use throughline_runtime::events::{Applied, Consumer};

fn event<M: Message>(id: &str, kind: &str, subject: &str, name: &str, payload: &M) -> Event {
    Event {
        id: id.into(),
        source: "profile".into(),
        spec_version: "1.0".into(),
        r#type: kind.into(),
        subject: subject.into(),
        tenant: "acme".into(),
        data_content_type: "application/protobuf".into(),
        data: Some(prost_types::Any {
            type_url: format!("type.googleapis.com/throughline.event.v1.{name}"),
            value: payload.encode_to_vec(),
        }),
        ..Event::default()
    }
}

fn merged(id: &str, source: &str, target: &str) -> Event {
    event(
        id,
        "profile.merged",
        target,
        "ProfileMerged",
        &ProfileMerged {
            merge_event: format!("mergeEvents/{id}"),
            source_profile: source.into(),
            target_profile: target.into(),
        },
    )
}

fn unmerged(id: &str, source: &str, target: &str) -> Event {
    event(
        id,
        "profile.unmerged",
        target,
        "ProfileUnmerged",
        &ProfileUnmerged {
            merge_event: format!("mergeEvents/{id}"),
            source_profile: source.into(),
            target_profile: target.into(),
            merge_time: None,
        },
    )
}

async fn thread_names(client: &mut Client, customer: &str) -> Vec<String> {
    client
        .list_threads(ListThreadsRequest {
            customer: Some(profile(customer)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .threads
        .into_iter()
        .map(|t| t.name)
        .collect()
}

on_both_databases!(
    merges_join_timelines_unmerges_separate_them_and_erasure_deletes,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let mut other_tenant = interaction_support::client(&suite, "globex").await;
        let consumer = Consumer::new(
            "interaction",
            PROFILE_EVENTS_CONSUMER,
            database(&test_db).await,
        );
        let handler = profile_events_handler();
        let mut cursor = 0;
        let mut apply = |event: Event| {
            cursor += 1;
            let (consumer, handler) = (consumer.clone(), handler.clone());
            let position = format!("0-{cursor}");
            async move {
                consumer
                    .apply(PROFILE_EVENTS_SOURCE, &event, &position, &handler)
                    .await
                    .unwrap()
            }
        };

        // An anonymous visitor browses; the known customer has called before.
        for (index, seconds) in [10, 30, 50].into_iter().enumerate() {
            client
                .record_interaction(item(
                    &format!("anon-{index}"),
                    profile("anon"),
                    Channel::Web,
                    seconds,
                ))
                .await
                .unwrap();
        }
        for (index, seconds) in [20, 40].into_iter().enumerate() {
            client
                .record_interaction(item(
                    &format!("known-{index}"),
                    profile("known"),
                    Channel::Phone,
                    seconds,
                ))
                .await
                .unwrap();
        }
        client
            .create_thread(CreateThreadRequest {
                thread: Some(Thread {
                    customer: Some(profile("anon")),
                    display_name: "Cart".into(),
                    ..Thread::default()
                }),
                thread_id: "cart".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        other_tenant
            .record_interaction(item("g-1", profile("anon"), Channel::Web, 1))
            .await
            .unwrap();
        let known_before = timeline(&mut client, "known").await;
        let anon_before = timeline(&mut client, "anon").await;
        assert_eq!(known_before.len(), 2);

        assert_eq!(
            apply(merged("m1", "profiles/anon", "profiles/known")).await,
            Applied::Effect
        );
        let joined = timeline(&mut client, "known").await;
        let names: Vec<_> = joined.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "interactions/anon-2",
                "interactions/known-1",
                "interactions/anon-1",
                "interactions/known-0",
                "interactions/anon-0"
            ]
        );
        assert!(
            joined
                .iter()
                .all(|(_, profile)| profile == "profiles/known"),
            "{joined:?}"
        );
        assert_eq!(
            timeline(&mut client, "anon").await,
            joined,
            "the merged profile reads as the survivor"
        );
        assert_eq!(thread_names(&mut client, "known").await, ["threads/cart"]);
        // A redelivered event changes nothing.
        assert_eq!(
            apply(merged("m1", "profiles/anon", "profiles/known")).await,
            Applied::Duplicate
        );
        // Recorded for the merged profile afterwards: on the survivor's timeline.
        let late = client
            .record_interaction(item("anon-late", profile("anon"), Channel::Web, 60))
            .await
            .unwrap()
            .into_inner()
            .interaction
            .unwrap();
        assert_eq!(late.profile, "profiles/known");
        // Another tenant's profile of the same name is not merged.
        assert_eq!(timeline(&mut other_tenant, "anon").await.len(), 1);
        assert!(timeline(&mut other_tenant, "known").await.is_empty());

        assert_eq!(
            apply(unmerged("u1", "profiles/anon", "profiles/known")).await,
            Applied::Effect
        );
        assert_eq!(
            timeline(&mut client, "known").await,
            known_before,
            "exactly as before"
        );
        let mut anon_after = anon_before.clone();
        anon_after.insert(0, ("interactions/anon-late".into(), "profiles/anon".into()));
        assert_eq!(timeline(&mut client, "anon").await, anon_after);
        assert_eq!(
            thread_names(&mut client, "known").await,
            Vec::<String>::new()
        );
        assert_eq!(thread_names(&mut client, "anon").await, ["threads/cart"]);

        // Chains: anon into known, known into main; erasing main takes all three.
        client
            .record_interaction(item("main-0", profile("main"), Channel::Email, 5))
            .await
            .unwrap();
        client
            .record_interaction(item("bystander", profile("other"), Channel::Email, 5))
            .await
            .unwrap();
        apply(merged("m2", "profiles/anon", "profiles/known")).await;
        apply(merged("m3", "profiles/known", "profiles/main")).await;
        assert_eq!(timeline(&mut client, "main").await.len(), 7);
        assert_eq!(timeline(&mut client, "anon").await.len(), 7);
        // Undoing the second merge gives known back its own and anon's.
        apply(unmerged("u2", "profiles/known", "profiles/main")).await;
        assert_eq!(timeline(&mut client, "main").await.len(), 1);
        assert_eq!(timeline(&mut client, "known").await.len(), 6);
        apply(merged("m4", "profiles/known", "profiles/main")).await;

        let erased = event(
            "e1",
            "profile.erased",
            "profiles/main",
            "ProfileErased",
            &ProfileErased {
                profile: "profiles/main".into(),
                merged_profiles: vec!["profiles/known".into(), "profiles/anon".into()],
            },
        );
        assert_eq!(apply(erased).await, Applied::Effect);
        for customer in ["main", "known", "anon"] {
            assert!(
                timeline(&mut client, customer).await.is_empty(),
                "{customer}"
            );
            assert!(thread_names(&mut client, customer).await.is_empty());
        }
        assert_eq!(
            timeline(&mut client, "other").await.len(),
            1,
            "others keep theirs"
        );
        assert_eq!(
            timeline(&mut other_tenant, "anon").await.len(),
            1,
            "other tenants keep theirs"
        );
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) FROM interaction_interactions WHERE profile IN ('profiles/main', 'profiles/known', 'profiles/anon') AND tenant = 'acme'").await,
            0
        );
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) FROM interaction_profile_merges").await,
            0
        );
        suite.stop().await;
    }
);

/// Streams four batches of five page views of `customer`, ids starting with `prefix`; answers
/// how many were stored.
async fn stream_views(mut client: Client, prefix: &str, customer: &str) -> i32 {
    let batches: Vec<_> = (0..4)
        .map(|batch| RecordInteractionsRequest {
            sequence: batch + 1,
            requests: (0..5)
                .map(|i| {
                    item(
                        &format!("{prefix}-{batch}-{i}"),
                        profile(customer),
                        Channel::Web,
                        100 + i,
                    )
                })
                .collect(),
        })
        .collect();
    let mut acks = client
        .record_interactions(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut stored = 0;
    while let Some(ack) = acks.message().await.unwrap() {
        stored += ack.stored_count;
    }
    stored
}

on_both_databases!(
    streams_of_several_tenants_follow_each_tenants_merges,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let acme = client(&suite, "acme").await;
        let globex = client(&suite, "globex").await;
        let consumer = Consumer::new(
            "interaction",
            PROFILE_EVENTS_CONSUMER,
            database(&test_db).await,
        );
        assert_eq!(
            consumer
                .apply(
                    PROFILE_EVENTS_SOURCE,
                    &merged("m1", "profiles/anon", "profiles/known"),
                    "0-1",
                    &profile_events_handler(),
                )
                .await
                .unwrap(),
            Applied::Effect
        );

        // Both tenants stream at once, so their batches share commits; only acme merged anon.
        let (acme_stored, globex_stored) = tokio::join!(
            stream_views(acme.clone(), "acme", "anon"),
            stream_views(globex.clone(), "globex", "anon"),
        );
        assert_eq!((acme_stored, globex_stored), (20, 20));
        let (mut acme, mut globex) = (acme, globex);
        let on_known = timeline(&mut acme, "known").await;
        assert_eq!(on_known.len(), 20);
        assert!(on_known.iter().all(|(name, profile)| {
            name.starts_with("interactions/acme-") && profile == "profiles/known"
        }));
        let on_anon = timeline(&mut globex, "anon").await;
        assert_eq!(on_anon.len(), 20);
        assert!(on_anon.iter().all(|(name, profile)| {
            name.starts_with("interactions/globex-") && profile == "profiles/anon"
        }));
        assert!(timeline(&mut globex, "known").await.is_empty());
        suite.stop().await;
    }
);
