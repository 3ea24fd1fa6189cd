//! AIP-155 request ids on SQLite and PostgreSQL: one effect for many concurrent identical
//! calls, replay of the first result, a different request under the same key refused, a
//! failed attempt releasing its key, a crashed attempt taken over after its lease.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use prost_types::Timestamp;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use throughline_harness::{TestDatabase, TestSuite, on_both_databases};
use throughline_runtime::idempotency::{Idempotency, Key};
use throughline_runtime::{Error, db};

async fn profile_database(test_db: &TestDatabase) -> DatabaseConnection {
    let config = TestSuite::config(&["profile"], test_db, &[]);
    throughline::app::migrate_services(&config, &["profile".to_owned()])
        .await
        .unwrap();
    db::connect(&config.database, "profile").await.unwrap()
}

fn key(request_id: &str) -> Key<'_> {
    Key {
        tenant: "acme",
        method: "CreateProfile",
        request_id,
    }
}

fn request(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// The "effect": counts executions and answers with the execution number.
async fn effect(
    idempotency: &Idempotency,
    db: &DatabaseConnection,
    request_id: &str,
    seconds: i64,
    executions: Arc<AtomicUsize>,
) -> Result<prost_types::Duration, Error> {
    idempotency
        .run(db, key(request_id), &request(seconds), move |transaction| {
            async move {
                // Real work inside the transaction, as a service's write would do.
                transaction.execute_unprepared("SELECT 1").await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let number = executions.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(prost_types::Duration {
                    seconds: number as i64,
                    nanos: 0,
                })
            }
            .boxed()
        })
        .await
}

on_both_databases!(
    concurrent_identical_calls_act_once,
    |test_db: TestDatabase| async move {
        let db = profile_database(&test_db).await;
        let idempotency = Idempotency::new("profile");
        let executions = Arc::new(AtomicUsize::new(0));
        let calls = (0..50).map(|_| effect(&idempotency, &db, "req-1", 7, executions.clone()));
        let results = futures::future::join_all(calls).await;
        assert_eq!(executions.load(Ordering::SeqCst), 1);
        for result in &results {
            match result {
                Ok(response) => assert_eq!(response.seconds, 1),
                Err(Error::Aborted(_)) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        // Once finished, every retry gets the first result.
        let replay = effect(&idempotency, &db, "req-1", 7, executions.clone())
            .await
            .unwrap();
        assert_eq!(replay.seconds, 1);
        assert_eq!(executions.load(Ordering::SeqCst), 1);
    }
);

on_both_databases!(
    the_same_key_for_another_request_is_refused,
    |test_db: TestDatabase| async move {
        let db = profile_database(&test_db).await;
        let idempotency = Idempotency::new("profile");
        let executions = Arc::new(AtomicUsize::new(0));
        effect(&idempotency, &db, "req-2", 1, executions.clone())
            .await
            .unwrap();
        let error = effect(&idempotency, &db, "req-2", 2, executions.clone())
            .await
            .unwrap_err();
        match error {
            Error::InvalidArgument(violations) => assert_eq!(violations[0].field, "request_id"),
            other => panic!("unexpected {other:?}"),
        }
        // Keys are per tenant: another tenant's identical key is its own.
        let other_tenant = idempotency
            .run(
                &db,
                Key {
                    tenant: "globex",
                    method: "CreateProfile",
                    request_id: "req-2",
                },
                &request(2),
                |_| {
                    async {
                        Ok(prost_types::Duration {
                            seconds: 99,
                            nanos: 0,
                        })
                    }
                    .boxed()
                },
            )
            .await
            .unwrap();
        assert_eq!(other_tenant.seconds, 99);
    }
);

on_both_databases!(
    a_failed_attempt_frees_its_key,
    |test_db: TestDatabase| async move {
        let db = profile_database(&test_db).await;
        let idempotency = Idempotency::new("profile");
        let failed: Result<prost_types::Duration, Error> = idempotency
            .run(&db, key("req-3"), &request(1), |_| {
                async { Err(Error::invalid("profile.email", "not an email address")) }.boxed()
            })
            .await;
        assert!(matches!(failed, Err(Error::InvalidArgument(_))));
        let executions = Arc::new(AtomicUsize::new(0));
        let retried = effect(&idempotency, &db, "req-3", 1, executions.clone())
            .await
            .unwrap();
        assert_eq!(retried.seconds, 1);
    }
);

on_both_databases!(
    a_crashed_attempt_is_taken_over_after_its_lease,
    |test_db: TestDatabase| async move {
        let db = profile_database(&test_db).await;
        let idempotency =
            Idempotency::new("profile").with_in_flight_lease(Duration::from_millis(300));
        // An attempt that claimed the key and never finished: its work is cancelled mid-way,
        // which is what a crash looks like to the database.
        let first_request = request(1);
        let abandoned = idempotency.run(&db, key("req-4"), &first_request, |_| {
            async {
                std::future::pending::<()>().await;
                Ok(prost_types::Duration::default())
            }
            .boxed()
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(100), abandoned)
                .await
                .is_err()
        );

        let executions = Arc::new(AtomicUsize::new(0));
        let early = effect(&idempotency, &db, "req-4", 1, executions.clone()).await;
        assert!(matches!(early, Err(Error::Aborted(_))), "{early:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let late = effect(&idempotency, &db, "req-4", 1, executions.clone())
            .await
            .unwrap();
        assert_eq!(late.seconds, 1);
        assert_eq!(executions.load(Ordering::SeqCst), 1);
    }
);

on_both_databases!(
    expired_keys_are_pruned,
    |test_db: TestDatabase| async move {
        let db = profile_database(&test_db).await;
        let idempotency = Idempotency::new("profile").with_retention(Duration::from_millis(200));
        let executions = Arc::new(AtomicUsize::new(0));
        effect(&idempotency, &db, "req-5", 1, executions.clone())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(idempotency.prune(&db).await.unwrap(), 1);
        // After retention the key is new again.
        let again = effect(&idempotency, &db, "req-5", 1, executions.clone())
            .await
            .unwrap();
        assert_eq!(again.seconds, 2);
    }
);
