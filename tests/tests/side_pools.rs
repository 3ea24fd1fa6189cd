//! Connections beside a service's pool. A bulk writer's own (`db::dedicated_writer`): on SQLite
//! a connection of its own on the same file, with the writer's checkpoint interval; on
//! PostgreSQL the service's pool. Connections that plan a statement once
//! (`db::generic_plan_pool`): on PostgreSQL a pool of their own, in the service's schema, with
//! the service's session settings; on SQLite the service's pool.
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

async fn setting(db: &sea_orm::DatabaseConnection, name: &str) -> String {
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        format!("SELECT current_setting('{name}') AS value"),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get("", "value")
    .unwrap()
}

on_both_databases!(
    the_generic_plan_pool_reads_the_service_schema_and_plans_once,
    |test_db: TestDatabase| async move {
        let config = TestSuite::config(&["interaction"], &test_db, &[]);
        let pool = db::connect(&config.database, "interaction").await.unwrap();
        let planned_once = db::generic_plan_pool(&pool, 2);
        pool.execute_unprepared("CREATE TABLE planned_check (n BIGINT NOT NULL)")
            .await
            .unwrap();
        pool.execute_unprepared("INSERT INTO planned_check (n) VALUES (41), (1)")
            .await
            .unwrap();
        // Unqualified: found through the service's schema search path.
        assert_eq!(
            query_integer(
                &planned_once,
                "SELECT CAST(SUM(n) AS BIGINT) FROM planned_check"
            )
            .await,
            42
        );
        if !test_db.is_postgres() {
            return;
        }
        assert_eq!(
            setting(&planned_once, "plan_cache_mode").await,
            "force_generic_plan"
        );
        assert_eq!(setting(&pool, "plan_cache_mode").await, "auto");
        // The service's other session settings stay.
        assert_eq!(setting(&planned_once, "jit").await, "off");
    }
);
