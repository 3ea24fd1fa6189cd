//! A bulk writer's own connection (`db::dedicated_writer`): on SQLite a connection of its own
//! on the same file, with the writer's checkpoint interval; on PostgreSQL the service's pool.
#![allow(clippy::unwrap_used)]

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use throughline_harness::{TestDatabase, TestSuite, on_both_databases};
use throughline_runtime::db;

async fn one_number(connection: &DatabaseConnection, sql: &str) -> i64 {
    connection
        .query_one_raw(Statement::from_string(
            connection.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
}

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
            one_number(&pool, "SELECT CAST(SUM(n) AS BIGINT) FROM writer_check").await,
            42
        );
        if test_db.is_postgres() {
            return;
        }
        // Its own connection, checkpointing four times less often than the pool's.
        assert_eq!(
            one_number(&writer, "PRAGMA wal_autocheckpoint").await,
            65536
        );
        assert_eq!(one_number(&pool, "PRAGMA wal_autocheckpoint").await, 16384);
    }
);
