//! A bulk writer's own connection (`db::dedicated_writer`): on SQLite a connection of its own
//! on the same file, with the writer's checkpoint interval; on PostgreSQL the service's pool.
#![allow(clippy::unwrap_used)]

use sea_orm::ConnectionTrait;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, query_integer};
use throughline_runtime::db;

on_both_databases!(
    the_writer_writes_what_the_pool_reads,
    |test_db: TestDatabase| async move {
        let config = TestSuite::config(&["interaction"], &test_db, &[]);
        let pool = db::connect(&config.database, "interaction").await.unwrap();
        let writer = db::dedicated_writer(&pool).await.unwrap();
        writer
            .execute_unprepared("CREATE TABLE writer_check (n BIGINT NOT NULL)")
            .await
            .unwrap();
        writer
            .execute_unprepared("INSERT INTO writer_check (n) VALUES (41), (1)")
            .await
            .unwrap();
        assert_eq!(
            query_integer(&pool, "SELECT CAST(SUM(n) AS BIGINT) FROM writer_check").await,
            42
        );
        if test_db.is_postgres() {
            return;
        }
        // Its own connection, checkpointing four times less often than the pool's.
        assert_eq!(
            query_integer(&writer, "PRAGMA wal_autocheckpoint").await,
            65536
        );
        assert_eq!(
            query_integer(&pool, "PRAGMA wal_autocheckpoint").await,
            16384
        );
    }
);
