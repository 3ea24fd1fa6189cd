//! A consumer of another service's events: killed mid-stream and restarted, it applies every
//! event, none twice; a redelivered event only moves its cursor.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use throughline_harness::{TestDatabase, TestNats, TestSuite, on_both_databases, token};
use throughline_proto::event::v1::Event;
use throughline_runtime::db;
use throughline_runtime::events::{Applied, Consumer, Handler, Outbox};

const EVENTS: usize = 120;

fn event(index: usize) -> Event {
    Event {
        id: format!("evt-{index:04}"),
        source: "profile".into(),
        spec_version: "1.0".into(),
        r#type: "profile.updated".into(),
        subject: "profiles/p1".into(),
        tenant: "acme".into(),
        ..Event::default()
    }
}

/// The consumer's effect: one row per event it acted on, in a table of its own database.
fn record_effect() -> Handler {
    Arc::new(|transaction, event| {
        async move {
            transaction
                .execute_raw(Statement::from_sql_and_values(
                    transaction.get_database_backend(),
                    match transaction.get_database_backend() {
                        sea_orm::DatabaseBackend::Postgres => {
                            "INSERT INTO orchestration_test_effects (event_id) VALUES ($1)"
                        }
                        _ => "INSERT INTO orchestration_test_effects (event_id) VALUES (?)",
                    },
                    [event.id.clone().into()],
                ))
                .await?;
            // Slow enough that the kill below lands mid-stream.
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(())
        }
        .boxed()
    })
}

/// The orchestration database (already migrated), with the table the test effect writes.
async fn consumer_database(config: &throughline::Config) -> DatabaseConnection {
    let consumer_db = db::connect(&config.database, "orchestration")
        .await
        .unwrap();
    consumer_db
        .execute_unprepared(
            "CREATE TABLE orchestration_test_effects (event_id VARCHAR(64) NOT NULL)",
        )
        .await
        .unwrap();
    consumer_db
}

async fn effects(db: &DatabaseConnection) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT event_id FROM orchestration_test_effects ORDER BY event_id",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.try_get("", "event_id").unwrap())
        .collect()
}

/// How the consumer under test reaches the producer's events.
enum Transport {
    Grpc,
    Nats(TestNats),
}

/// Writes `EVENTS` events, kills the consumer a third of the way through, restarts it, and
/// checks every event took effect exactly once.
async fn killed_consumer_resumes(test_db: TestDatabase, transport: Transport) {
    let env = match &transport {
        Transport::Grpc => Vec::new(),
        Transport::Nats(nats) => nats.env(),
    };
    let config = TestSuite::config(&["profile", "orchestration"], &test_db, &env);
    let suite = TestSuite::start_config(config.clone()).await;
    let producer = db::connect(&config.database, "profile").await.unwrap();
    let consumer_db = consumer_database(&config).await;

    let consumer = Consumer::new("orchestration", "journeys", consumer_db.clone());
    let events_client = suite.clients(&token("acme", &["events:read"])).await.events;
    let jetstream = match &transport {
        Transport::Grpc => None,
        Transport::Nats(nats) => Some(nats.jetstream().await),
    };
    let start = || {
        let (consumer, events_client, jetstream) =
            (consumer.clone(), events_client.clone(), jetstream.clone());
        tokio::spawn(async move {
            match jetstream {
                None => {
                    consumer
                        .run(events_client, "profile", &[], record_effect())
                        .await
                }
                Some(jetstream) => {
                    consumer
                        .run_nats(&jetstream, "profile", &[], record_effect())
                        .await
                }
            }
        })
    };

    // The first half of the events arrives while the consumer runs, so it applies them in
    // small batches; it is killed part-way through, often inside one. The second half arrives
    // while it is down.
    let write = |range: std::ops::Range<usize>| {
        let producer = producer.clone();
        async move {
            let outbox = Outbox::new("profile");
            for chunk in range.collect::<Vec<_>>().chunks(2) {
                let transaction = producer.begin().await.unwrap();
                for index in chunk {
                    outbox.append(&transaction, &event(*index)).await.unwrap();
                }
                transaction.commit().await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let first_half = tokio::spawn(write(0..EVENTS / 2));
    let first = start();
    while effects(&consumer_db).await.len() < EVENTS / 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.abort();
    let _ = first.await;
    first_half.await.unwrap();
    write(EVENTS / 2..EVENTS).await;

    let second = start();
    for _ in 0..1000 {
        if effects(&consumer_db).await.len() >= EVENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    second.abort();

    let seen = effects(&consumer_db).await;
    let expected: Vec<String> = (0..EVENTS).map(|index| event(index).id).collect();
    assert_eq!(seen, expected, "every event exactly once");
    suite.stop().await;
    if let Transport::Nats(nats) = transport {
        nats.cleanup().await;
    }
}

on_both_databases!(
    a_killed_consumer_resumes_and_acts_once_per_event,
    |test_db: TestDatabase| async move { killed_consumer_resumes(test_db, Transport::Grpc).await }
);

on_both_databases!(
    a_killed_nats_consumer_resumes_and_acts_once_per_event,
    |test_db: TestDatabase| async move {
        killed_consumer_resumes(test_db, Transport::Nats(TestNats::new().await)).await
    }
);

on_both_databases!(
    a_redelivered_event_only_moves_the_cursor,
    |test_db: TestDatabase| async move {
        let config = TestSuite::config(&["orchestration"], &test_db, &[]);
        throughline::app::migrate_services(&config, &["orchestration".to_owned()])
            .await
            .unwrap();
        let consumer_db = consumer_database(&config).await;
        let consumer = Consumer::new("orchestration", "journeys", consumer_db.clone());
        let handler = record_effect();
        assert_eq!(consumer.cursor("profile").await.unwrap(), "");
        assert_eq!(
            consumer
                .apply("profile", &event(1), "0-1", &handler)
                .await
                .unwrap(),
            Applied::Effect
        );
        assert_eq!(
            consumer
                .apply("profile", &event(1), "0-2", &handler)
                .await
                .unwrap(),
            Applied::Duplicate
        );
        assert_eq!(consumer.cursor("profile").await.unwrap(), "0-2");
        assert_eq!(effects(&consumer_db).await, ["evt-0001"]);
        // A failing effect leaves neither the effect, the claim nor the cursor behind.
        let failing: Handler = Arc::new(|_, _| {
            async { Err(throughline_runtime::Error::Unavailable("downstream".into())) }.boxed()
        });
        assert!(
            consumer
                .apply("profile", &event(2), "0-3", &failing)
                .await
                .is_err()
        );
        assert_eq!(consumer.cursor("profile").await.unwrap(), "0-2");
        assert_eq!(
            consumer
                .apply("profile", &event(2), "0-3", &handler)
                .await
                .unwrap(),
            Applied::Effect
        );
    }
);
