//! The hot reads in as few round trips as each needs: a profile's identifiers, current
//! consents and segments in one query; CheckConsent by identifier in one; the profiles
//! holding a set of identifiers in one. Plain SQL valid on SQLite and PostgreSQL alike, with
//! each backend's placeholders.

use std::collections::{BTreeMap, HashMap};

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
#[derive(Debug, Default, Clone)]
pub struct Children {
    pub identifiers: Vec<Key>,
    /// The current decision of each (channel, purpose).
    pub consents: Vec<consent::Model>,
    /// `(segment id, enter time)`.
    pub segments: Vec<(String, i64)>,
}

/// `IN (?, ?, …)` for `n` values.
fn placeholders(n: usize) -> String {
    let mut list = String::with_capacity(3 * n + 2);
    list.push('(');
    for i in 0..n {
        list.push_str(if i == 0 { "?" } else { ", ?" });
    }
    list.push(')');
    list
}

/// The values of a statement whose `branches` each filter on `tenant = ? AND … IN (ids)`, and
/// the length of its id lists: the ids padded to a power of two by repeating the last, so a
/// handful of statement shapes, each prepared once per connection, serve every batch size.
fn branch_values(tenant: &str, ids: &[String], branches: usize) -> (usize, Vec<Value>) {
    let padded = ids.len().next_power_of_two();
    let mut values: Vec<Value> = Vec::with_capacity(branches * (padded + 1));
    for _ in 0..branches {
        values.push(tenant.into());
        for index in 0..padded {
            let id = ids.get(index).or(ids.last()).map_or("", String::as_str);
            values.push(id.into());
        }
    }
    (padded, values)
}

/// The union of the identifiers, current consents and memberships of the profiles `ids` (what
/// follows `IN`: a list or a subquery), each row with its profile (`pid`); with `blob`, each
/// branch also has a NULL column `b` of that type, to stand beside the profiles' own rows.
fn children_sql(ids: &str, blob: Option<&str>) -> String {
    let b = blob.map_or(String::new(), |t| format!(", CAST(NULL AS {t}) AS b"));
    format!(
        "SELECT 'i' AS k, profile_id AS pid, CAST(kind AS BIGINT) AS n1, \
                CAST(created_us AS BIGINT) AS n2, CAST(0 AS BIGINT) AS n3, CAST(0 AS BIGINT) AS n4, \
                CAST(0 AS BIGINT) AS n5, CAST(0 AS BIGINT) AS n6, source AS t1, value AS t2, \
                '' AS t3{b} \
           FROM profile_identifiers WHERE tenant = ? AND profile_id IN {ids} \
         UNION ALL \
         SELECT 'c', profile_id, CAST(channel AS BIGINT), CAST(purpose AS BIGINT), \
                CAST(status AS BIGINT), CAST(effective_us AS BIGINT), CAST(record_us AS BIGINT), \
                CAST(id AS BIGINT), source, evidence, recorded_by{b} \
           FROM profile_consents c WHERE c.tenant = ? AND c.profile_id IN {ids} AND NOT EXISTS ( \
                SELECT 1 FROM profile_consents d \
                 WHERE d.profile_id = c.profile_id AND d.channel = c.channel \
                   AND d.purpose = c.purpose \
                   AND (d.effective_us > c.effective_us \
                        OR (d.effective_us = c.effective_us AND d.id > c.id))) \
         UNION ALL \
         SELECT 'm', profile_id, CAST(enter_us AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), \
                CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), segment_id, '', ''{b} \
           FROM profile_segment_members WHERE tenant = ? AND profile_id IN {ids}"
    )
}

/// What each of the profiles `ids` holds, in one query.
pub async fn children_of<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    ids: &[String],
) -> Result<HashMap<String, Children>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let (listed, values) = branch_values(tenant, ids, 3);
    let rows = c
        .query_all_raw(statement(
            c,
            &children_sql(&placeholders(listed), None),
            values,
        ))
        .await?;
    let (_, children) = collect(rows, tenant)?;
    Ok(children)
}

/// The rows of the profiles `ids` and everything they hold, in one round trip (GetProfile's
/// path); a profile the tenant does not have is absent from the answer.
pub async fn profiles_with_children<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    ids: &[String],
) -> Result<HashMap<String, (profile::Model, Children)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let (listed, values) = branch_values(tenant, ids, 4);
    let (mut rows, mut children) = profile_rows(c, tenant, &placeholders(listed), values).await?;
    Ok(rows
        .drain()
        .map(|(id, row)| {
            let held = children.remove(&id).unwrap_or_default();
            (id, (row, held))
        })
        .collect())
}

/// The profiles holding `keys`, with everything each holds, by key, in one round trip: the
/// lookup behind ResolveIdentity of a known customer, without first asking who holds the key.
pub async fn profiles_holding<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    keys: &[Key],
) -> Result<HashMap<Key, (profile::Model, Children)>> {
    let mut bound = Vec::new();
    let Some(list) = values_of(keys, &mut bound, key_values) else {
        return Ok(HashMap::new());
    };
    let holders = format!(
        "(SELECT i.profile_id FROM {list} \
            JOIN profile_identifiers i ON i.tenant = ? AND i.kind = q.column1 \
                 AND i.source = q.column2 AND i.value = q.column3)"
    );
    let mut values = Vec::with_capacity(4 * (bound.len() + 2));
    for _ in 0..4 {
        values.push(tenant.into());
        values.extend(bound.iter().cloned());
        values.push(tenant.into());
    }
    let (rows, mut children) = profile_rows(c, tenant, &holders, values).await?;
    let mut found = HashMap::with_capacity(keys.len());
    for (id, row) in rows {
        let held = children.remove(&id).unwrap_or_default();
        for key in keys.iter().filter(|key| held.identifiers.contains(key)) {
            found.insert(key.clone(), (row.clone(), held.clone()));
        }
    }
    Ok(found)
}

/// The rows and children of `tenant`'s profiles `ids` (what follows `IN`); `values` holds each
/// of the four branches' tenant and the values `ids` binds.
async fn profile_rows<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    ids: &str,
    values: Vec<Value>,
) -> Result<Collected> {
    let blob = if c.get_database_backend() == DatabaseBackend::Postgres {
        "BYTEA"
    } else {
        "BLOB"
    };
    let sql = format!(
        "SELECT 'p' AS k, id AS pid, CAST(state AS BIGINT) AS n1, CAST(version AS BIGINT) AS n2, \
                CAST(created_us AS BIGINT) AS n3, CAST(updated_us AS BIGINT) AS n4, \
                CAST(0 AS BIGINT) AS n5, CAST(0 AS BIGINT) AS n6, \
                COALESCE(merged_into, '') AS t1, '' AS t2, '' AS t3, data AS b \
           FROM profile_profiles WHERE tenant = ? AND id IN {ids} \
         UNION ALL {}",
        children_sql(ids, Some(blob))
    );
    let rows = c.query_all_raw(statement(c, &sql, values)).await?;
    collect(rows, tenant)
}

/// The profiles' rows and their children, by profile id.
type Collected = (HashMap<String, profile::Model>, HashMap<String, Children>);

fn collect(rows: Vec<QueryResult>, tenant: &str) -> Result<Collected> {
    let mut found = HashMap::new();
    let mut children: HashMap<String, Children> = HashMap::new();
    let mut identifiers: HashMap<String, Vec<(i64, Key)>> = HashMap::new();
    for row in rows {
        let kind: String = row.try_get("", "k")?;
        let id: String = row.try_get("", "pid")?;
        let n = |name: &str| row.try_get::<i64>("", name);
        let t = |name: &str| row.try_get::<String>("", name);
        match kind.as_str() {
            "p" => {
                let merged_into = t("t1")?;
                let model = profile::Model {
                    id: id.clone(),
                    tenant: tenant.to_owned(),
                    state: i32::try_from(n("n1")?).unwrap_or_default(),
                    merged_into: (!merged_into.is_empty()).then_some(merged_into),
                    data: row.try_get("", "b")?,
                    version: n("n2")?,
                    created_us: n("n3")?,
                    updated_us: n("n4")?,
                };
                found.insert(id, model);
            }
            "i" => identifiers.entry(id).or_default().push((
                n("n2")?,
                Key {
                    kind: i32::try_from(n("n1")?).unwrap_or_default(),
                    source: t("t1")?,
                    value: t("t2")?,
                },
            )),
            "c" => {
                let decision = consent::Model {
                    id: n("n6")?,
                    tenant: tenant.to_owned(),
                    profile_id: id.clone(),
                    channel: i32::try_from(n("n1")?).unwrap_or_default(),
                    purpose: i32::try_from(n("n2")?).unwrap_or_default(),
                    status: i32::try_from(n("n3")?).unwrap_or_default(),
                    source: t("t1")?,
                    evidence: t("t2")?,
                    effective_us: n("n4")?,
                    record_us: n("n5")?,
                    recorded_by: t("t3")?,
                };
                children.entry(id).or_default().consents.push(decision);
            }
            _ => {
                let membership = (t("t1")?, n("n1")?);
                children.entry(id).or_default().segments.push(membership);
            }
        }
    }
    for (id, mut keys) in identifiers {
        keys.sort_by(|a, b| (a.0, a.1.kind, &a.1.value).cmp(&(b.0, b.1.kind, &b.1.value)));
        children.entry(id).or_default().identifiers = keys.into_iter().map(|(_, k)| k).collect();
    }
    for held in children.values_mut() {
        held.consents.sort_by_key(|c| (c.channel, c.purpose));
        held.segments.sort();
    }
    Ok((found, children))
}

/// A CheckConsent by identifier: who holds `key`, and their decision for (channel, purpose).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsentQuery {
    pub key: Key,
    pub channel: i32,
    pub purpose: i32,
}

/// For each query, the profile holding its identifier and that profile's current decision for
/// the query's (channel, purpose), in one query; a query whose identifier nobody holds is
/// absent from the answer.
pub async fn consents_by_identifier<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    queries: &[ConsentQuery],
) -> Result<HashMap<ConsentQuery, (String, Option<consent::Model>)>> {
    let mut values = Vec::with_capacity(5 * queries.len().next_power_of_two() + 1);
    let Some(list) = values_of(queries, &mut values, |query| {
        vec![
            query.key.kind.into(),
            query.key.source.as_str().into(),
            query.key.value.as_str().into(),
            query.channel.into(),
            query.purpose.into(),
        ]
    }) else {
        return Ok(HashMap::new());
    };
    // The newest decision of the pair: PostgreSQL reads it in the one index scan that finds
    // it (LATERAL); SQLite, which has no LATERAL, finds its id and then reads it by that id.
    let newest = if c.get_database_backend() == DatabaseBackend::Postgres {
        "LEFT JOIN LATERAL ( \
             SELECT * FROM profile_consents d \
              WHERE d.tenant = i.tenant AND d.profile_id = i.profile_id \
                AND d.channel = q.column4 AND d.purpose = q.column5 \
              ORDER BY d.effective_us DESC, d.id DESC LIMIT 1) c ON TRUE"
    } else {
        "LEFT JOIN profile_consents c ON c.id = ( \
             SELECT d.id FROM profile_consents d \
              WHERE d.tenant = i.tenant AND d.profile_id = i.profile_id \
                AND d.channel = q.column4 AND d.purpose = q.column5 \
              ORDER BY d.effective_us DESC, d.id DESC LIMIT 1)"
    };
    let sql = format!(
        "SELECT i.kind AS q_kind, i.source AS q_source, i.value AS q_value, \
                q.column4 AS q_channel, q.column5 AS q_purpose, i.profile_id AS holder, c.* \
           FROM {list} \
           JOIN profile_identifiers i ON i.tenant = ? AND i.kind = q.column1 \
                AND i.source = q.column2 AND i.value = q.column3 \
           {newest}"
    );
    values.push(tenant.into());
    let mut found = HashMap::with_capacity(queries.len());
    for row in c.query_all_raw(statement(c, &sql, values)).await? {
        let query = ConsentQuery {
            key: key_of(&row)?,
            channel: row.try_get("", "q_channel")?,
            purpose: row.try_get("", "q_purpose")?,
        };
        let holder: String = row.try_get("", "holder")?;
        let decision = match row.try_get::<Option<i64>>("", "id")? {
            None => None,
            Some(_) => Some(consent_row(&row)?),
        };
        found.insert(query, (holder, decision));
    }
    Ok(found)
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

/// The profile holding each of `keys`, in one query; a key nobody holds is absent from the
/// answer.
pub async fn holders<C: ConnectionTrait>(
    c: &C,
    tenant: &str,
    keys: &[Key],
) -> Result<BTreeMap<Key, String>> {
    let mut values = Vec::with_capacity(3 * keys.len().next_power_of_two() + 1);
    let Some(list) = values_of(keys, &mut values, key_values) else {
        return Ok(BTreeMap::new());
    };
    let sql = format!(
        "SELECT i.kind AS q_kind, i.source AS q_source, i.value AS q_value, \
                i.profile_id AS holder \
           FROM {list} \
           JOIN profile_identifiers i ON i.tenant = ? AND i.kind = q.column1 \
                AND i.source = q.column2 AND i.value = q.column3"
    );
    values.push(tenant.into());
    let mut found = BTreeMap::new();
    for row in c.query_all_raw(statement(c, &sql, values)).await? {
        found.insert(key_of(&row)?, row.try_get("", "holder")?);
    }
    Ok(found)
}

/// `(VALUES (?, …), …) AS q` of `items`, their values pushed onto `values`; padded to a power
/// of two rows like the id lists (repeated rows add duplicate results, which the callers' maps
/// absorb). `None` for no items.
fn values_of<T>(
    items: &[T],
    values: &mut Vec<Value>,
    row: impl Fn(&T) -> Vec<Value>,
) -> Option<String> {
    let last = items.last()?;
    let mut list = String::from("(VALUES ");
    for index in 0..items.len().next_power_of_two() {
        let item_values = row(items.get(index).unwrap_or(last));
        list.push_str(if index == 0 { "(" } else { ", (" });
        for position in 0..item_values.len() {
            list.push_str(if position == 0 { "?" } else { ", ?" });
        }
        list.push(')');
        values.extend(item_values);
    }
    list.push_str(") AS q");
    Some(list)
}

/// The values of `key` in a `(VALUES …)` row: kind, source, value.
fn key_values(key: &Key) -> Vec<Value> {
    vec![
        key.kind.into(),
        key.source.as_str().into(),
        key.value.as_str().into(),
    ]
}

/// The identifier of a row with `q_kind`, `q_source` and `q_value`.
fn key_of(row: &QueryResult) -> Result<Key> {
    Ok(Key {
        kind: row.try_get("", "q_kind")?,
        source: row.try_get("", "q_source")?,
        value: row.try_get("", "q_value")?,
    })
}
