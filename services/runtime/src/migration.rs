//! Tables every service has, created by each service's own migrations under its own prefix.

use sea_orm_migration::prelude::*;

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
