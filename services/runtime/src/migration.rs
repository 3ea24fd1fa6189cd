//! Tables every service has, created by each service's own migrations under its own prefix:
//! [`shared`] gives a service's `Migrator` the migrations that create them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::events::{outbox_table, watermark_table};

/// The idempotency keys of a service's writes (AIP-155 `request_id`): the first result of a
/// request is kept and replayed to retries with the same key.
pub fn create_idempotency_keys(prefix: &str) -> TableCreateStatement {
    let table = Alias::new(format!("{prefix}_idempotency_keys"));
    Table::create()
        .table(table)
        .if_not_exists()
        .col(ColumnDef::new(Alias::new("tenant")).string().not_null())
        .col(ColumnDef::new(Alias::new("method")).string().not_null())
        .col(ColumnDef::new(Alias::new("request_id")).string().not_null())
        .col(
            ColumnDef::new(Alias::new("request_hash"))
                .binary()
                .not_null(),
        )
        .col(ColumnDef::new(Alias::new("response")).binary().null())
        .col(
            ColumnDef::new(Alias::new("created_at"))
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Alias::new("expires_at"))
                .timestamp_with_time_zone()
                .not_null(),
        )
        .primary_key(
            Index::create()
                .col(Alias::new("tenant"))
                .col(Alias::new("method"))
                .col(Alias::new("request_id")),
        )
        .to_owned()
}

pub fn drop_idempotency_keys(prefix: &str) -> TableDropStatement {
    Table::drop()
        .table(Alias::new(format!("{prefix}_idempotency_keys")))
        .if_exists()
        .to_owned()
}

/// The outbox of a service's events (see `crate::events`).
pub fn create_outbox(service: &str, backend: DatabaseBackend) -> TableCreateStatement {
    let mut xid = ColumnDef::new(Alias::new("xid"));
    xid.big_integer().not_null();
    match backend {
        // The writing transaction's id, taken by the database itself at insert.
        DatabaseBackend::Postgres => {
            xid.default(Expr::cust("(pg_current_xact_id()::text::bigint)"));
        }
        _ => {
            xid.default(0);
        }
    }
    Table::create()
        .table(Alias::new(outbox_table(service)))
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new("id"))
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        )
        .col(&mut xid)
        .col(
            ColumnDef::new(Alias::new("event_id"))
                .string()
                .not_null()
                .unique_key(),
        )
        .col(ColumnDef::new(Alias::new("tenant")).string().not_null())
        .col(ColumnDef::new(Alias::new("event_type")).string().not_null())
        .col(ColumnDef::new(Alias::new("subject")).string().not_null())
        .col(
            ColumnDef::new(Alias::new("recorded_at"))
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::current_timestamp()),
        )
        .col(ColumnDef::new(Alias::new("event")).binary().not_null())
        .to_owned()
}

/// Readers go in `(xid, id)` order; retention prunes by age.
pub fn create_outbox_indexes(service: &str) -> [IndexCreateStatement; 2] {
    let table = outbox_table(service);
    [
        Index::create()
            .name(format!("{table}_order"))
            .table(Alias::new(&table))
            .col(Alias::new("xid"))
            .col(Alias::new("id"))
            .if_not_exists()
            .to_owned(),
        Index::create()
            .name(format!("{table}_recorded_at"))
            .table(Alias::new(&table))
            .col(Alias::new("recorded_at"))
            .if_not_exists()
            .to_owned(),
    ]
}

pub fn drop_outbox(service: &str) -> TableDropStatement {
    Table::drop()
        .table(Alias::new(outbox_table(service)))
        .if_exists()
        .to_owned()
}

/// What a service consuming other services' events keeps: its cursor per consumer and source,
/// and the ids of the events each consumer has processed (to recognise a redelivery).
pub fn create_event_consumer_tables(service: &str) -> [TableCreateStatement; 2] {
    [
        Table::create()
            .table(Alias::new(format!("{service}_event_cursors")))
            .if_not_exists()
            .col(ColumnDef::new(Alias::new("consumer")).string().not_null())
            .col(ColumnDef::new(Alias::new("source")).string().not_null())
            .col(ColumnDef::new(Alias::new("cursor")).string().not_null())
            .primary_key(
                Index::create()
                    .col(Alias::new("consumer"))
                    .col(Alias::new("source")),
            )
            .to_owned(),
        Table::create()
            .table(Alias::new(format!("{service}_processed_events")))
            .if_not_exists()
            .col(ColumnDef::new(Alias::new("consumer")).string().not_null())
            .col(ColumnDef::new(Alias::new("event_id")).string().not_null())
            .col(
                ColumnDef::new(Alias::new("processed_at"))
                    .timestamp_with_time_zone()
                    .not_null()
                    .default(Expr::current_timestamp()),
            )
            .primary_key(
                Index::create()
                    .col(Alias::new("consumer"))
                    .col(Alias::new("event_id")),
            )
            .to_owned(),
    ]
}

pub fn drop_event_consumer_tables(service: &str) -> [TableDropStatement; 2] {
    ["event_cursors", "processed_events"].map(|name| {
        Table::drop()
            .table(Alias::new(format!("{service}_{name}")))
            .if_exists()
            .to_owned()
    })
}

/// Where retention last pruned a service's event log (one row).
pub fn create_outbox_watermark(service: &str) -> TableCreateStatement {
    Table::create()
        .table(Alias::new(watermark_table(service)))
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new("singleton"))
                .integer()
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new(Alias::new("xid")).big_integer().not_null())
        .col(
            ColumnDef::new(Alias::new("row_id"))
                .big_integer()
                .not_null(),
        )
        .to_owned()
}

pub fn drop_outbox_watermark(service: &str) -> TableDropStatement {
    Table::drop()
        .table(Alias::new(watermark_table(service)))
        .if_exists()
        .to_owned()
}

/// The migrations every service starts with, in order, for the service called `service`
/// (whose tables they prefix). A service's `Migrator` lists these first, then its own.
///
/// Their names are part of each service's migration history: never rename or reorder them.
pub fn shared(service: &'static str) -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(SharedMigration {
            name: "m0001_idempotency_keys",
            service,
        }),
        Box::new(SharedMigration {
            name: "m0002_outbox",
            service,
        }),
        Box::new(SharedMigration {
            name: "m0003_event_consumers",
            service,
        }),
        Box::new(SharedMigration {
            name: "m0004_outbox_retention",
            service,
        }),
    ]
}

struct SharedMigration {
    name: &'static str,
    service: &'static str,
}

impl MigrationName for SharedMigration {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SharedMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let service = self.service;
        match self.name {
            "m0001_idempotency_keys" => {
                manager.create_table(create_idempotency_keys(service)).await
            }
            "m0002_outbox" => {
                manager
                    .create_table(create_outbox(service, manager.get_database_backend()))
                    .await?;
                for index in create_outbox_indexes(service) {
                    manager.create_index(index).await?;
                }
                Ok(())
            }
            "m0003_event_consumers" => {
                for table in create_event_consumer_tables(service) {
                    manager.create_table(table).await?;
                }
                Ok(())
            }
            "m0004_outbox_retention" => {
                manager.create_table(create_outbox_watermark(service)).await
            }
            other => Err(DbErr::Migration(format!(
                "unknown shared migration {other}"
            ))),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let service = self.service;
        match self.name {
            "m0001_idempotency_keys" => manager.drop_table(drop_idempotency_keys(service)).await,
            "m0002_outbox" => manager.drop_table(drop_outbox(service)).await,
            "m0003_event_consumers" => {
                for table in drop_event_consumer_tables(service) {
                    manager.drop_table(table).await?;
                }
                Ok(())
            }
            "m0004_outbox_retention" => manager.drop_table(drop_outbox_watermark(service)).await,
            other => Err(DbErr::Migration(format!(
                "unknown shared migration {other}"
            ))),
        }
    }
}

/// Column definitions the services' own migrations are written with: NOT NULL, in the types
/// that behave alike on SQLite and PostgreSQL.
pub mod columns {
    use sea_orm_migration::prelude::{Alias, ColumnDef, Index, IndexCreateStatement};

    /// A column of `name`, its type and nullability still to be said.
    pub fn column(name: &str) -> ColumnDef {
        ColumnDef::new(Alias::new(name))
    }

    pub fn text(name: &str) -> ColumnDef {
        column(name).text().not_null().to_owned()
    }

    pub fn bigint(name: &str) -> ColumnDef {
        column(name).big_integer().not_null().to_owned()
    }

    pub fn integer(name: &str) -> ColumnDef {
        column(name).integer().not_null().to_owned()
    }

    pub fn blob(name: &str) -> ColumnDef {
        column(name).binary().not_null().to_owned()
    }

    pub fn double(name: &str) -> ColumnDef {
        column(name).double().not_null().to_owned()
    }

    /// A time that may be absent (a message not yet due, a follow-up not yet resolved).
    pub fn nullable_bigint(name: &str) -> ColumnDef {
        column(name).big_integer().null().to_owned()
    }

    /// The primary key over `columns`, for `Table::create().primary_key(..)`.
    pub fn primary_key(columns: &[&str]) -> IndexCreateStatement {
        let mut index = Index::create();
        for name in columns {
            index.col(Alias::new(*name));
        }
        index.to_owned()
    }
}

/// Creates `tables`, then runs `indexes` (written out, for descending keys and partial indexes
/// on both databases): the `up` of a service's own migration.
pub async fn create_tables(
    manager: &SchemaManager<'_>,
    tables: Vec<TableCreateStatement>,
    indexes: &[&str],
) -> Result<(), DbErr> {
    for table in tables {
        manager.create_table(table).await?;
    }
    let db = manager.get_connection();
    for index in indexes {
        db.execute_unprepared(index).await?;
    }
    Ok(())
}

/// Drops `tables` in reverse order, those that exist: the `down` of a service's own migration.
pub async fn drop_tables(manager: &SchemaManager<'_>, tables: &[&str]) -> Result<(), DbErr> {
    for table in tables.iter().rev() {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new(*table))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}
