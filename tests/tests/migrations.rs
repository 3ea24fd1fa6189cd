//! Every service's migrations apply on SQLite and PostgreSQL, twice without harm, and leave each
//! service's tables under its own name (and, on PostgreSQL, in its own schema).
#![allow(clippy::unwrap_used)]

use sea_orm::{ConnectionTrait, Statement};
use throughline::ALL_SERVICES;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases};
use throughline_runtime::db;

async fn tables(config: &throughline::Config, service: &str, postgres: bool) -> Vec<String> {
    let connection = db::connect(&config.database, service).await.unwrap();
    let sql = if postgres {
        format!(
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_schema = '{service}' ORDER BY table_name"
        )
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name".to_owned()
    };
    let rows = connection
        .query_all_raw(Statement::from_string(
            connection.get_database_backend(),
            sql,
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .collect()
}

on_both_databases!(
    migrations_apply_twice_and_own_their_tables,
    |db: TestDatabase| async move {
        let config = TestSuite::config(&ALL_SERVICES, &db, &[]);
        let services: Vec<String> = ALL_SERVICES.iter().map(|s| (*s).to_owned()).collect();
        throughline::app::migrate_services(&config, &services)
            .await
            .unwrap();
        // A second run finds nothing to do and fails on nothing.
        throughline::app::migrate_services(&config, &services)
            .await
            .unwrap();

        for service in ALL_SERVICES {
            let found = tables(&config, service, db.is_postgres()).await;
            for expected in [
                format!("{service}_idempotency_keys"),
                format!("{service}_migrations"),
            ] {
                assert!(found.contains(&expected), "{expected} not in {found:?}");
            }
            if db.is_postgres() {
                // Its schema holds only its own tables.
                assert!(
                    found
                        .iter()
                        .all(|table| table.starts_with(&format!("{service}_"))),
                    "{service}: {found:?}"
                );
            }
        }
    }
);
