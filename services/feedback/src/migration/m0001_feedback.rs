//! Surveys and their versions, invitations, responses with the rows metrics and themes read,
//! follow-ups, the fatigue rule's last invitation per customer and segment membership.
//!
//! Times are microseconds since the Unix epoch in BIGINT columns on both databases. Context
//! columns (`interaction`, `thread`, `journey`, `journey_instance`, `journey_node`, `channel`,
//! `touchpoint`) hold a `FeedbackContext`; empty text and channel 0 mean unset.

use sea_orm_migration::prelude::*;
use throughline_runtime::migration::columns::{
    bigint, blob, double, integer, nullable_bigint, primary_key, text,
};

pub(crate) struct M0001Feedback;

impl MigrationName for M0001Feedback {
    fn name(&self) -> &str {
        "m0001_feedback"
    }
}

const TABLES: [&str; 9] = [
    "feedback_surveys",
    "feedback_survey_versions",
    "feedback_invitations",
    "feedback_contacts",
    "feedback_responses",
    "feedback_scores",
    "feedback_texts",
    "feedback_follow_ups",
    "feedback_segment_members",
];

/// Indexes written out, for descending keys and partial indexes on both databases.
const INDEXES: [&str; 14] = [
    // An SMS reply finds the invitation its message carried.
    "CREATE INDEX IF NOT EXISTS feedback_invitations_message \
     ON feedback_invitations (tenant, message) WHERE message <> ''",
    "CREATE UNIQUE INDEX IF NOT EXISTS feedback_invitations_request \
     ON feedback_invitations (tenant, request_id)",
    "CREATE INDEX IF NOT EXISTS feedback_surveys_list \
     ON feedback_surveys (tenant, display_name, id)",
    // An invitation is answered through the unguessable token of its survey URL.
    "CREATE UNIQUE INDEX IF NOT EXISTS feedback_invitations_token ON feedback_invitations (token)",
    "CREATE INDEX IF NOT EXISTS feedback_invitations_newest \
     ON feedback_invitations (tenant, create_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS feedback_invitations_customer \
     ON feedback_invitations (tenant, customer, create_us DESC)",
    "CREATE INDEX IF NOT EXISTS feedback_invitations_profile \
     ON feedback_invitations (tenant, profile, create_us DESC) WHERE profile <> ''",
    // One response per invitation.
    "CREATE UNIQUE INDEX IF NOT EXISTS feedback_responses_invitation \
     ON feedback_responses (tenant, invitation_id) WHERE invitation_id <> ''",
    "CREATE INDEX IF NOT EXISTS feedback_responses_newest \
     ON feedback_responses (tenant, update_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS feedback_responses_profile \
     ON feedback_responses (tenant, profile) WHERE profile <> ''",
    // Metrics over one survey's window.
    "CREATE INDEX IF NOT EXISTS feedback_scores_window \
     ON feedback_scores (tenant, survey_id, create_us)",
    "CREATE INDEX IF NOT EXISTS feedback_texts_window \
     ON feedback_texts (tenant, survey_id, create_us)",
    "CREATE INDEX IF NOT EXISTS feedback_follow_ups_oldest \
     ON feedback_follow_ups (tenant, create_us, id)",
    "CREATE INDEX IF NOT EXISTS feedback_segment_members_segment \
     ON feedback_segment_members (tenant, segment, profile)",
];

/// The context columns every table about a response carries.
fn with_context(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table
        .col(text("interaction"))
        .col(text("thread"))
        .col(text("journey"))
        .col(text("journey_instance"))
        .col(text("journey_node"))
        .col(integer("channel"))
        .col(text("touchpoint"))
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Feedback {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table(Alias::new("feedback_surveys"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("id"))
                .col(text("display_name"))
                .col(integer("state"))
                // The latest published version; 0 before the first publication.
                .col(integer("version"))
                // The draft as a `Survey` message, without its name, state, version, times
                // and etag, which are columns.
                .col(blob("draft"))
                .col(bigint("revision"))
                .col(bigint("create_us"))
                .col(bigint("update_us"))
                .col(nullable_bigint("publish_us"))
                .primary_key(&mut primary_key(&["tenant", "id"]))
                .to_owned(),
            Table::create()
                .table(Alias::new("feedback_survey_versions"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("survey_id"))
                .col(integer("version"))
                // The `Survey` as published, frozen.
                .col(blob("definition"))
                .col(bigint("publish_us"))
                .primary_key(&mut primary_key(&["tenant", "survey_id", "version"]))
                .to_owned(),
            with_context(
                Table::create()
                    .table(Alias::new("feedback_invitations"))
                    .if_not_exists()
                    .col(text("tenant"))
                    .col(text("id"))
                    .col(text("survey_id"))
                    .col(integer("survey_version"))
                    // The customer's key (`runtime::customer::CustomerKey`).
                    .col(text("customer"))
                    // `profiles/{id}` when resolved, following merges; empty otherwise.
                    .col(text("profile"))
                    // The profile it was made for, which an unmerge gives it back to.
                    .col(text("recorded_profile")),
            )
            // The caller's idempotency key: a retry finds the invitation it made.
            .col(text("request_id"))
            // The `InvitationDelivery` asked for; empty when the caller presents the survey.
            // Kept so that a retry after a crash between sending and recording can finish.
            .col(blob("delivery"))
            .col(integer("state"))
            .col(text("state_reason"))
            .col(text("language"))
            .col(text("message"))
            .col(text("token"))
            .col(text("response_id"))
            .col(bigint("create_us"))
            .col(bigint("expire_us"))
            .primary_key(&mut primary_key(&["tenant", "id"]))
            .to_owned(),
            // The fatigue rule: when each customer (profile, or key when unresolved) was last
            // invited. A conditional update of this row admits one of two concurrent requests.
            Table::create()
                .table(Alias::new("feedback_contacts"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("customer"))
                .col(bigint("last_invited_us"))
                .primary_key(&mut primary_key(&["tenant", "customer"]))
                .to_owned(),
            with_context(
                Table::create()
                    .table(Alias::new("feedback_responses"))
                    .if_not_exists()
                    .col(text("tenant"))
                    .col(text("id"))
                    .col(text("survey_id"))
                    .col(integer("survey_version"))
                    // Empty for an uninvited response.
                    .col(text("invitation_id"))
                    .col(text("customer"))
                    .col(text("profile"))
                    .col(text("recorded_profile")),
            )
            .col(integer("response_channel"))
            .col(text("language"))
            // The answers as a `Response` message holding only `answers`.
            .col(blob("answers"))
            .col(integer("complete"))
            .col(integer("detractor"))
            .col(text("follow_up_id"))
            .col(bigint("create_us"))
            .col(bigint("update_us"))
            .col(nullable_bigint("complete_us"))
            .primary_key(&mut primary_key(&["tenant", "id"]))
            .to_owned(),
            // One row per scored answer (NPS, CSAT, CES), what metrics aggregate. `create_us`
            // is the response's, so an answer given later counts in the response's period.
            with_context(
                Table::create()
                    .table(Alias::new("feedback_scores"))
                    .if_not_exists()
                    .col(text("tenant"))
                    .col(text("response_id"))
                    .col(text("question_id"))
                    .col(text("survey_id"))
                    // 1 NPS, 2 CSAT, 3 CES (`MetricKind`).
                    .col(integer("kind"))
                    .col(integer("score"))
                    .col(text("profile"))
                    .col(bigint("create_us")),
            )
            .primary_key(&mut primary_key(&["tenant", "response_id", "question_id"]))
            .to_owned(),
            // One row per free-text answer with its sentiment, what themes mine.
            with_context(
                Table::create()
                    .table(Alias::new("feedback_texts"))
                    .if_not_exists()
                    .col(text("tenant"))
                    .col(text("response_id"))
                    .col(text("question_id"))
                    .col(text("survey_id"))
                    .col(text("body"))
                    .col(double("sentiment"))
                    // `SentimentLabel`.
                    .col(integer("label"))
                    .col(text("profile"))
                    .col(bigint("create_us")),
            )
            .primary_key(&mut primary_key(&["tenant", "response_id", "question_id"]))
            .to_owned(),
            Table::create()
                .table(Alias::new("feedback_follow_ups"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("id"))
                .col(text("response_id"))
                .col(text("survey_id"))
                .col(text("profile"))
                .col(text("recorded_profile"))
                .col(text("question_id"))
                .col(integer("score"))
                .col(integer("state"))
                .col(text("owner"))
                .col(text("notes"))
                .col(bigint("revision"))
                .col(bigint("create_us"))
                .col(bigint("update_us"))
                .col(nullable_bigint("resolve_us"))
                .primary_key(&mut primary_key(&["tenant", "id"]))
                .to_owned(),
            // Segment membership over time, from the profile service's `segment.entered` and
            // `segment.exited`: metrics count a response in the segments its customer was in
            // when they responded.
            Table::create()
                .table(Alias::new("feedback_segment_members"))
                .if_not_exists()
                .col(text("tenant"))
                .col(text("profile"))
                .col(text("segment"))
                .col(bigint("enter_us"))
                .col(nullable_bigint("exit_us"))
                .primary_key(&mut primary_key(&[
                    "tenant", "profile", "segment", "enter_us",
                ]))
                .to_owned(),
        ];
        throughline_runtime::migration::create_tables(manager, Vec::from(tables), &INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        throughline_runtime::migration::drop_tables(manager, &TABLES).await
    }
}
