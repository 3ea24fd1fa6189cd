//! `feedback_follow_ups`: closing the loop with detractors.

use sea_orm::{ConnectionTrait, QueryResult};
use throughline_proto::feedback::v1::FollowUp;
use throughline_runtime::Error;
use throughline_runtime::sql::{Sql, insert_rows};
use throughline_runtime::time::{PageToken, timestamp, timestamp_us};

const COLUMNS: &str = "id, response_id, survey_id, profile, question_id, score, state, owner, \
                       notes, revision, create_us, update_us, resolve_us";

/// `followUps/{id}`.
pub(crate) fn follow_up_name(id: &str) -> String {
    format!("followUps/{id}")
}

fn from_row(row: &QueryResult) -> Result<FollowUp, Error> {
    let id: String = row.try_get("", "id")?;
    let response_id: String = row.try_get("", "response_id")?;
    let survey_id: String = row.try_get("", "survey_id")?;
    let revision: i64 = row.try_get("", "revision")?;
    let create_us: i64 = row.try_get("", "create_us")?;
    let update_us: i64 = row.try_get("", "update_us")?;
    let resolve_us: Option<i64> = row.try_get("", "resolve_us")?;
    Ok(FollowUp {
        name: follow_up_name(&id),
        response: super::responses::response_name(&response_id),
        survey: super::surveys::survey_name(&survey_id),
        profile: row.try_get("", "profile")?,
        question_id: row.try_get("", "question_id")?,
        score: row.try_get("", "score")?,
        state: row.try_get("", "state")?,
        owner: row.try_get("", "owner")?,
        notes: row.try_get("", "notes")?,
        create_time: Some(timestamp(create_us)),
        update_time: Some(timestamp(update_us)),
        resolve_time: resolve_us.map(timestamp),
        etag: revision.to_string(),
    })
}

fn id_of(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or_default()
}

/// Saves new follow-ups (of any tenants) at revision 1, in one statement.
pub(crate) async fn insert_all(
    db: &impl ConnectionTrait,
    follow_ups: &[(&str, &FollowUp)],
) -> Result<(), Error> {
    if follow_ups.is_empty() {
        return Ok(());
    }
    let rows = follow_ups.iter().map(|(tenant, follow_up)| {
        let create_us = follow_up
            .create_time
            .as_ref()
            .and_then(timestamp_us)
            .unwrap_or_default();
        vec![
            sea_orm::Value::from(*tenant),
            id_of(&follow_up.name).into(),
            id_of(&follow_up.response).into(),
            id_of(&follow_up.survey).into(),
            follow_up.profile.clone().into(),
            follow_up.question_id.clone().into(),
            follow_up.score.into(),
            follow_up.state.into(),
            follow_up.owner.clone().into(),
            follow_up.notes.clone().into(),
            1_i64.into(),
            create_us.into(),
            create_us.into(),
            Option::<i64>::None.into(),
            follow_up.profile.clone().into(),
        ]
    });
    let mut columns = vec!["tenant"];
    columns.extend(COLUMNS.split(", "));
    columns.push("recorded_profile");
    let sql = insert_rows(
        db.get_database_backend(),
        "feedback_follow_ups",
        &columns,
        rows,
    )?;
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

pub(crate) async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
) -> Result<Option<FollowUp>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM feedback_follow_ups WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND id = ")
    .bind(id);
    db.query_one_raw(sql.statement())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Stores `follow_up`'s state, owner, notes and times if its revision is still `revision`;
/// `false` when another change came first.
pub(crate) async fn update(
    db: &impl ConnectionTrait,
    tenant: &str,
    follow_up: &FollowUp,
    revision: i64,
) -> Result<bool, Error> {
    let update_us = follow_up.update_time.as_ref().and_then(timestamp_us);
    let resolve_us = follow_up.resolve_time.as_ref().and_then(timestamp_us);
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE feedback_follow_ups SET state = ")
        .bind(follow_up.state)
        .push(", owner = ")
        .bind(follow_up.owner.as_str())
        .push(", notes = ")
        .bind(follow_up.notes.as_str())
        .push(", update_us = ")
        .bind(update_us)
        .push(", resolve_us = ")
        .bind(resolve_us)
        .push(", revision = revision + 1 WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id_of(&follow_up.name))
        .push(" AND revision = ")
        .bind(revision);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Filters of ListFollowUps.
#[derive(Debug, Default)]
pub(crate) struct ListFilter {
    pub states: Vec<i32>,
    pub owner: Option<String>,
    pub survey_id: Option<String>,
    pub profile: Option<String>,
}

/// A page of follow-ups, oldest first (the longest-waiting customer first).
pub(crate) async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &ListFilter,
    after: Option<&PageToken>,
    limit: usize,
) -> Result<Vec<FollowUp>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM feedback_follow_ups WHERE tenant = "
    ))
    .bind(tenant);
    if !filter.states.is_empty() {
        sql.push(" AND state IN ")
            .bind_list(filter.states.iter().copied());
    }
    if let Some(owner) = &filter.owner {
        sql.push(" AND owner = ").bind(owner.as_str());
    }
    if let Some(survey_id) = &filter.survey_id {
        sql.push(" AND survey_id = ").bind(survey_id.as_str());
    }
    if let Some(profile) = &filter.profile {
        sql.push(" AND profile = ").bind(profile.as_str());
    }
    if let Some(token) = after {
        sql.push(" AND (create_us, id) > (")
            .bind(token.sort_us)
            .push(", ")
            .bind(token.id.as_str())
            .push(")");
    }
    sql.push(" ORDER BY create_us, id LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(from_row)
        .collect()
}
