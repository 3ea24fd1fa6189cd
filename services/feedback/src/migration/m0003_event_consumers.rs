use sea_orm_migration::prelude::*;
use throughline_runtime::migration::{create_event_consumer_tables, drop_event_consumer_tables};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in create_event_consumer_tables(crate::NAME) {
            manager.create_table(table).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in drop_event_consumer_tables(crate::NAME) {
            manager.drop_table(table).await?;
        }
        Ok(())
    }
}
