//! Webhook subscriptions and their deliveries.

use sea_orm_migration::prelude::*;
use throughline_runtime::migration::columns::{
    bigint, blob, integer, nullable_bigint, primary_key, text,
};

pub(crate) struct M0006Webhooks;

impl MigrationName for M0006Webhooks {
    fn name(&self) -> &str {
        "m0006_webhooks"
    }
}

const INDEXES: [&str; 3] = [
    // An event reaches a subscription once, however often the consumer sees it.
    "CREATE UNIQUE INDEX IF NOT EXISTS distribution_webhook_deliveries_event \
     ON distribution_webhook_deliveries (tenant, subscription, event_id)",
    // The webhook queue: only deliveries still to attempt, the earliest due first. Workers of
    // every tenant share it.
    "CREATE INDEX IF NOT EXISTS distribution_webhook_deliveries_queue \
     ON distribution_webhook_deliveries (next_attempt_us) WHERE state IN (1, 2)",
    // A subscription's delivery log, newest first.
    "CREATE INDEX IF NOT EXISTS distribution_webhook_deliveries_newest \
     ON distribution_webhook_deliveries (tenant, subscription, create_us DESC, id DESC)",
];

const TABLES: [&str; 2] = [
    "distribution_webhook_subscriptions",
    "distribution_webhook_deliveries",
];

#[async_trait::async_trait]
impl MigrationTrait for M0006Webhooks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table(Alias::new("distribution_webhook_subscriptions"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("id"))
                .col(text("display_name"))
                .col(text("url"))
                // The event types, one per line.
                .col(text("event_types"))
                // Stored as given. TODO(kms): encrypt at rest with a KMS-held key in a later
                // change; it is never returned by the API.
                .col(text("signing_secret"))
                .col(integer("enabled"))
                .col(text("disabled_reason"))
                .col(integer("consecutive_failures"))
                // The etag.
                .col(bigint("revision"))
                .col(bigint("create_us"))
                .col(bigint("update_us"))
                .primary_key(&mut primary_key(&["tenant", "id"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("distribution_webhook_deliveries"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("id"))
                .col(text("subscription"))
                .col(text("event_id"))
                .col(text("event_type"))
                // The `throughline.event.v1.Event` as received, encoded.
                .col(blob("event"))
                .col(integer("state"))
                // Attempts started; a claim counts one, and is the lease's generation: the
                // outcome of an attempt whose delivery was claimed again is refused.
                .col(integer("attempt_count"))
                .col(integer("last_status_code"))
                .col(text("last_error"))
                .col(bigint("next_attempt_us"))
                // A worker holds a claimed delivery until then; 0 when no one does.
                .col(bigint("lease_until_us"))
                .col(bigint("create_us"))
                .col(nullable_bigint("complete_us"))
                .primary_key(&mut primary_key(&["tenant", "id"]))
                .to_owned(),
        ];
        throughline_runtime::migration::create_tables(manager, Vec::from(tables), &INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        throughline_runtime::migration::drop_tables(manager, &TABLES).await
    }
}
