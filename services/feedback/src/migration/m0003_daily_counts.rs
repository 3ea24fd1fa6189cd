//! Daily counts of answers, responses and invitations per survey, UTC day, channel, kind and
//! score, and the changes not yet folded into them (see `crate::store::counts`), filled from
//! the rows already held.

use sea_orm_migration::prelude::*;
use throughline_runtime::migration::columns::{bigint, column, integer, primary_key, text};

pub(crate) struct M0003DailyCounts;

impl MigrationName for M0003DailyCounts {
    fn name(&self) -> &str {
        "m0003_daily_counts"
    }
}

const TABLES: [&str; 2] = ["feedback_daily_counts", "feedback_count_changes"];

fn counters(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table
        .col(text("tenant"))
        .col(text("survey_id"))
        .col(bigint("day_us"))
        .col(integer("channel"))
        .col(integer("kind"))
        .col(integer("score"))
        .col(bigint("n"))
}

#[async_trait::async_trait]
impl MigrationTrait for M0003DailyCounts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let daily = counters(
            Table::create()
                .table(Alias::new("feedback_daily_counts"))
                .if_not_exists(),
        )
        .primary_key(&mut primary_key(&[
            "tenant",
            "survey_id",
            "day_us",
            "channel",
            "kind",
            "score",
        ]))
        .to_owned();
        let changes = counters(
            Table::create()
                .table(Alias::new("feedback_count_changes"))
                .if_not_exists()
                .col(
                    column("seq")
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                ),
        )
        .to_owned();
        throughline_runtime::migration::create_tables(manager, vec![daily, changes], &[]).await?;

        // Responses and invitations recorded before this migration.
        crate::store::counts::recount(manager.get_connection())
            .await
            .map_err(|error| DbErr::Migration(error.to_string()))
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        throughline_runtime::migration::drop_tables(manager, &TABLES).await
    }
}
