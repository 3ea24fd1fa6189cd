//! The outbox and its reader: every committed event is read once, in commit order, none
//! skipped when transactions commit out of the order of their ids; rolled-back events never.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use sea_orm::{DatabaseConnection, TransactionTrait};
use throughline_harness::{TestDatabase, TestSuite, on_both_databases};
use throughline_proto::event::v1::Event;
use throughline_runtime::db;
use throughline_runtime::events::{Filter, Outbox, Position};
use tokio::sync::Mutex;

async fn profile_database(test_db: &TestDatabase, max_connections: &str) -> DatabaseConnection {
    let config = TestSuite::config(
        &["profile"],
        test_db,
        &[("THROUGHLINE__DATABASE__MAX_CONNECTIONS", max_connections)],
    );
    throughline::app::migrate_services(&config, &["profile".to_owned()])
        .await
        .unwrap();
    db::connect(&config.database, "profile").await.unwrap()
}

fn event(id: String, tenant: &str, event_type: &str) -> Event {
    Event {
        id,
        source: "profile".into(),
        spec_version: "1.0".into(),
        r#type: event_type.into(),
        subject: "profiles/p1".into(),
        tenant: tenant.into(),
        ..Event::default()
    }
}

/// Reads everything after `position` that can be read now.
async fn read_all(
    outbox: &Outbox,
    db: &DatabaseConnection,
    position: &mut Position,
) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let batch = outbox
            .read(db, *position, 100, &Filter::default())
            .await
            .unwrap();
        let Some(end) = batch.end else {
            return ids;
        };
        *position = end;
        ids.extend(batch.entries.into_iter().map(|entry| entry.event.id));
    }
}

/// Reads until `count` events have come, waiting out other transactions on the same server
/// (they hold every reader of the cluster back while they run).
async fn read_count(
    outbox: &Outbox,
    db: &DatabaseConnection,
    position: &mut Position,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..500 {
        ids.extend(read_all(outbox, db, position).await);
        if ids.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ids
}

on_both_databases!(
    concurrent_writers_lose_nothing_and_show_no_rollback,
    |test_db: TestDatabase| async move {
        const WRITERS: usize = 32;
        const TRANSACTIONS: usize = 12;
        let db = profile_database(&test_db, "40").await;
        let outbox = Outbox::new("profile");
        let committed = Arc::new(Mutex::new(Vec::<String>::new()));
        let writing = Arc::new(AtomicBool::new(true));

        let reader = {
            let (db, outbox, writing) = (db.clone(), outbox.clone(), writing.clone());
            tokio::spawn(async move {
                let mut position = Position::default();
                let mut delivered = Vec::new();
                while writing.load(Ordering::SeqCst) {
                    delivered.extend(read_all(&outbox, &db, &mut position).await);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (delivered, position)
            })
        };

        let writers = (0..WRITERS).map(|writer| {
            let (db, outbox, committed) = (db.clone(), outbox.clone(), committed.clone());
            tokio::spawn(async move {
                for transaction_number in 0..TRANSACTIONS {
                    let (events, pause, roll_back) = {
                        let mut rng = rand::rng();
                        (
                            rng.random_range(1..=3),
                            rng.random_range(0..4),
                            rng.random_bool(0.1),
                        )
                    };
                    let transaction = db.begin().await.unwrap();
                    let mut ids = Vec::new();
                    for index in 0..events {
                        let id = format!("w{writer}-t{transaction_number}-e{index}");
                        outbox
                            .append(&transaction, &event(id.clone(), "acme", "profile.updated"))
                            .await
                            .unwrap();
                        ids.push(id);
                        // Hold the transaction open so that others commit around it.
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    if roll_back {
                        transaction.rollback().await.unwrap();
                    } else {
                        transaction.commit().await.unwrap();
                        committed.lock().await.extend(ids);
                    }
                }
            })
        });
        for writer in futures::future::join_all(writers).await {
            writer.unwrap();
        }
        writing.store(false, Ordering::SeqCst);
        let (mut delivered, mut position) = reader.await.unwrap();

        // Whatever the live reader had not reached yet; other tests' transactions on a shared
        // server may hold the reader back briefly, so wait for the log to settle.
        let committed = committed.lock().await.clone();
        let remaining = committed.len().saturating_sub(delivered.len());
        delivered.extend(read_count(&outbox, &db, &mut position, remaining).await);

        let unique: HashSet<&String> = delivered.iter().collect();
        assert_eq!(
            unique.len(),
            delivered.len(),
            "an event was delivered twice"
        );
        let expected: HashSet<&String> = committed.iter().collect();
        let missing: Vec<_> = expected.difference(&unique).collect();
        let unexpected: Vec<_> = unique.difference(&expected).collect();
        assert!(missing.is_empty(), "skipped events: {missing:?}");
        assert!(
            unexpected.is_empty(),
            "rolled-back events delivered: {unexpected:?}"
        );
        assert!(
            committed.len() > WRITERS * TRANSACTIONS,
            "too few events to mean anything"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_committing_late_is_not_skipped() {
    let test_db = TestDatabase::postgres().await;
    let db = profile_database(&test_db, "8").await;
    let outbox = Outbox::new("profile");
    let mut position = Position::default();

    // A takes the smaller id and stays open; B takes a larger id and commits first.
    let a = db.begin().await.unwrap();
    outbox
        .append(&a, &event("a".into(), "acme", "profile.created"))
        .await
        .unwrap();
    let b = db.begin().await.unwrap();
    outbox
        .append(&b, &event("b".into(), "acme", "profile.created"))
        .await
        .unwrap();
    b.commit().await.unwrap();

    // A reader that went by ids would deliver b now and never look back at a.
    assert!(read_all(&outbox, &db, &mut position).await.is_empty());
    a.commit().await.unwrap();
    assert_eq!(read_count(&outbox, &db, &mut position, 2).await, ["a", "b"]);

    // A rolled-back transaction holds nothing back once it is gone.
    let c = db.begin().await.unwrap();
    outbox
        .append(&c, &event("c".into(), "acme", "profile.created"))
        .await
        .unwrap();
    let d = db.begin().await.unwrap();
    outbox
        .append(&d, &event("d".into(), "acme", "profile.created"))
        .await
        .unwrap();
    d.commit().await.unwrap();
    assert!(read_all(&outbox, &db, &mut position).await.is_empty());
    c.rollback().await.unwrap();
    assert_eq!(read_count(&outbox, &db, &mut position, 1).await, ["d"]);
}

on_both_databases!(
    filters_skip_events_but_the_position_moves_past_them,
    |test_db: TestDatabase| async move {
        let db = profile_database(&test_db, "4").await;
        let outbox = Outbox::new("profile");
        let transaction = db.begin().await.unwrap();
        for (id, tenant, event_type) in [
            ("1", "acme", "profile.created"),
            ("2", "globex", "profile.created"),
            ("3", "acme", "consent.changed"),
        ] {
            outbox
                .append(&transaction, &event(id.into(), tenant, event_type))
                .await
                .unwrap();
        }
        transaction.commit().await.unwrap();

        let filter = Filter {
            tenant: Some("acme".into()),
            event_types: vec!["profile.created".into()],
        };
        let batch = outbox
            .read(&db, Position::default(), 10, &filter)
            .await
            .unwrap();
        let ids: Vec<_> = batch
            .entries
            .iter()
            .map(|entry| entry.event.id.as_str())
            .collect();
        assert_eq!(ids, ["1"]);
        // Resuming from the end of the batch finds nothing more: the others were passed, not lost.
        let end = batch.end.unwrap();
        let again = outbox.read(&db, end, 10, &Filter::default()).await.unwrap();
        assert!(again.entries.is_empty() && again.end.is_none());
        // Another tenant's reader sees only its own.
        let globex = Filter {
            tenant: Some("globex".into()),
            event_types: vec![],
        };
        let batch = outbox
            .read(&db, Position::default(), 10, &globex)
            .await
            .unwrap();
        assert_eq!(batch.entries.len(), 1);
        assert_eq!(batch.entries[0].event.tenant, "globex");
    }
);
