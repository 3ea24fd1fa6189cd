//! What the profile service's identity events change here: merges move a customer's feedback
//! onto the surviving profile and unmerges move back what was recorded for the restored one;
//! erasure deletes everything held on a customer; segment events keep membership over time.

use sea_orm::ConnectionTrait;
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;

use super::counts::{self, Counted, Rows};

/// Tables whose rows were made for one profile and remember it in `recorded_profile`.
const RECORDED: [&str; 3] = [
    "feedback_invitations",
    "feedback_responses",
    "feedback_follow_ups",
];
/// Tables whose rows follow their response's profile.
const ANSWER_ROWS: [&str; 2] = ["feedback_scores", "feedback_texts"];

async fn execute(db: &impl ConnectionTrait, sql: Sql) -> Result<u64, Error> {
    Ok(db.execute_raw(sql.statement()).await?.rows_affected())
}

/// Gives the answer rows of `tenant` that are on `profile` their response's profile again.
async fn follow_responses(
    db: &impl ConnectionTrait,
    tenant: &str,
    profile: &str,
) -> Result<(), Error> {
    for table in ANSWER_ROWS {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!(
            "UPDATE {table} SET profile = (SELECT r.profile FROM feedback_responses r \
             WHERE r.tenant = {table}.tenant AND r.id = {table}.response_id) WHERE tenant = "
        ))
        .bind(tenant)
        .push(" AND profile = ")
        .bind(profile);
        execute(db, sql).await?;
    }
    Ok(())
}

/// Moves everything on `source` onto `target`.
pub(crate) async fn merge(
    db: &impl ConnectionTrait,
    tenant: &str,
    source: &str,
    target: &str,
) -> Result<(), Error> {
    for table in RECORDED.iter().chain(&ANSWER_ROWS) {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!("UPDATE {table} SET profile = "))
            .bind(target)
            .push(" WHERE tenant = ")
            .bind(tenant)
            .push(" AND profile = ")
            .bind(source);
        execute(db, sql).await?;
    }
    // The merged customer was invited when either of them last was.
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "INSERT INTO feedback_contacts (tenant, customer, last_invited_us) \
         SELECT tenant, ",
    )
    .bind(target)
    .push(", last_invited_us FROM feedback_contacts WHERE tenant = ")
    .bind(tenant)
    .push(" AND customer = ")
    .bind(source)
    .push(
        " ON CONFLICT (tenant, customer) DO UPDATE SET last_invited_us = \
         excluded.last_invited_us WHERE feedback_contacts.last_invited_us < \
         excluded.last_invited_us",
    );
    execute(db, sql).await?;
    Ok(())
}

/// Moves back onto `source` what was recorded for it and is now on `target`; what was recorded
/// for `target` (before or after the merge) stays.
pub(crate) async fn unmerge(
    db: &impl ConnectionTrait,
    tenant: &str,
    source: &str,
    target: &str,
) -> Result<(), Error> {
    for table in RECORDED {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!("UPDATE {table} SET profile = "))
            .bind(source)
            .push(" WHERE tenant = ")
            .bind(tenant)
            .push(" AND profile = ")
            .bind(target)
            .push(" AND recorded_profile = ")
            .bind(source);
        execute(db, sql).await?;
    }
    follow_responses(db, tenant, target).await
}

/// Deletes everything held on `profiles`; returns the responses deleted.
pub(crate) async fn erase(
    db: &impl ConnectionTrait,
    tenant: &str,
    profiles: &[String],
) -> Result<u64, Error> {
    let mut responses = 0;
    let profile_ids: Vec<&str> = profiles.iter().map(String::as_str).collect();
    for table in ANSWER_ROWS.iter().chain(&RECORDED) {
        for column in ["profile", "recorded_profile"] {
            if ANSWER_ROWS.contains(table) && column == "recorded_profile" {
                continue;
            }
            let counted = match *table {
                "feedback_scores" => Some(Counted::Scores),
                "feedback_responses" => Some(Counted::Responses),
                "feedback_invitations" => Some(Counted::Invitations),
                _ => None,
            };
            if let Some(counted) = counted {
                let rows = Rows::Where {
                    tenant,
                    column,
                    values: &profile_ids,
                };
                counts::record(db, -1, &[(counted, rows)]).await?;
            }
            let mut sql = Sql::new(db.get_database_backend());
            sql.push(&format!("DELETE FROM {table} WHERE tenant = "))
                .bind(tenant)
                .push(&format!(" AND {column} IN "))
                .bind_list(profiles.iter().map(String::as_str));
            let deleted = execute(db, sql).await?;
            if *table == "feedback_responses" {
                responses += deleted;
            }
        }
    }
    for (table, column) in [
        ("feedback_contacts", "customer"),
        ("feedback_segment_members", "profile"),
    ] {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!("DELETE FROM {table} WHERE tenant = "))
            .bind(tenant)
            .push(&format!(" AND {column} IN "))
            .bind_list(profiles.iter().map(String::as_str));
        execute(db, sql).await?;
    }
    Ok(responses)
}

/// Records that `profile` entered `segment` at `time_us`, unless it is in it already.
pub(crate) async fn enter_segment(
    db: &impl ConnectionTrait,
    tenant: &str,
    profile: &str,
    segment: &str,
    time_us: i64,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("INSERT INTO feedback_segment_members (tenant, profile, segment, enter_us, exit_us) SELECT ")
        .bind(tenant)
        .push(", ")
        .bind(profile)
        .push(", ")
        .bind(segment)
        .push(", ")
        .bind(time_us)
        .push(", NULL WHERE NOT EXISTS (SELECT 1 FROM feedback_segment_members WHERE tenant = ")
        .bind(tenant)
        .push(" AND profile = ")
        .bind(profile)
        .push(" AND segment = ")
        .bind(segment)
        .push(" AND exit_us IS NULL) ON CONFLICT DO NOTHING");
    execute(db, sql).await?;
    Ok(())
}

/// Records that `profile` left `segment` at `time_us`.
pub(crate) async fn exit_segment(
    db: &impl ConnectionTrait,
    tenant: &str,
    profile: &str,
    segment: &str,
    time_us: i64,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE feedback_segment_members SET exit_us = ")
        .bind(time_us)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND profile = ")
        .bind(profile)
        .push(" AND segment = ")
        .bind(segment)
        .push(" AND exit_us IS NULL");
    execute(db, sql).await?;
    Ok(())
}
