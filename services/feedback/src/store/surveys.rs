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
