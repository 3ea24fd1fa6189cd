//! The relay from a producer's outbox to NATS JetStream: every event published once and in
//! log order, even when a relay died after publishing and before storing its cursor; and
//! retention never prunes what the relay has yet to publish.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use prost::Message;
use sea_orm::TransactionTrait;
use throughline_harness::{TestDatabase, TestNats, TestSuite, on_both_databases};
use throughline_proto::event::v1::Event;
use throughline_runtime::db;
use throughline_runtime::events::{Filter, Outbox, Position, Relay, Round, prune};

const EVENTS: usize = 50;

fn event(index: usize) -> Event {
    Event {
        id: format!("evt-{index:04}"),
        source: "profile".into(),
        spec_version: "1.0".into(),
        r#type: if index.is_multiple_of(2) {
            "profile.created".into()
        } else {
            "profile.updated".into()
        },
        subject: format!("profiles/p{index}"),
        tenant: "acme".into(),
        ..Event::default()
    }
}

/// The profile database, migrated, holding `EVENTS` events in its outbox.
async fn producer_with_events(test_db: &TestDatabase) -> sea_orm::DatabaseConnection {
    producer_with(test_db, EVENTS).await
}

/// The profile database, migrated, holding `count` events in its outbox.
async fn producer_with(test_db: &TestDatabase, count: usize) -> sea_orm::DatabaseConnection {
    let config = TestSuite::config(&["profile"], test_db, &[]);
    throughline::app::migrate_services(&config, &["profile".to_owned()])
        .await
        .unwrap();
    let producer = db::connect(&config.database, "profile").await.unwrap();
    let outbox = Outbox::new("profile");
    let transaction = producer.begin().await.unwrap();
    let events: Vec<Event> = (0..count).map(event).collect();
    outbox.append_all(&transaction, &events).await.unwrap();
    transaction.commit().await.unwrap();
    producer
}

/// Runs relay rounds until `events` have been published. A round may find nothing yet: on
/// PostgreSQL rows wait behind any older transaction still running in the cluster.
async fn relay_events(relay: &Relay, events: usize) {
    let mut published = 0;
    for _ in 0..1000 {
        match relay.round().await.unwrap() {
            Round::Published(count) => published += count,
            Round::Idle => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        if published >= events {
            return;
        }
    }
    panic!("the relay published {published} of {events} events");
}

on_both_databases!(
    a_relay_that_died_before_its_cursor_publishes_each_event_once,
    |test_db: TestDatabase| async move {
        let producer = producer_with_events(&test_db).await;
        let nats = TestNats::new().await;
        let jetstream = nats.jetstream().await;
        let mut stream = jetstream.stream("profile").await.unwrap();

        // What a relay killed between publishing and storing its cursor leaves behind: the
        // first 20 events in the stream, the cursor still at the start.
        let first = Outbox::new("profile")
            .read(&producer, Position::default(), 20, &Filter::default())
            .await
            .unwrap();
        jetstream.publish("profile", &first.entries).await.unwrap();

        let relay = Relay::new("profile", producer.clone(), jetstream.clone());
        relay_events(&relay, EVENTS).await;

        let info = stream.info().await.unwrap();
        assert_eq!(info.state.messages, EVENTS as u64, "no copies stored");
        let mut stored = Vec::new();
        for sequence in 1..=EVENTS as u64 {
            let message = stream.get_raw_message(sequence).await.unwrap();
            assert_eq!(
                message.subject.as_str(),
                format!(
                    "{}.profile.{}",
                    nats.options.prefix,
                    event(sequence as usize - 1).r#type
                )
            );
            stored.push(Event::decode(message.payload.as_ref()).unwrap().id);
        }
        let expected: Vec<String> = (0..EVENTS).map(|index| event(index).id).collect();
        assert_eq!(stored, expected, "in log order");
        assert_ne!(relay.position().await.unwrap(), Position::default());
        nats.cleanup().await;
    }
);

on_both_databases!(
    a_backlog_of_several_batches_is_relayed_in_order,
    |test_db: TestDatabase| async move {
        // More than the relay reads at a time, so a round sends batches while earlier ones
        // are still being stored.
        const BACKLOG: usize = 4321;
        let producer = producer_with(&test_db, BACKLOG).await;
        let nats = TestNats::new().await;
        let jetstream = nats.jetstream().await;
        let relay = Relay::new("profile", producer.clone(), jetstream.clone());
        relay_events(&relay, BACKLOG).await;

        let mut stream = jetstream.stream("profile").await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, BACKLOG as u64);
        for sequence in 1..=BACKLOG as u64 {
            let message = stream.get_raw_message(sequence).await.unwrap();
            assert_eq!(
                Event::decode(message.payload.as_ref()).unwrap().id,
                event(sequence as usize - 1).id,
                "in log order"
            );
        }
        let everything = Outbox::new("profile")
            .read(&producer, Position::default(), 10_000, &Filter::default())
            .await
            .unwrap();
        assert_eq!(
            Some(relay.position().await.unwrap()),
            everything.end,
            "the cursor covers every batch"
        );
        assert_eq!(relay.round().await.unwrap(), Round::Idle);
        nats.cleanup().await;
    }
);

on_both_databases!(
    retention_keeps_what_the_relay_has_not_published,
    |test_db: TestDatabase| async move {
        let producer = producer_with_events(&test_db).await;
        let nats = TestNats::new().await;
        let relay = Relay::new("profile", producer.clone(), nats.jetstream().await);

        let unpublished = relay.position().await.unwrap();
        let pruned = prune(&producer, "profile", Duration::ZERO, Some(unpublished))
            .await
            .unwrap();
        assert_eq!(pruned, 0, "nothing relayed yet, so nothing may go");

        relay_events(&relay, EVENTS).await;
        let relayed = relay.position().await.unwrap();
        let pruned = prune(&producer, "profile", Duration::ZERO, Some(relayed))
            .await
            .unwrap();
        assert_eq!(pruned, EVENTS as u64);
        nats.cleanup().await;
    }
);
