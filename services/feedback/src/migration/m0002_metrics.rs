//! Indexes that let metrics count from the index alone: the responses and invitations of one
//! survey's window, and the answers of one survey's window with their kind, score and channel
//! (the breakdown a dashboard asks for most), so no table row is read to aggregate them.

use sea_orm_migration::prelude::*;

pub(crate) struct M0002Metrics;

impl MigrationName for M0002Metrics {
    fn name(&self) -> &str {
        "m0002_metrics"
    }
}

const INDEXES: [(&str, &str); 3] = [
    (
        "feedback_scores_metrics",
        "ON feedback_scores (tenant, survey_id, create_us, kind, score, channel)",
    ),
    (
        "feedback_responses_window",
        "ON feedback_responses (tenant, survey_id, create_us, channel, complete)",
    ),
    (
        "feedback_invitations_window",
        "ON feedback_invitations (tenant, survey_id, create_us)",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for M0002Metrics {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, definition) in INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX IF NOT EXISTS {name} {definition}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }
}
