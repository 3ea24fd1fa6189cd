//! Journeys and their versions, instances with their steps, the entry policy's bookkeeping, the
//! frequency cap's record of sends, and the inbox of events the engine has still to apply.
//!
//! Times are microseconds since the Unix epoch in BIGINT columns on both databases.
//! "Customer" columns hold who an instance is about for matching and policies: the profile
//! name when resolved, otherwise the `runtime::customer::CustomerKey`.

use sea_orm_migration::prelude::*;
use throughline_runtime::migration::columns::{
    bigint, blob, integer, nullable_bigint, primary_key, text,
};
use throughline_runtime::migration::{create_tables, drop_tables};

pub(crate) struct M0001Orchestration;

impl MigrationName for M0001Orchestration {
    fn name(&self) -> &str {
        "m0001_orchestration"
    }
}

const TABLES: [&str; 7] = [
    "orchestration_journeys",
    "orchestration_journey_versions",
    "orchestration_instances",
    "orchestration_steps",
    "orchestration_entries",
    "orchestration_contacts",
    "orchestration_inbox",
];

const INDEXES: [&str; 9] = [
    "CREATE INDEX IF NOT EXISTS orchestration_journeys_list \
     ON orchestration_journeys (tenant, display_name, id)",
    // Which active journeys an event starts.
    "CREATE INDEX IF NOT EXISTS orchestration_journeys_trigger \
     ON orchestration_journeys (tenant, trigger_key) WHERE trigger_key <> ''",
    // The engine's queue: instances due to run, by wake time. Ended instances leave it.
    "CREATE INDEX IF NOT EXISTS orchestration_instances_due \
     ON orchestration_instances (wake_us) WHERE wake_us IS NOT NULL",
    // Events about a customer find the customer's instances (waits, goals, exits).
    "CREATE INDEX IF NOT EXISTS orchestration_instances_customer \
     ON orchestration_instances (tenant, customer, start_us DESC)",
    "CREATE INDEX IF NOT EXISTS orchestration_instances_profile \
     ON orchestration_instances (tenant, profile, start_us DESC) WHERE profile <> ''",
    "CREATE INDEX IF NOT EXISTS orchestration_instances_journey \
     ON orchestration_instances (tenant, journey, start_us DESC, id DESC)",
    // An event redelivered after a crash starts no second instance.
    "CREATE UNIQUE INDEX IF NOT EXISTS orchestration_instances_trigger \
     ON orchestration_instances (tenant, journey, customer, trigger_event_id) \
     WHERE trigger_event_id <> ''",
    "CREATE INDEX IF NOT EXISTS orchestration_contacts_recent \
     ON orchestration_contacts (tenant, journey, customer, sent_us)",
    "CREATE INDEX IF NOT EXISTS orchestration_inbox_oldest \
     ON orchestration_inbox (receive_us)",
];

#[async_trait::async_trait]
impl MigrationTrait for M0001Orchestration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = vec![
            Table::create()
                .table(Alias::new("orchestration_journeys"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("id"))
                .col(text("display_name"))
                .col(text("description"))
                .col(integer("state"))
                // The draft as a `JourneyDefinition` message.
                .col(blob("draft"))
                // The latest published version; 0 before the first publication.
                .col(integer("published_version"))
                .col(integer("draft_changed"))
                // What starts the latest published version (`definition::trigger_key`); empty
                // before the first publication and for API-triggered journeys.
                .col(text("trigger_key"))
                .col(bigint("revision"))
                .col(bigint("create_us"))
                .col(bigint("update_us"))
                .primary_key(&mut primary_key(&["tenant", "id"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("orchestration_journey_versions"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("journey"))
                .col(integer("version"))
                // The `JourneyDefinition` as published, frozen.
                .col(blob("definition"))
                .col(bigint("publish_us"))
                .col(text("publisher"))
                .primary_key(&mut primary_key(&["tenant", "journey", "version"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("orchestration_instances"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("id"))
                .col(text("journey"))
                .col(integer("version"))
                // The customer as given (`CustomerKey`), and the profile it resolved to
                // (following merges; empty when unresolved).
                .col(text("customer_ref"))
                .col(text("profile"))
                // Who the instance is about for matching events and for policies.
                .col(text("customer"))
                .col(integer("state"))
                // The node the instance is at, or ended at.
                .col(text("node"))
                // When the engine runs it next; NULL once ended.
                .col(nullable_bigint("wake_us"))
                // A replica that claimed it owns it until then.
                .col(bigint("lease_until_us"))
                // How many times the node has been tried without success (webhook retries).
                .col(integer("attempt"))
                .col(integer("holdout"))
                // JSON objects: A/B split node to arm, and the instance's `vars`.
                .col(text("split_arms"))
                .col(text("variables"))
                // The trigger event as the `trigger` variable (JSON), and its id and type.
                .col(text("trigger"))
                .col(text("trigger_event_id"))
                .col(text("trigger_event_type"))
                .col(text("exit_reason"))
                .col(integer("converted"))
                // The goal counts until then (entry plus the goal's window); 0 without a goal.
                .col(bigint("goal_until_us"))
                // The number of steps taken: the next step's sequence number.
                .col(integer("step_count"))
                .col(bigint("start_us"))
                .col(bigint("update_us"))
                .col(nullable_bigint("end_us"))
                .primary_key(&mut primary_key(&["tenant", "id"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("orchestration_steps"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("instance"))
                .col(integer("seq"))
                .col(text("node_id"))
                .col(bigint("enter_us"))
                .col(nullable_bigint("leave_us"))
                .col(text("outcome"))
                .col(text("effect"))
                .col(integer("attempts"))
                .primary_key(&mut primary_key(&["tenant", "instance", "seq"]))
                .to_owned(),
            // The entry policy: when each customer last entered each journey and how many of
            // their instances of it are active. A conditional update admits one of two
            // concurrent triggers.
            Table::create()
                .table(Alias::new("orchestration_entries"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("journey"))
                .col(text("customer"))
                .col(bigint("last_entry_us"))
                .col(integer("active"))
                .primary_key(&mut primary_key(&["tenant", "journey", "customer"]))
                .to_owned(),
            // Messages sent per journey and customer, what the frequency cap counts.
            Table::create()
                .table(Alias::new("orchestration_contacts"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("instance"))
                .col(integer("seq"))
                .col(text("journey"))
                .col(text("customer"))
                .col(bigint("sent_us"))
                .primary_key(&mut primary_key(&["tenant", "instance", "seq"]))
                .to_owned(),
            // Events received and not yet applied, written in the transaction that moves the
            // consumer's cursor, so none is lost between receipt and application.
            Table::create()
                .table(Alias::new("orchestration_inbox"))
                .if_not_exists()
                .col(text("event_id"))
                .col(text("tenant"))
                // The `throughline.event.v1.Event`.
                .col(blob("event"))
                .col(bigint("receive_us"))
                .col(bigint("lease_until_us"))
                .primary_key(&mut primary_key(&["event_id"]))
                .to_owned(),
        ];
        create_tables(manager, tables, &INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &TABLES).await
    }
}
