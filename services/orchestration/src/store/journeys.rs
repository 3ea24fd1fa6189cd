//! Journeys: the editable draft and what the latest publication left (version, trigger).

use prost::Message;
use sea_orm::{ConnectionTrait, QueryResult};
use throughline_proto::orchestration::v1::{Journey, JourneyDefinition};
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;
use throughline_runtime::time::timestamp;

use super::JOURNEYS;

/// One row of `orchestration_journeys`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stored {
    pub tenant: String,
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub state: i32,
    pub draft: JourneyDefinition,
    pub published_version: i32,
    pub draft_changed: bool,
    pub trigger_key: String,
    pub revision: i64,
    pub create_us: i64,
    pub update_us: i64,
}

const COLUMNS: &str = "tenant, id, display_name, description, state, draft, published_version, \
     draft_changed, trigger_key, revision, create_us, update_us";

pub(crate) fn journey_name(id: &str) -> String {
    format!("journeys/{id}")
}

impl Stored {
    fn read(row: &QueryResult) -> Result<Self, Error> {
        let draft: Vec<u8> = row.try_get_by_index(5)?;
        Ok(Self {
            tenant: row.try_get_by_index(0)?,
            id: row.try_get_by_index(1)?,
            display_name: row.try_get_by_index(2)?,
            description: row.try_get_by_index(3)?,
            state: row.try_get_by_index(4)?,
            draft: JourneyDefinition::decode(draft.as_slice()).map_err(Error::internal)?,
            published_version: row.try_get_by_index(6)?,
            draft_changed: row.try_get_by_index::<i32>(7)? != 0,
            trigger_key: row.try_get_by_index(8)?,
            revision: row.try_get_by_index(9)?,
            create_us: row.try_get_by_index(10)?,
            update_us: row.try_get_by_index(11)?,
        })
    }

    pub(crate) fn to_proto(&self) -> Journey {
        Journey {
            name: journey_name(&self.id),
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            state: self.state,
            definition: Some(self.draft.clone()),
            published_version: self.published_version,
            draft_changed: self.draft_changed,
            create_time: Some(timestamp(self.create_us)),
            update_time: Some(timestamp(self.update_us)),
            etag: self.revision.to_string(),
        }
    }
}

pub(crate) async fn get(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
) -> Result<Option<Stored>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("SELECT {COLUMNS} FROM {JOURNEYS} WHERE tenant = "))
        .bind(tenant)
        .push(" AND id = ")
        .bind(id);
    db.query_one_raw(sql.statement())
        .await?
        .as_ref()
        .map(Stored::read)
        .transpose()
}

/// Inserts a new journey; ALREADY_EXISTS when the id is taken.
pub(crate) async fn insert(db: &impl ConnectionTrait, journey: &Stored) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("INSERT INTO {JOURNEYS} ({COLUMNS}) VALUES ("))
        .bind(journey.tenant.as_str())
        .push(", ")
        .bind(journey.id.as_str())
        .push(", ")
        .bind(journey.display_name.as_str())
        .push(", ")
        .bind(journey.description.as_str())
        .push(", ")
        .bind(journey.state)
        .push(", ")
        .bind(journey.draft.encode_to_vec())
        .push(", ")
        .bind(journey.published_version)
        .push(", ")
        .bind(i32::from(journey.draft_changed))
        .push(", ")
        .bind(journey.trigger_key.as_str())
        .push(", ")
        .bind(journey.revision)
        .push(", ")
        .bind(journey.create_us)
        .push(", ")
        .bind(journey.update_us)
        .push(") ON CONFLICT DO NOTHING");
    if db.execute_raw(sql.statement()).await?.rows_affected() == 0 {
        return Err(Error::AlreadyExists(journey_name(&journey.id)));
    }
    Ok(())
}

/// Writes `journey` over the row if it is still at `revision`; false when another change came
/// first.
pub(crate) async fn update(
    db: &impl ConnectionTrait,
    journey: &Stored,
    revision: i64,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {JOURNEYS} SET display_name = "))
        .bind(journey.display_name.as_str())
        .push(", description = ")
        .bind(journey.description.as_str())
        .push(", state = ")
        .bind(journey.state)
        .push(", draft = ")
        .bind(journey.draft.encode_to_vec())
        .push(", published_version = ")
        .bind(journey.published_version)
        .push(", draft_changed = ")
        .bind(i32::from(journey.draft_changed))
        .push(", trigger_key = ")
        .bind(journey.trigger_key.as_str())
        .push(", revision = ")
        .bind(journey.revision)
        .push(", update_us = ")
        .bind(journey.update_us)
        .push(" WHERE tenant = ")
        .bind(journey.tenant.as_str())
        .push(" AND id = ")
        .bind(journey.id.as_str())
        .push(" AND revision = ")
        .bind(revision);
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

pub(crate) async fn delete(db: &impl ConnectionTrait, tenant: &str, id: &str) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("DELETE FROM {JOURNEYS} WHERE tenant = "))
        .bind(tenant)
        .push(" AND id = ")
        .bind(id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Journeys in `states` (all when empty) by display name then id, after `after`.
pub(crate) async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    states: &[i32],
    after: Option<&(String, String)>,
    limit: usize,
) -> Result<Vec<Stored>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("SELECT {COLUMNS} FROM {JOURNEYS} WHERE tenant = "))
        .bind(tenant);
    if !states.is_empty() {
        sql.push(" AND state IN ").bind_list(states.iter().copied());
    }
    if let Some((display_name, id)) = after {
        sql.push(" AND (display_name > ")
            .bind(display_name.as_str())
            .push(" OR (display_name = ")
            .bind(display_name.as_str())
            .push(" AND id > ")
            .bind(id.as_str())
            .push("))");
    }
    sql.push(" ORDER BY display_name, id LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(1));
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(Stored::read)
        .collect()
}
