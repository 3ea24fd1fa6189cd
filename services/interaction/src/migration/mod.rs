//! The interaction service's migrations; its tables start with `interaction_`.

mod m0001_idempotency_keys;
mod m0002_outbox;
mod m0003_event_consumers;
mod m0004_outbox_retention;

use sea_orm_migration::prelude::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_idempotency_keys::Migration),
            Box::new(m0002_outbox::Migration),
            Box::new(m0003_event_consumers::Migration),
            Box::new(m0004_outbox_retention::Migration),
        ]
    }

    /// Each service records its own migrations, so services can be deployed and migrated
    /// independently even when they share one database.
    fn migration_table_name() -> DynIden {
        Alias::new("interaction_migrations").into_iden()
    }
}
