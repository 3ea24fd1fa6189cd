use sea_orm_migration::prelude::*;
use throughline_runtime::migration::{create_outbox_watermark, drop_outbox_watermark};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(create_outbox_watermark(crate::NAME))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(drop_outbox_watermark(crate::NAME)).await
    }
}
