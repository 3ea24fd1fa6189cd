//! `distribution_contact_policies`: each tenant's contact policy, a singleton.

use prost::Message as _;
use sea_orm::ConnectionTrait;
use throughline_proto::distribution::v1::ContactPolicy;
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;
use throughline_runtime::time::{now_us, timestamp};

use crate::policy::{POLICY_NAME, default_policy};

const POLICIES: &str = "distribution_contact_policies";

/// The tenant's policy, with its etag (the revision; `0` for the default policy).
pub(crate) async fn get<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<ContactPolicy, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT body, revision, update_us FROM {POLICIES} WHERE tenant = "
    ))
    .bind(tenant);
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        let mut policy = default_policy();
        policy.etag = "0".to_owned();
        return Ok(policy);
    };
    let body: Vec<u8> = row.try_get_by_index(0)?;
    let revision: i64 = row.try_get_by_index(1)?;
    let update_us: i64 = row.try_get_by_index(2)?;
    let mut policy = ContactPolicy::decode(body.as_slice()).map_err(Error::internal)?;
    policy.name = POLICY_NAME.to_owned();
    policy.etag = revision.to_string();
    policy.update_time = Some(timestamp(update_us));
    Ok(policy)
}

/// Stores `policy` if the stored revision is still `revision`; `false` when another change
/// came first.
pub(crate) async fn put<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    policy: &ContactPolicy,
    revision: i64,
) -> Result<bool, Error> {
    let mut body = policy.clone();
    body.name.clear();
    body.etag.clear();
    body.update_time = None;
    let mut sql = Sql::new(db.get_database_backend());
    if revision == 0 {
        sql.push(&format!(
            "INSERT INTO {POLICIES} (tenant, body, revision, update_us) VALUES "
        ))
        .bind_list::<sea_orm::Value>([
            tenant.into(),
            body.encode_to_vec().into(),
            1i64.into(),
            now_us().into(),
        ])
        .push(" ON CONFLICT (tenant) DO NOTHING");
    } else {
        sql.push(&format!("UPDATE {POLICIES} SET body = "))
            .bind(body.encode_to_vec())
            .push(", revision = revision + 1, update_us = ")
            .bind(now_us())
            .push(" WHERE tenant = ")
            .bind(tenant)
            .push(" AND revision = ")
            .bind(revision);
    }
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}
