//! The interaction service's migrations; its tables start with `interaction_`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};
use throughline_runtime::migration::columns::{bigint, column, integer, text};

use crate::sql::Sql;

pub struct Migrator;

impl MigratorTrait for Migrator {
    /// The tables every service has come first; the service's own follow.
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = throughline_runtime::migration::shared(crate::NAME);
        migrations.push(Box::new(M0005Timeline));
        migrations.push(Box::new(M0006TimelineKey));
        migrations
    }

    /// Each service records its own migrations, so services can be deployed and migrated
    /// independently even when they share one database.
    fn migration_table_name() -> DynIden {
        Alias::new("interaction_migrations").into_iden()
    }
}

/// Interactions, threads and the profile merges the timeline follows.
///
/// Times are microseconds since the Unix epoch in BIGINT columns on both databases, so that
/// windows and gaps in the analytics are integer arithmetic that SQLite and PostgreSQL agree on.
struct M0005Timeline;

impl MigrationName for M0005Timeline {
    fn name(&self) -> &str {
        "m0005_timeline"
    }
}

fn nullable_bigint(name: &str) -> ColumnDef {
    column(name).big_integer().null().to_owned()
}

fn nullable_blob(name: &str) -> ColumnDef {
    column(name).binary().null().to_owned()
}

/// Indexes written out, for descending keys and partial indexes on both databases.
const INDEXES: [&str; 6] = [
    // A customer's timeline, newest first: one index range per page.
    "CREATE INDEX IF NOT EXISTS interaction_interactions_timeline \
     ON interaction_interactions (tenant, timeline, occur_us DESC, id DESC)",
    // The latest interaction per channel (customer context) and channel-filtered timelines.
    "CREATE INDEX IF NOT EXISTS interaction_interactions_timeline_channel \
     ON interaction_interactions (tenant, timeline, channel, occur_us DESC, id DESC)",
    // A thread's interactions; most interactions have none, so only those that do.
    "CREATE INDEX IF NOT EXISTS interaction_interactions_thread \
     ON interaction_interactions (tenant, thread, occur_us DESC, id DESC) WHERE thread <> ''",
    // Contact analytics scan inbound contacts in a time window.
    "CREATE INDEX IF NOT EXISTS interaction_interactions_inbound \
     ON interaction_interactions (tenant, occur_us) WHERE direction = 1",
    "CREATE INDEX IF NOT EXISTS interaction_threads_timeline \
     ON interaction_threads (tenant, timeline, active_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS interaction_profile_merges_target \
     ON interaction_profile_merges (tenant, target)",
];

#[async_trait::async_trait]
impl MigrationTrait for M0005Timeline {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("interaction_interactions"))
                    .if_not_exists()
                    .col(text("tenant"))
                    .col(text("id"))
                    // The customer as recorded (canonical form of the reference given).
                    .col(text("customer"))
                    // The profile it resolved to when recorded; empty when unresolved.
                    .col(text("profile"))
                    // Whose timeline it is on now: the surviving profile after merges, else
                    // the customer key.
                    .col(text("timeline"))
                    .col(integer("channel"))
                    .col(integer("direction"))
                    .col(text("interaction_type"))
                    .col(bigint("occur_us"))
                    .col(bigint("record_us"))
                    .col(text("thread"))
                    .col(text("touchpoint"))
                    .col(text("reason"))
                    .col(text("step"))
                    .col(text("agent"))
                    .col(text("outcome"))
                    .col(text("source"))
                    .col(nullable_blob("attributes"))
                    .col(bigint("content_hash"))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("tenant"))
                            .col(Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("interaction_threads"))
                    .if_not_exists()
                    .col(text("tenant"))
                    .col(text("id"))
                    .col(text("customer"))
                    .col(text("profile"))
                    .col(text("timeline"))
                    .col(text("display_name"))
                    .col(text("reason"))
                    .col(integer("state"))
                    .col(text("current_step"))
                    .col(nullable_bigint("step_us"))
                    .col(integer("opened_channel"))
                    .col(nullable_bigint("first_us"))
                    .col(integer("last_channel"))
                    .col(nullable_bigint("last_us"))
                    // Most recent of creation and last interaction: the order of ListThreads.
                    .col(bigint("active_us"))
                    .col(bigint("interaction_count"))
                    .col(text("resolution"))
                    .col(nullable_blob("attributes"))
                    .col(bigint("create_us"))
                    .col(bigint("update_us"))
                    .col(nullable_bigint("resolve_us"))
                    .col(bigint("revision"))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("tenant"))
                            .col(Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("interaction_profile_merges"))
                    .if_not_exists()
                    .col(text("tenant"))
                    // Merged away; at most one active merge per source.
                    .col(text("source"))
                    .col(text("target"))
                    .col(text("merge_event"))
                    .col(bigint("merge_us"))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("tenant"))
                            .col(Alias::new("source")),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for index in INDEXES {
            db.execute_unprepared(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "interaction_profile_merges",
            "interaction_threads",
            "interaction_interactions",
        ] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// The two per-customer timeline indexes keyed by [`crate::timeline_key`] instead of
/// `(tenant, timeline)` text: 8 bytes where the two strings took tens, so an index has fewer
/// pages for a commit to rewrite. Existing rows get their key before the old indexes go: on
/// PostgreSQL by one `UPDATE` computing it in SQL, on SQLite one timeline at a time.
struct M0006TimelineKey;

impl MigrationName for M0006TimelineKey {
    fn name(&self) -> &str {
        "m0006_timeline_key"
    }
}

/// [`crate::timeline_key`] in PostgreSQL's SQL: the first 8 bytes of the SHA-256 of the tenant,
/// a zero byte and the timeline, read as a big-endian signed integer.
const POSTGRES_TIMELINE_KEY: &str = "('x' || encode(substr(sha256(convert_to(tenant, 'UTF8') \
     || '\\x00'::bytea || convert_to(timeline, 'UTF8')), 1, 8), 'hex'))::bit(64)::bigint";

const OLD_TIMELINE_INDEXES: [(&str, &str); 2] = [
    (
        "interaction_interactions_timeline",
        "(tenant, timeline, occur_us DESC, id DESC)",
    ),
    (
        "interaction_interactions_timeline_channel",
        "(tenant, timeline, channel, occur_us DESC, id DESC)",
    ),
];

const KEYED_TIMELINE_INDEXES: [(&str, &str); 2] = [
    // A customer's timeline, newest first: one index range per page.
    (
        "interaction_interactions_timeline_key",
        "(timeline_key, occur_us DESC, id DESC)",
    ),
    // The latest interaction per channel (customer context) and channel-filtered timelines.
    (
        "interaction_interactions_timeline_key_channel",
        "(timeline_key, channel, occur_us DESC, id DESC)",
    ),
];

async fn create_indexes(db: &impl ConnectionTrait, indexes: &[(&str, &str)]) -> Result<(), DbErr> {
    for (name, columns) in indexes {
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {name} ON interaction_interactions {columns}"
        ))
        .await?;
    }
    Ok(())
}

async fn drop_indexes(db: &impl ConnectionTrait, indexes: &[(&str, &str)]) -> Result<(), DbErr> {
    for (name, _) in indexes {
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for M0006TimelineKey {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE interaction_interactions \
             ADD COLUMN timeline_key BIGINT NOT NULL DEFAULT 0",
        )
        .await?;
        let backend = db.get_database_backend();
        if backend == sea_orm::DbBackend::Postgres {
            // PostgreSQL computes the key itself, in one pass over the table.
            db.execute_unprepared(&format!(
                "UPDATE interaction_interactions SET timeline_key = {POSTGRES_TIMELINE_KEY}"
            ))
            .await?;
            drop_indexes(db, &OLD_TIMELINE_INDEXES).await?;
            return create_indexes(db, &KEYED_TIMELINE_INDEXES).await;
        }
        // SQLite has no SHA-256: one update per timeline, found through the old index.
        let timelines = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT DISTINCT tenant, timeline FROM interaction_interactions",
            ))
            .await?;
        for row in timelines {
            let tenant: String = row.try_get("", "tenant")?;
            let timeline: String = row.try_get("", "timeline")?;
            let mut update = Sql::new(backend);
            update
                .push("UPDATE interaction_interactions SET timeline_key = ")
                .bind(crate::timeline_key(&tenant, &timeline))
                .push(" WHERE tenant = ")
                .bind(tenant.as_str())
                .push(" AND timeline = ")
                .bind(timeline.as_str());
            db.execute_raw(update.statement()).await?;
        }
        drop_indexes(db, &OLD_TIMELINE_INDEXES).await?;
        create_indexes(db, &KEYED_TIMELINE_INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        create_indexes(db, &OLD_TIMELINE_INDEXES).await?;
        drop_indexes(db, &KEYED_TIMELINE_INDEXES).await?;
        db.execute_unprepared("ALTER TABLE interaction_interactions DROP COLUMN timeline_key")
            .await?;
        Ok(())
    }
}
