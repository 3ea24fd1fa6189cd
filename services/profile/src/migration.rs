//! The profile service's migrations; its tables start with `profile_`.
//!
//! Times are stored as microseconds since the epoch (BIGINT): they compare, sort and round-trip
//! alike on SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;
use throughline_runtime::migration::columns::{bigint, blob, column, integer, text};

pub struct Migrator;

impl MigratorTrait for Migrator {
    /// The tables every service has come first; the service's own follow.
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = throughline_runtime::migration::shared(crate::NAME);
        migrations.push(Box::new(ProfileTables));
        migrations.push(Box::new(IdentifierHolderInKey));
        migrations
    }

    /// Each service records its own migrations, so services can be deployed and migrated
    /// independently even when they share one database.
    fn migration_table_name() -> DynIden {
        Alias::new("profile_migrations").into_iden()
    }
}

struct ProfileTables;

impl MigrationName for ProfileTables {
    fn name(&self) -> &str {
        "m0101_profile_tables"
    }
}

fn index(name: &str, table: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Alias::new(table)).if_not_exists();
    for column in columns {
        index.col(Alias::new(*column));
    }
    index.to_owned()
}

fn primary(columns: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    for column in columns {
        index.col(Alias::new(*column));
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for ProfileTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per profile; core fields, attributes and preferences are one encoded
        // `Profile` message (`data`), so a profile reads in one row and round-trips exactly.
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("profile_profiles"))
                    .if_not_exists()
                    .col(text("id").primary_key())
                    .col(text("tenant"))
                    .col(integer("state"))
                    .col(column("merged_into").text().null())
                    .col(blob("data"))
                    .col(bigint("version"))
                    .col(bigint("created_us"))
                    .col(bigint("updated_us"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "profile_profiles_listing",
                "profile_profiles",
                &["tenant", "created_us", "id"],
            ))
            .await?;

        // The primary key is what makes identifiers unique per tenant: two writers racing to
        // claim one identifier cannot both commit.
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("profile_identifiers"))
                    .if_not_exists()
                    .col(text("tenant"))
                    .col(integer("kind"))
                    .col(text("source"))
                    .col(text("value"))
                    .col(text("profile_id"))
                    .col(bigint("created_us"))
                    .primary_key(&mut primary(&["tenant", "kind", "source", "value"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "profile_identifiers_profile",
                "profile_identifiers",
                &["profile_id"],
            ))
            .await?;

        // Consent records are append-only; the current status of a pair is its newest record.
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("profile_consents"))
                    .if_not_exists()
                    .col(
                        column("id")
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(text("tenant"))
                    .col(text("profile_id"))
                    .col(integer("channel"))
                    .col(integer("purpose"))
                    .col(integer("status"))
                    .col(text("source"))
                    .col(text("evidence"))
                    .col(bigint("effective_us"))
                    .col(bigint("record_us"))
                    .col(text("recorded_by"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "profile_consents_current",
                "profile_consents",
                &["profile_id", "channel", "purpose", "effective_us", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Alias::new("profile_segments"))
                    .if_not_exists()
                    .col(text("tenant"))
                    .col(text("id"))
                    .col(text("display_name"))
                    .col(text("description"))
                    .col(text("rule"))
                    .col(integer("state"))
                    .col(bigint("version"))
                    .col(bigint("created_us"))
                    .col(bigint("updated_us"))
                    .primary_key(&mut primary(&["tenant", "id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("profile_segment_members"))
                    .if_not_exists()
                    .col(text("tenant"))
                    .col(text("segment_id"))
                    .col(text("profile_id"))
                    .col(bigint("enter_us"))
                    .primary_key(&mut primary(&["tenant", "segment_id", "profile_id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "profile_segment_members_profile",
                "profile_segment_members",
                &["profile_id"],
            ))
            .await?;

        // A merge keeps what undoing it needs: the target's data before and right after the
        // merge (to tell later changes from what the merge did), the source's data, and the
        // consent records that moved.
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("profile_merge_events"))
                    .if_not_exists()
                    .col(text("id").primary_key())
                    .col(text("tenant"))
                    .col(text("source_profile"))
                    .col(text("target_profile"))
                    .col(integer("state"))
                    .col(bigint("merge_us"))
                    .col(blob("event"))
                    .col(blob("target_before"))
                    .col(blob("target_after"))
                    .col(text("moved_consents"))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("profile_merge_events_source", "source_profile"),
            ("profile_merge_events_target", "target_profile"),
        ] {
            manager
                .create_index(index(
                    name,
                    "profile_merge_events",
                    &["tenant", column, "merge_us"],
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "profile_merge_events",
            "profile_segment_members",
            "profile_segments",
            "profile_consents",
            "profile_identifiers",
            "profile_profiles",
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

/// On PostgreSQL the identifiers' primary key also carries the holding profile (`INCLUDE`), so
/// the lookups every CheckConsent and ResolveIdentity of a known identifier make read the
/// index alone instead of the index and then the row: one random page read fewer each, which
/// measured CheckConsent 18.4k → 20.0k/s over a million profiles. SQLite has no `INCLUDE` (a
/// covering index there would be a second index for every identifier write to maintain) and
/// is not the production database, so it stays as it is. Rebuilding the key holds writes to
/// identifiers meanwhile (a few seconds per million on the benchmark machine).
struct IdentifierHolderInKey;

impl MigrationName for IdentifierHolderInKey {
    fn name(&self) -> &str {
        "m0102_identifier_holder_in_key"
    }
}

const IDENTIFIER_KEY: &str = "tenant, kind, source, value";

async fn rebuild_identifier_key(manager: &SchemaManager<'_>, include: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "ALTER TABLE profile_identifiers DROP CONSTRAINT profile_identifiers_pkey, \
             ADD CONSTRAINT profile_identifiers_pkey PRIMARY KEY ({IDENTIFIER_KEY}){include}"
        ))
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for IdentifierHolderInKey {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild_identifier_key(manager, " INCLUDE (profile_id)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild_identifier_key(manager, "").await
    }
}
