//! The feedback service's migrations; its tables start with `feedback_`.

use sea_orm_migration::prelude::*;

mod m0001_feedback;
mod m0002_metrics;
mod m0003_daily_counts;

pub struct Migrator;

impl MigratorTrait for Migrator {
    /// The tables every service has come first; the service's own follow.
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = throughline_runtime::migration::shared(crate::NAME);
        migrations.push(Box::new(m0001_feedback::M0001Feedback));
        migrations.push(Box::new(m0002_metrics::M0002Metrics));
        migrations.push(Box::new(m0003_daily_counts::M0003DailyCounts));
        migrations
    }

    /// Each service records its own migrations, so services can be deployed and migrated
    /// independently even when they share one database.
    fn migration_table_name() -> DynIden {
        Alias::new("feedback_migrations").into_iden()
    }
}
