//! The distribution service's migrations; its tables start with `distribution_`.

use sea_orm_migration::prelude::*;
use throughline_runtime::migration::columns::{
    bigint, blob, integer, nullable_bigint, primary_key, text,
};

mod m0006_webhooks;

pub struct Migrator;

impl MigratorTrait for Migrator {
    /// The tables every service has come first; the service's own follow.
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = throughline_runtime::migration::shared(crate::NAME);
        migrations.push(Box::new(M0005Messages));
        migrations.push(Box::new(m0006_webhooks::M0006Webhooks));
        migrations
    }

    /// Each service records its own migrations, so services can be deployed and migrated
    /// independently even when they share one database.
    fn migration_table_name() -> DynIden {
        Alias::new("distribution_migrations").into_iden()
    }
}

/// Templates, the message queue with its status history, suppressions, the contact policy and
/// the contact budget's counters.
///
/// Times are microseconds since the Unix epoch in BIGINT columns on both databases, as in the
/// interaction service.
struct M0005Messages;

impl MigrationName for M0005Messages {
    fn name(&self) -> &str {
        "m0005_messages"
    }
}

/// Indexes written out, for descending keys and partial indexes on both databases.
const INDEXES: [&str; 8] = [
    "CREATE INDEX IF NOT EXISTS distribution_templates_list \
     ON distribution_templates (tenant, display_name, id)",
    // A retried send finds its first message.
    "CREATE UNIQUE INDEX IF NOT EXISTS distribution_messages_request \
     ON distribution_messages (tenant, request_id)",
    // The delivery queue: only messages still to send, highest priority first, then the
    // earliest due. Workers of every tenant share it.
    "CREATE INDEX IF NOT EXISTS distribution_messages_queue \
     ON distribution_messages (priority DESC, next_attempt_us) WHERE status IN (1, 2)",
    "CREATE INDEX IF NOT EXISTS distribution_messages_newest \
     ON distribution_messages (tenant, create_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS distribution_messages_profile \
     ON distribution_messages (tenant, profile, create_us DESC, id DESC) WHERE profile <> ''",
    // Receipts name the provider's id for a message.
    "CREATE INDEX IF NOT EXISTS distribution_messages_provider_id \
     ON distribution_messages (provider, provider_message_id) WHERE provider_message_id <> ''",
    // A reply finds the last message sent to its sender.
    "CREATE INDEX IF NOT EXISTS distribution_messages_address \
     ON distribution_messages (tenant, address, create_us DESC)",
    "CREATE UNIQUE INDEX IF NOT EXISTS distribution_suppressions_address \
     ON distribution_suppressions (tenant, address, channel, purpose)",
];

const TABLES: [&str; 7] = [
    "distribution_templates",
    "distribution_messages",
    "distribution_message_history",
    "distribution_suppressions",
    "distribution_contact_policies",
    "distribution_budget_usage",
    "distribution_inbound",
];

#[async_trait::async_trait]
impl MigrationTrait for M0005Messages {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table(Alias::new("distribution_templates"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("id"))
                .col(text("display_name"))
                // The channels the variants cover, as `,1,2,`, for ListTemplates' filter.
                .col(text("channels"))
                // The template as a `Template` message, without its name, times and etag.
                .col(blob("body"))
                .col(bigint("revision"))
                .col(bigint("create_us"))
                .col(bigint("update_us"))
                .primary_key(&mut primary_key(&["tenant", "id"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("distribution_messages"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("id"))
                .col(text("request_id"))
                .col(text("send_group"))
                // `profiles/{id}` of a profile recipient; empty for an explicit address.
                .col(text("profile"))
                // The `Recipient` as sent.
                .col(blob("recipient"))
                .col(integer("channel"))
                .col(text("address"))
                .col(integer("purpose"))
                .col(integer("priority"))
                .col(text("template"))
                .col(text("locale"))
                .col(text("origin"))
                .col(integer("status"))
                // The rendered `TemplateVariant`; empty for a message suppressed before rendering.
                .col(blob("content"))
                .col(text("provider"))
                .col(text("provider_message_id"))
                .col(integer("attempt_count"))
                .col(nullable_bigint("not_before_us"))
                .col(bigint("next_attempt_us"))
                // A worker holds a claimed message until then; 0 when no one does.
                .col(bigint("lease_until_us"))
                // The budget counters the message took, to give back if it is cancelled.
                .col(text("budget_keys"))
                // Entries in `distribution_message_history`: the next one's `seq` follows.
                .col(integer("history_len"))
                .col(bigint("create_us"))
                .col(bigint("update_us"))
                .primary_key(&mut primary_key(&["tenant", "id"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("distribution_message_history"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("message"))
                .col(integer("seq"))
                .col(integer("status"))
                .col(integer("reason"))
                .col(bigint("time_us"))
                .col(text("provider"))
                .col(integer("attempt"))
                .col(text("detail"))
                .primary_key(&mut primary_key(&["tenant", "message", "seq"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("distribution_suppressions"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("id"))
                // The normalised address with its kind: `email:…`, `phone:…`, `device:…`.
                .col(text("address"))
                .col(integer("channel"))
                .col(integer("purpose"))
                .col(integer("reason"))
                .col(text("source"))
                .col(text("note"))
                .col(nullable_bigint("expire_us"))
                .col(bigint("create_us"))
                .primary_key(&mut primary_key(&["tenant", "id"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("distribution_contact_policies"))
                .if_not_exists()
                .col(text("tenant"))
                // The `ContactPolicy` message, without its name, time and etag.
                .col(blob("body"))
                .col(bigint("revision"))
                .col(bigint("update_us"))
                .primary_key(&mut primary_key(&["tenant"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("distribution_budget_usage"))
                .if_not_exists()
                .col(text("tenant"))
                // `profiles/{id}`, or the address of a recipient without a profile.
                .col(text("customer"))
                // Which limit: channel, purpose and period, as `c{channel}.p{purpose}.{period}`.
                .col(text("limit_key"))
                // The period's first local day, as yyyymmdd.
                .col(integer("period_start"))
                .col(integer("used"))
                .primary_key(&mut primary_key(&[
                    "tenant",
                    "customer",
                    "limit_key",
                    "period_start",
                ]))
                .to_owned(),
            Table::create()
                .table(Alias::new("distribution_inbound"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("provider"))
                // What makes a report the same report: a receipt's message, status and link,
                // a reply's provider id.
                .col(text("report_key"))
                // The `InboundResult` first answered, replayed to repeats.
                .col(blob("result"))
                .col(bigint("create_us"))
                .primary_key(&mut primary_key(&["tenant", "provider", "report_key"]))
                .to_owned(),
        ];
        throughline_runtime::migration::create_tables(manager, Vec::from(tables), &INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        throughline_runtime::migration::drop_tables(manager, &TABLES).await
    }
}
