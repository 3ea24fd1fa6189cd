//! The event log over gRPC: a producer's events in commit order from a cursor, then live;
//! only the caller's tenant; clear refusals.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sea_orm::{DatabaseConnection, TransactionTrait};
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, token};
use throughline_proto::event::v1::subscribe_response::Item;
use throughline_proto::event::v1::{Event, SubscribeRequest, SubscribeResponse};
use throughline_runtime::db;
use throughline_runtime::events::Outbox;
use tonic::Code;
use tonic::codec::Streaming;

async fn start(test_db: &TestDatabase) -> (TestSuite, DatabaseConnection) {
    let config = TestSuite::config(&["profile"], test_db, &[]);
    let suite = TestSuite::start_config(config.clone()).await;
    let db = db::connect(&config.database, "profile").await.unwrap();
    (suite, db)
}

async fn publish(db: &DatabaseConnection, events: &[(&str, &str)]) {
    let outbox = Outbox::new("profile");
    let transaction = db.begin().await.unwrap();
    for (id, tenant) in events {
        let event = Event {
            id: (*id).into(),
            source: "profile".into(),
            spec_version: "1.0".into(),
            r#type: "profile.updated".into(),
            subject: "profiles/p1".into(),
            tenant: (*tenant).into(),
            ..Event::default()
        };
        outbox.append(&transaction, &event).await.unwrap();
    }
    transaction.commit().await.unwrap();
}

async fn subscribe(
    suite: &TestSuite,
    tenant: &str,
    from_cursor: &str,
) -> Streaming<SubscribeResponse> {
    let mut clients = suite.clients(&token(tenant, &["events:read"])).await;
    clients
        .events
        .subscribe(SubscribeRequest {
            source: "profile".into(),
            from_cursor: from_cursor.into(),
            event_types: vec![],
        })
        .await
        .unwrap()
        .into_inner()
}

/// The events received until the stream says it is caught up, with their cursors.
async fn until_caught_up(stream: &mut Streaming<SubscribeResponse>) -> Vec<(String, String)> {
    let mut received = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the event log went silent")
            .unwrap()
            .unwrap();
        match item.item {
            Some(Item::Event(event)) => received.push((event.id, item.cursor)),
            Some(Item::CaughtUp(_)) => return received,
            None => panic!("an empty item"),
        }
    }
}

/// The next `count` events, whatever CaughtUp markers come between: on a shared PostgreSQL
/// server a committed event can be held back for a moment by another transaction, so the
/// first CaughtUp does not prove that everything committed has been read.
async fn next_events(
    stream: &mut Streaming<SubscribeResponse>,
    count: usize,
) -> Vec<(String, String)> {
    let mut received = Vec::new();
    while received.len() < count {
        received.extend(until_caught_up(stream).await);
    }
    received
}

fn ids(received: &[(String, String)]) -> Vec<&str> {
    received.iter().map(|(id, _)| id.as_str()).collect()
}

on_both_databases!(
    subscribers_read_from_a_cursor_then_live,
    |test_db: TestDatabase| async move {
        let (suite, db) = start(&test_db).await;
        publish(&db, &[("e1", "acme"), ("e2", "globex"), ("e3", "acme")]).await;
        publish(&db, &[("e4", "acme")]).await;

        let mut acme = subscribe(&suite, "acme", "").await;
        let received = next_events(&mut acme, 3).await;
        assert_eq!(ids(&received), ["e1", "e3", "e4"]);

        // Live: an event committed now reaches the open stream.
        publish(&db, &[("e5", "acme"), ("e6", "globex")]).await;
        let live = next_events(&mut acme, 1).await;
        assert_eq!(ids(&live), ["e5"]);

        // Resuming from a cursor continues right after that event.
        let after_e3 = &received[1].1;
        let mut resumed = subscribe(&suite, "acme", after_e3).await;
        assert_eq!(ids(&next_events(&mut resumed, 2).await), ["e4", "e5"]);

        // Another tenant sees only its own.
        let mut globex = subscribe(&suite, "globex", "").await;
        assert_eq!(ids(&next_events(&mut globex, 2).await), ["e2", "e6"]);
    }
);

#[tokio::test]
async fn bad_subscriptions_are_refused_clearly() {
    let test_db = TestDatabase::sqlite();
    let (suite, _db) = start(&test_db).await;
    let clients = suite.clients(&token("acme", &["events:read"])).await;
    let refused = |source: &str, cursor: &str| {
        let request = SubscribeRequest {
            source: source.into(),
            from_cursor: cursor.into(),
            event_types: vec![],
        };
        let mut client = clients.events.clone();
        async move { client.subscribe(request).await.unwrap_err() }
    };
    let unknown = refused("billing", "").await;
    assert_eq!(unknown.code(), Code::InvalidArgument);
    let not_hosted = refused("feedback", "").await;
    assert_eq!(not_hosted.code(), Code::NotFound);
    let bad_cursor = refused("profile", "yesterday").await;
    assert_eq!(bad_cursor.code(), Code::InvalidArgument);

    let mut without_scope = suite.clients(&token("acme", &["profile:read"])).await;
    let denied = without_scope
        .events
        .subscribe(SubscribeRequest {
            source: "profile".into(),
            ..SubscribeRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

on_both_databases!(
    a_cursor_before_pruned_events_is_refused,
    |test_db: TestDatabase| async move {
        let (suite, db) = start(&test_db).await;
        publish(&db, &[("e1", "acme"), ("e2", "acme")]).await;
        publish(&db, &[("e3", "acme")]).await;
        let mut stream = subscribe(&suite, "acme", "").await;
        let received = next_events(&mut stream, 3).await;
        drop(stream);
        assert_eq!(ids(&received), ["e1", "e2", "e3"]);

        // Everything recorded so far is past a zero retention.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let pruned = throughline_runtime::events::prune(&db, "profile", Duration::ZERO, None)
            .await
            .unwrap();
        assert_eq!(pruned, 3);
        publish(&db, &[("e4", "acme")]).await;

        // After e1, events were pruned: refused, never silently skipped.
        let mut clients = suite.clients(&token("acme", &["events:read"])).await;
        let expired = clients
            .events
            .subscribe(SubscribeRequest {
                source: "profile".into(),
                from_cursor: received[0].1.clone(),
                event_types: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(expired.code(), Code::FailedPrecondition);
        let details = tonic_types::StatusExt::get_error_details(&expired);
        assert_eq!(details.error_info().unwrap().reason, "CURSOR_EXPIRED");

        // From the last pruned event nothing was lost; from the start, the oldest retained.
        let mut from_last = subscribe(&suite, "acme", &received[2].1).await;
        assert_eq!(ids(&next_events(&mut from_last, 1).await), ["e4"]);
        let mut from_start = subscribe(&suite, "acme", "").await;
        assert_eq!(ids(&next_events(&mut from_start, 1).await), ["e4"]);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commits_wake_subscribers_without_waiting_for_a_poll() {
    let test_db = TestDatabase::postgres().await;
    // A poll so slow that only the commit notification can explain a prompt delivery.
    let config = TestSuite::config(
        &["profile"],
        &test_db,
        &[("THROUGHLINE__EVENTS__POLL_INTERVAL", "60s")],
    );
    let suite = TestSuite::start_config(config.clone()).await;
    let db = db::connect(&config.database, "profile").await.unwrap();
    let mut stream = subscribe(&suite, "acme", "").await;
    assert!(until_caught_up(&mut stream).await.is_empty());

    publish(&db, &[("live-1", "acme")]).await;
    let received = tokio::time::timeout(Duration::from_secs(5), next_events(&mut stream, 1))
        .await
        .expect("the commit did not wake the subscription");
    assert_eq!(ids(&received), ["live-1"]);
}
