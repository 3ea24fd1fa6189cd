//! The orchestration service's migrations; its tables start with `orchestration_`.

use sea_orm_migration::prelude::*;

mod m0001_orchestration;

pub struct Migrator;

impl MigratorTrait for Migrator {
    /// The tables every service has come first; the service's own follow.
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = throughline_runtime::migration::shared(crate::NAME);
        migrations.push(Box::new(m0001_orchestration::M0001Orchestration));
        migrations
    }

    /// Each service records its own migrations, so services can be deployed and migrated
    /// independently even when they share one database.
    fn migration_table_name() -> DynIden {
        Alias::new("orchestration_migrations").into_iden()
    }
}
