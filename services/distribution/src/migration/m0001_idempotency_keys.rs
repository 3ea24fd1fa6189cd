use sea_orm_migration::prelude::*;
use throughline_runtime::migration::{create_idempotency_keys, drop_idempotency_keys};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(create_idempotency_keys(crate::NAME))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(drop_idempotency_keys(crate::NAME)).await
    }
}
