//! Published versions of journeys: frozen definitions.

use prost::Message;
use sea_orm::ConnectionTrait;
use throughline_proto::orchestration::v1::{JourneyDefinition, JourneyVersion};
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;
use throughline_runtime::time::timestamp;

use super::{INSTANCES, VERSIONS};

/// The definition of version `version` of `journey`; NOT_FOUND if it was never published.
pub(crate) async fn definition(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
    version: i32,
) -> Result<JourneyDefinition, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT definition FROM {VERSIONS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND journey = ")
    .bind(journey)
    .push(" AND version = ")
    .bind(version);
    let row = db
        .query_one_raw(sql.statement())
        .await?
        .ok_or_else(|| Error::NotFound(format!("journeys/{journey}/versions/{version}")))?;
    let bytes: Vec<u8> = row.try_get("", "definition")?;
    JourneyDefinition::decode(bytes.as_slice()).map_err(Error::internal)
}

/// Records version `version` of `journey`.
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
    version: i32,
    definition: &JourneyDefinition,
    publisher: &str,
    now: i64,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {VERSIONS} (tenant, journey, version, definition, publish_us, publisher) \
         VALUES ("
    ))
    .bind(tenant)
    .push(", ")
    .bind(journey)
    .push(", ")
    .bind(version)
    .push(", ")
    .bind(definition.encode_to_vec())
    .push(", ")
    .bind(now)
    .push(", ")
    .bind(publisher)
    .push(")");
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Published versions of `journey` as the contract shows them, newest first, below `before`
/// (all when 0), at most `limit`; with the instances running on each.
pub(crate) async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    journey: &str,
    only: Option<i32>,
    before: i32,
    limit: usize,
) -> Result<Vec<JourneyVersion>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT v.version, v.definition, v.publish_us, v.publisher, \
         (SELECT COUNT(*) FROM {INSTANCES} i WHERE i.tenant = v.tenant AND i.journey = v.journey \
         AND i.version = v.version AND i.state IN (1, 2)) \
         FROM {VERSIONS} v WHERE v.tenant = "
    ))
    .bind(tenant)
    .push(" AND v.journey = ")
    .bind(journey);
    if let Some(version) = only {
        sql.push(" AND v.version = ").bind(version);
    }
    if before > 0 {
        sql.push(" AND v.version < ").bind(before);
    }
    sql.push(" ORDER BY v.version DESC LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(1));
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(|row| {
            let version: i32 = row.try_get_by_index(0)?;
            let bytes: Vec<u8> = row.try_get_by_index(1)?;
            Ok(JourneyVersion {
                name: format!("journeys/{journey}/versions/{version}"),
                version,
                definition: Some(
                    JourneyDefinition::decode(bytes.as_slice()).map_err(Error::internal)?,
                ),
                publish_time: Some(timestamp(row.try_get_by_index(2)?)),
                publisher: row.try_get_by_index(3)?,
                active_instance_count: row.try_get_by_index(4)?,
            })
        })
        .collect()
}
