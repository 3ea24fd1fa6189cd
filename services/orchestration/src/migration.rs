//! The orchestration service's migrations; its tables start with `orchestration_`.

use sea_orm_migration::prelude::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    /// The tables every service has come first; the service's own follow.
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        throughline_runtime::migration::shared(crate::NAME)
    }

    /// Each service records its own migrations, so services can be deployed and migrated
    /// independently even when they share one database.
    fn migration_table_name() -> DynIden {
        Alias::new("orchestration_migrations").into_iden()
    }
}
