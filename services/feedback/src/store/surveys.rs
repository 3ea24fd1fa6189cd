//! `feedback_surveys` (one row per survey: its draft, state and latest version) and
//! `feedback_survey_versions` (each published version, frozen).

use prost::Message;
use sea_orm::ConnectionTrait;
use throughline_proto::feedback::v1::{Survey, SurveyState};
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;
use throughline_runtime::time::timestamp;

/// `surveys/{id}`.
pub(crate) fn survey_name(id: &str) -> String {
    format!("surveys/{id}")
}

/// A published version of a survey, with the survey's current state.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// The version as published, with its name, version, state and publish time.
    pub survey: Survey,
    pub state: SurveyState,
}

/// What a look-up of a published version found.
#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    /// No survey of that id in the tenant, or no such version.
    Missing,
    /// The survey exists but was never published.
    Unpublished,
    Found(Box<Published>),
}

/// Version `version` of survey `id`, or its latest published version when `version` is 0.
pub(crate) async fn published(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    version: i32,
) -> Result<Lookup, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT state, version FROM feedback_surveys WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id);
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Ok(Lookup::Missing);
    };
    let state: i32 = row.try_get("", "state")?;
    let latest: i32 = row.try_get("", "version")?;
    let wanted = if version == 0 { latest } else { version };
    if wanted == 0 {
        return Ok(Lookup::Unpublished);
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT definition, publish_us FROM feedback_survey_versions WHERE tenant = ")
        .bind(tenant)
        .push(" AND survey_id = ")
        .bind(id)
        .push(" AND version = ")
        .bind(wanted);
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Ok(Lookup::Missing);
    };
    let definition: Vec<u8> = row.try_get("", "definition")?;
    let publish_us: i64 = row.try_get("", "publish_us")?;
    let state = SurveyState::try_from(state).unwrap_or(SurveyState::Unspecified);
    let mut survey = Survey::decode(definition.as_slice()).map_err(Error::internal)?;
    survey.name = survey_name(id);
    survey.version = wanted;
    survey.state = state as i32;
    survey.publish_time = Some(timestamp(publish_us));
    Ok(Lookup::Found(Box::new(Published { survey, state })))
}

/// A survey as its row holds it: the draft, shown as GetSurvey shows it, and what writes
/// need to know.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The draft with its name, state, version, times and etag.
    pub survey: Survey,
    pub state: SurveyState,
    /// The latest published version; 0 before the first publication.
    pub latest: i32,
    pub revision: i64,
}

const COLUMNS: &str =
    "id, display_name, state, version, draft, revision, create_us, update_us, publish_us";

/// The draft as stored: without what the columns carry.
fn draft_body(survey: &Survey) -> Vec<u8> {
    Survey {
        name: String::new(),
        state: 0,
        version: 0,
        create_time: None,
        update_time: None,
        publish_time: None,
        etag: String::new(),
        ..survey.clone()
    }
    .encode_to_vec()
}

fn from_row(row: &sea_orm::QueryResult) -> Result<Stored, Error> {
    let id: String = row.try_get("", "id")?;
    let state: i32 = row.try_get("", "state")?;
    let latest: i32 = row.try_get("", "version")?;
    let draft: Vec<u8> = row.try_get("", "draft")?;
    let revision: i64 = row.try_get("", "revision")?;
    let create_us: i64 = row.try_get("", "create_us")?;
    let update_us: i64 = row.try_get("", "update_us")?;
    let publish_us: Option<i64> = row.try_get("", "publish_us")?;
    let state = SurveyState::try_from(state).unwrap_or(SurveyState::Unspecified);
    let mut survey = Survey::decode(draft.as_slice()).map_err(Error::internal)?;
    survey.name = survey_name(&id);
    survey.state = state as i32;
    // The version the draft becomes when published; an archived survey is not published
    // again, so it shows its latest published version.
    survey.version = if state == SurveyState::Archived {
        latest
    } else {
        latest + 1
    };
    survey.create_time = Some(timestamp(create_us));
    survey.update_time = Some(timestamp(update_us));
    survey.publish_time = publish_us.map(timestamp);
    survey.etag = revision.to_string();
    Ok(Stored {
        survey,
        state,
        latest,
        revision,
    })
}

/// The survey `id` of `tenant` with its draft.
pub(crate) async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
) -> Result<Option<Stored>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM feedback_surveys WHERE tenant = "
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

/// Saves a new draft at revision 1; ALREADY_EXISTS when `id` is taken.
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    draft: &Survey,
    now_us: i64,
) -> Result<Stored, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "INSERT INTO feedback_surveys (tenant, id, display_name, state, version, draft, \
         revision, create_us, update_us, publish_us) VALUES (",
    )
    .bind(tenant)
    .push(", ")
    .bind(id)
    .push(", ")
    .bind(draft.display_name.as_str())
    .push(", ")
    .bind(SurveyState::Draft as i32)
    .push(", 0, ")
    .bind(draft_body(draft))
    .push(", 1, ")
    .bind(now_us)
    .push(", ")
    .bind(now_us)
    .push(", NULL) ON CONFLICT (tenant, id) DO NOTHING");
    if db.execute_raw(sql.statement()).await?.rows_affected() == 0 {
        return Err(Error::AlreadyExists(survey_name(id)));
    }
    find(db, tenant, id)
        .await?
        .ok_or_else(|| Error::internal("the survey just saved is missing"))
}

/// Replaces the draft of `id` if the survey is still at `revision` and not archived; `None`
/// when it is not (changed, archived or deleted meanwhile).
pub(crate) async fn update_draft(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    revision: i64,
    draft: &Survey,
    now_us: i64,
) -> Result<Option<Stored>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE feedback_surveys SET display_name = ")
        .bind(draft.display_name.as_str())
        .push(", draft = ")
        .bind(draft_body(draft))
        .push(", revision = revision + 1, update_us = ")
        .bind(now_us)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id)
        .push(" AND revision = ")
        .bind(revision)
        .push(" AND state <> ")
        .bind(SurveyState::Archived as i32);
    if db.execute_raw(sql.statement()).await?.rows_affected() == 0 {
        return Ok(None);
    }
    find(db, tenant, id).await
}

/// Marks `id` published as its next version unless it is archived, and returns it as it is
/// now; `None` when there is no such survey or it is archived. Written before the draft is
/// read, so that the row is locked (and SQLite's write lock taken) for the rest of the
/// transaction and two publications cannot take the same version.
pub(crate) async fn mark_published(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    now_us: i64,
) -> Result<Option<Stored>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE feedback_surveys SET state = ")
        .bind(SurveyState::Published as i32)
        .push(", version = version + 1, revision = revision + 1, update_us = ")
        .bind(now_us)
        .push(", publish_us = ")
        .bind(now_us)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id)
        .push(" AND state <> ")
        .bind(SurveyState::Archived as i32);
    if db.execute_raw(sql.statement()).await?.rows_affected() == 0 {
        return Ok(None);
    }
    find(db, tenant, id).await
}

/// Freezes `definition` as version `version` of `id`.
pub(crate) async fn insert_version(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    version: i32,
    definition: &Survey,
    publish_us: i64,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "INSERT INTO feedback_survey_versions (tenant, survey_id, version, definition, \
         publish_us) VALUES (",
    )
    .bind(tenant)
    .push(", ")
    .bind(id)
    .push(", ")
    .bind(version)
    .push(", ")
    .bind(definition.encode_to_vec())
    .push(", ")
    .bind(publish_us)
    .push(")");
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Archives `id` (a no-op when it already is) and returns it; `None` when there is no such
/// survey.
pub(crate) async fn archive(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    now_us: i64,
) -> Result<Option<Stored>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE feedback_surveys SET state = ")
        .bind(SurveyState::Archived as i32)
        .push(", revision = revision + 1, update_us = ")
        .bind(now_us)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id)
        .push(" AND state <> ")
        .bind(SurveyState::Archived as i32);
    db.execute_raw(sql.statement()).await?;
    find(db, tenant, id).await
}

/// Whether an invitation or a response names survey `id`.
pub(crate) async fn in_use(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
) -> Result<bool, Error> {
    for table in ["feedback_invitations", "feedback_responses"] {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!("SELECT 1 AS used FROM {table} WHERE tenant = "))
            .bind(tenant)
            .push(" AND survey_id = ")
            .bind(id)
            .push(" LIMIT 1");
        if db.query_one_raw(sql.statement()).await?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes survey `id` and its versions if it is at `revision` (any revision when `None`);
/// whether it went.
pub(crate) async fn delete(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    revision: Option<i64>,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("DELETE FROM feedback_surveys WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id);
    if let Some(revision) = revision {
        sql.push(" AND revision = ").bind(revision);
    }
    if db.execute_raw(sql.statement()).await?.rows_affected() == 0 {
        return Ok(false);
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("DELETE FROM feedback_survey_versions WHERE tenant = ")
        .bind(tenant)
        .push(" AND survey_id = ")
        .bind(id);
    db.execute_raw(sql.statement()).await?;
    Ok(true)
}

/// Up to `limit` surveys by display name then id, after `(display_name, id)` when given, only
/// those in `states` when it is not empty.
pub(crate) async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    states: &[i32],
    after: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<Stored>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM feedback_surveys WHERE tenant = "
    ))
    .bind(tenant);
    if !states.is_empty() {
        sql.push(" AND state IN ").bind_list(states.iter().copied());
    }
    if let Some((display_name, id)) = after {
        sql.push(" AND (display_name > ")
            .bind(display_name)
            .push(" OR (display_name = ")
            .bind(display_name)
            .push(" AND id > ")
            .bind(id)
            .push("))");
    }
    sql.push(" ORDER BY display_name, id LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(from_row)
        .collect()
}
