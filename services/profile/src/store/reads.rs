//! The hot reads in as few round trips as each needs: a profile's identifiers, current
//! consents and segments in one query; CheckConsent by identifier in one; the profiles
//! holding a set of identifiers in one. Plain SQL valid on SQLite and PostgreSQL alike, with
//! each backend's placeholders.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseBackend, QueryResult, Statement, Value};

use super::{consent, profile};
use crate::error::Result;
use crate::identity::Key;

/// `sql` with `?` placeholders, as the backend wants them (`$1`, `$2`, … on PostgreSQL).
fn statement<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> Statement {
    let backend = c.get_database_backend();
    let sql = if backend == DatabaseBackend::Postgres {
        let mut numbered = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                numbered.push_str(&format!("${n}"));
            } else {
                numbered.push(ch);
            }
        }
        numbered
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// What a profile holds besides its row.
#[derive(Debug, Default)]
pub struct Children {
    pub identifiers: Vec<Key>,
    /// The current decision of each (channel, purpose).
    pub consents: Vec<consent::Model>,
    /// `(segment id, enter time)`.
    pub segments: Vec<(String, i64)>,
}

/// The union of a profile's identifiers, current consents and memberships; with `blob`, each
/// branch also has a NULL column `b` of that type, to stand beside the profile's own row.
fn children_sql(blob: Option<&str>) -> String {
    let b = blob.map_or(String::new(), |t| format!(", CAST(NULL AS {t}) AS b"));
    format!(
        "SELECT 'i' AS k, CAST(kind AS BIGINT) AS n1, CAST(created_us AS BIGINT) AS n2, \
                CAST(0 AS BIGINT) AS n3, CAST(0 AS BIGINT) AS n4, CAST(0 AS BIGINT) AS n5, \
                CAST(0 AS BIGINT) AS n6, source AS t1, value AS t2, '' AS t3{b} \
           FROM profile_identifiers WHERE tenant = ? AND profile_id = ? \
         UNION ALL \
         SELECT 'c', CAST(channel AS BIGINT), CAST(purpose AS BIGINT), CAST(status AS BIGINT), \
                CAST(effective_us AS BIGINT), CAST(record_us AS BIGINT), CAST(id AS BIGINT), \
                source, evidence, recorded_by{b} \
           FROM profile_consents c WHERE c.tenant = ? AND c.profile_id = ? AND NOT EXISTS ( \
                SELECT 1 FROM profile_consents d \
                 WHERE d.profile_id = c.profile_id AND d.channel = c.channel \
                   AND d.purpose = c.purpose \
                   AND (d.effective_us > c.effective_us \
                        OR (d.effective_us = c.effective_us AND d.id > c.id))) \
         UNION ALL \
         SELECT 'm', CAST(enter_us AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), \
                CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), segment_id, '', ''{b} \
           FROM profile_segment_members WHERE tenant = ? AND profile_id = ?"
    )
}

pub async fn children<C: ConnectionTrait>(c: &C, tenant: &str, id: &str) -> Result<Children> {
    let values: Vec<Value> = (0..3).flat_map(|_| [tenant.into(), id.into()]).collect();
    let rows = c
        .query_all_raw(statement(c, &children_sql(None), values))
        .await?;
    collect(rows, tenant, id).map(|(_, children)| children)
}

/// A profile's row and everything it holds in one round trip (GetProfile's path); `None`
/// when the tenant has no such profile.
pub async fn profile_with_children<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<(profile::Model, Children)>> {
    let blob = if c.get_database_backend() == DatabaseBackend::Postgres {
        "BYTEA"
    } else {
        "BLOB"
    };
    let sql = format!(
        "SELECT 'p' AS k, CAST(state AS BIGINT) AS n1, CAST(version AS BIGINT) AS n2, \
                CAST(created_us AS BIGINT) AS n3, CAST(updated_us AS BIGINT) AS n4, \
                CAST(0 AS BIGINT) AS n5, CAST(0 AS BIGINT) AS n6, \
                COALESCE(merged_into, '') AS t1, '' AS t2, '' AS t3, data AS b \
           FROM profile_profiles WHERE tenant = ? AND id = ? \
         UNION ALL {}",
        children_sql(Some(blob))
    );
    let values: Vec<Value> = (0..4).flat_map(|_| [tenant.into(), id.into()]).collect();
    let rows = c.query_all_raw(statement(c, &sql, values)).await?;
    let (row, children) = collect(rows, tenant, id)?;
    Ok(row.map(|row| (row, children)))
}

fn collect(
    rows: Vec<QueryResult>,
    tenant: &str,
    id: &str,
) -> Result<(Option<profile::Model>, Children)> {
    let mut found = None;
    let mut children = Children::default();
    let mut identifiers = Vec::new();
    for row in rows {
        let kind: String = row.try_get("", "k")?;
        let n = |name: &str| row.try_get::<i64>("", name);
        let t = |name: &str| row.try_get::<String>("", name);
        match kind.as_str() {
            "p" => {
                let merged_into = t("t1")?;
                found = Some(profile::Model {
                    id: id.to_owned(),
                    tenant: tenant.to_owned(),
                    state: i32::try_from(n("n1")?).unwrap_or_default(),
                    merged_into: (!merged_into.is_empty()).then_some(merged_into),
                    data: row.try_get("", "b")?,
                    version: n("n2")?,
                    created_us: n("n3")?,
                    updated_us: n("n4")?,
                });
            }
            "i" => identifiers.push((
                n("n2")?,
                Key {
                    kind: i32::try_from(n("n1")?).unwrap_or_default(),
                    source: t("t1")?,
                    value: t("t2")?,
                },
            )),
            "c" => children.consents.push(consent::Model {
                id: n("n6")?,
                tenant: tenant.to_owned(),
                profile_id: id.to_owned(),
                channel: i32::try_from(n("n1")?).unwrap_or_default(),
                purpose: i32::try_from(n("n2")?).unwrap_or_default(),
                status: i32::try_from(n("n3")?).unwrap_or_default(),
                source: t("t1")?,
                evidence: t("t2")?,
                effective_us: n("n4")?,
                record_us: n("n5")?,
                recorded_by: t("t3")?,
            }),
            _ => children.segments.push((t("t1")?, n("n1")?)),
        }
    }
    identifiers.sort_by(|a, b| (a.0, a.1.kind, &a.1.value).cmp(&(b.0, b.1.kind, &b.1.value)));
    children.identifiers = identifiers.into_iter().map(|(_, key)| key).collect();
    children.consents.sort_by_key(|c| (c.channel, c.purpose));
    children.segments.sort();
    Ok((found, children))
}

/// The profile holding `key` and its current decision for (channel, purpose), in one query.
pub async fn consent_by_identifier<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    key: &Key,
    channel: i32,
    purpose: i32,
) -> Result<Option<(String, Option<consent::Model>)>> {
    let sql = "\
SELECT i.profile_id AS holder, c.* FROM profile_identifiers i \
  LEFT JOIN profile_consents c ON c.id = ( \
       SELECT d.id FROM profile_consents d \
        WHERE d.tenant = i.tenant AND d.profile_id = i.profile_id AND d.channel = ? AND d.purpose = ? \
        ORDER BY d.effective_us DESC, d.id DESC LIMIT 1) \
 WHERE i.tenant = ? AND i.kind = ? AND i.source = ? AND i.value = ?";
    let values: Vec<Value> = vec![
        channel.into(),
        purpose.into(),
        tenant.into(),
        key.kind.into(),
        key.source.clone().into(),
        key.value.clone().into(),
    ];
    let Some(row) = c.query_one_raw(statement(c, sql, values)).await? else {
        return Ok(None);
    };
    let holder: String = row.try_get("", "holder")?;
    let decision = match row.try_get::<Option<i64>>("", "id")? {
        None => None,
        Some(_) => Some(consent_row(&row)?),
    };
    Ok(Some((holder, decision)))
}

fn consent_row(row: &QueryResult) -> Result<consent::Model> {
    Ok(consent::Model {
        id: row.try_get("", "id")?,
        tenant: row.try_get("", "tenant")?,
        profile_id: row.try_get("", "profile_id")?,
        channel: row.try_get("", "channel")?,
        purpose: row.try_get("", "purpose")?,
        status: row.try_get("", "status")?,
        source: row.try_get("", "source")?,
        evidence: row.try_get("", "evidence")?,
        effective_us: row.try_get("", "effective_us")?,
        record_us: row.try_get("", "record_us")?,
        recorded_by: row.try_get("", "recorded_by")?,
    })
}

/// The rows of the profiles holding `keys`, with how many of the keys each holds, in one
/// query: the read-only path of ResolveIdentity.
pub async fn holder_profiles<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    keys: &[Key],
) -> Result<BTreeMap<String, (usize, profile::Model)>> {
    if keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut sql = String::from(
        "SELECT p.id, p.tenant, p.state, p.merged_into, p.data, p.version, p.created_us, \
                p.updated_us \
           FROM profile_identifiers i JOIN profile_profiles p ON p.id = i.profile_id \
          WHERE i.tenant = ? AND p.tenant = ? AND (",
    );
    let mut values: Vec<Value> = vec![tenant.into(), tenant.into()];
    for (index, key) in keys.iter().enumerate() {
        if index > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str("(i.kind = ? AND i.source = ? AND i.value = ?)");
        values.extend([
            key.kind.into(),
            key.source.clone().into(),
            key.value.clone().into(),
        ]);
    }
    sql.push(')');
    let rows = c.query_all_raw(statement(c, &sql, values)).await?;
    let mut holders: BTreeMap<String, (usize, profile::Model)> = BTreeMap::new();
    for row in rows {
        let model = profile::Model {
            id: row.try_get("", "id")?,
            tenant: row.try_get("", "tenant")?,
            state: row.try_get("", "state")?,
            merged_into: row.try_get("", "merged_into")?,
            data: row.try_get("", "data")?,
            version: row.try_get("", "version")?,
            created_us: row.try_get("", "created_us")?,
            updated_us: row.try_get("", "updated_us")?,
        };
        holders.entry(model.id.clone()).or_insert((0, model)).0 += 1;
    }
    Ok(holders)
}
