use sea_orm_migration::prelude::*;
use throughline_runtime::migration::{create_outbox, create_outbox_indexes, drop_outbox};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(create_outbox(crate::NAME, manager.get_database_backend()))
            .await?;
        for index in create_outbox_indexes(crate::NAME) {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(drop_outbox(crate::NAME)).await
    }
}
