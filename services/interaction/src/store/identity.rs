//! Profiles merged into others. A row is never rewritten to a different customer: each keeps
//! the customer and profile it was recorded with, and its `timeline` column (with its
//! `timeline_key`) says whose timeline it is on now. A merge moves the source's timeline onto
//! the target; an unmerge moves back exactly the rows recorded for the source (and for
//! profiles merged into it); an erasure deletes them.

use std::collections::{BTreeSet, HashMap};

use sea_orm::{ConnectionTrait, DatabaseConnection};
use throughline_runtime::Error;
use throughline_runtime::batch::Batcher;

use super::{INTERACTIONS, MERGES, THREADS};
use crate::sql::Sql;

/// Longest chain of merges followed; a longer one means the merges table is corrupt.
const MAX_CHAIN: usize = 64;
/// Most profiles one lookup binds.
const MAX_BOUND: usize = 5_000;

/// For each profile that was merged away, the profile it survives as (following chains).
pub(crate) async fn surviving<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profiles: impl IntoIterator<Item = &str>,
) -> Result<HashMap<String, String>, Error> {
    let mut targets: HashMap<String, String> = HashMap::new();
    let mut asked: BTreeSet<String> = BTreeSet::new();
    let mut frontier: BTreeSet<String> = profiles.into_iter().map(str::to_owned).collect();
    for _ in 0..MAX_CHAIN {
        frontier.retain(|p| !asked.contains(p));
        if frontier.is_empty() {
            break;
        }
        let mut found = Vec::new();
        let asking: Vec<String> = std::mem::take(&mut frontier).into_iter().collect();
        // A group commit asks for tens of thousands; chunks stay under SQLite's bound limit.
        for chunk in asking.chunks(MAX_BOUND) {
            let mut sql = Sql::new(db.get_database_backend());
            sql.push(&format!(
                "SELECT source, target FROM {MERGES} WHERE tenant = "
            ))
            .bind(tenant)
            .push(" AND source IN ")
            .bind_list(chunk.iter().cloned());
            found.extend(db.query_all_raw(sql.statement()).await?);
        }
        asked.extend(asking);
        for row in found {
            let source: String = row.try_get("", "source")?;
            let target: String = row.try_get("", "target")?;
            frontier.insert(target.clone());
            targets.insert(source, target);
        }
    }
    let mut finals = HashMap::new();
    for start in targets.keys() {
        let mut current = start;
        for _ in 0..MAX_CHAIN {
            match targets.get(current) {
                Some(next) if next != start => current = next,
                _ => break,
            }
        }
        finals.insert(start.clone(), current.clone());
    }
    Ok(finals)
}

/// The timelines profiles' interactions are on now, read through the runtime's read batcher:
/// every read (ListInteractions, GetCustomerContext, threads) first asks this, and concurrent
/// callers' profiles are then looked up by one query instead of one each.
#[derive(Debug, Clone)]
pub(crate) struct Timelines(Batcher<(String, String), Option<String>>);

impl Timelines {
    /// Must be called within a Tokio runtime.
    pub(crate) fn start(db: &DatabaseConnection) -> Self {
        Self(Batcher::per_tenant(
            1,
            256,
            db,
            |db, tenant, profiles: Vec<String>| async move {
                surviving(&db, &tenant, profiles.iter().map(String::as_str)).await
            },
        ))
    }

    /// The timeline `profile`'s interactions are on now.
    pub(crate) async fn of(&self, tenant: &str, profile: &str) -> Result<String, Error> {
        let survivor = self
            .0
            .load((tenant.to_owned(), profile.to_owned()))
            .await
            .map_err(error_of_status)?;
        Ok(survivor.unwrap_or_else(|| profile.to_owned()))
    }
}

/// The error a batched read's loader reported: unavailable (the database is down or the
/// service stopping), or internal.
pub(crate) fn error_of_status(status: tonic::Status) -> Error {
    if status.code() == tonic::Code::Unavailable {
        Error::Unavailable(status.message().to_owned())
    } else {
        Error::internal(status.message().to_owned())
    }
}

/// The timeline a profile's interactions are on now.
pub(crate) async fn timeline_of_profile<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profile: &str,
) -> Result<String, Error> {
    let finals = surviving(db, tenant, [profile]).await?;
    Ok(finals
        .get(profile)
        .cloned()
        .unwrap_or_else(|| profile.to_owned()))
}

/// `profile` and every profile merged into it, directly or through others.
async fn merged_into<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profiles: impl IntoIterator<Item = String>,
) -> Result<BTreeSet<String>, Error> {
    let mut all: BTreeSet<String> = profiles.into_iter().collect();
    let mut frontier = all.clone();
    for _ in 0..MAX_CHAIN {
        if frontier.is_empty() {
            break;
        }
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!("SELECT source FROM {MERGES} WHERE tenant = "))
            .bind(tenant)
            .push(" AND target IN ")
            .bind_list(frontier.iter().cloned());
        let rows = db.query_all_raw(sql.statement()).await?;
        frontier = BTreeSet::new();
        for row in rows {
            let source: String = row.try_get("", "source")?;
            if all.insert(source.clone()) {
                frontier.insert(source);
            }
        }
    }
    Ok(all)
}

async fn move_timeline<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    from: &str,
    to: &str,
    only_profiles: Option<&BTreeSet<String>>,
) -> Result<(), Error> {
    for table in [INTERACTIONS, THREADS] {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!("UPDATE {table} SET timeline = "))
            .bind(to);
        if table == INTERACTIONS {
            sql.push(", timeline_key = ")
                .bind(super::timeline_key(tenant, to))
                .push(" WHERE timeline_key = ")
                .bind(super::timeline_key(tenant, from))
                .push(" AND tenant = ");
        } else {
            sql.push(" WHERE tenant = ");
        }
        sql.bind(tenant).push(" AND timeline = ").bind(from);
        if let Some(profiles) = only_profiles {
            sql.push(" AND profile IN ")
                .bind_list(profiles.iter().cloned());
        }
        db.execute_raw(sql.statement()).await?;
    }
    Ok(())
}

/// `source` was merged into `target`: the source's timeline joins the target's.
pub(crate) async fn merge<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    source: &str,
    target: &str,
    merge_event: &str,
    merge_us: i64,
) -> Result<(), Error> {
    let survivor = timeline_of_profile(db, tenant, target).await?;
    if source == target || survivor == source {
        tracing::warn!("ignoring a merge that would make a cycle of profiles");
        return Ok(());
    }
    // A source already merged elsewhere is first separated from there.
    let current = timeline_of_profile(db, tenant, source).await?;
    let mut delete = Sql::new(db.get_database_backend());
    delete
        .push(&format!("DELETE FROM {MERGES} WHERE tenant = "))
        .bind(tenant)
        .push(" AND source = ")
        .bind(source);
    db.execute_raw(delete.statement()).await?;
    let mut insert = Sql::new(db.get_database_backend());
    insert
        .push(&format!(
            "INSERT INTO {MERGES} (tenant, source, target, merge_event, merge_us) VALUES "
        ))
        .bind_list([
            tenant.into(),
            source.into(),
            target.into(),
            merge_event.into(),
            sea_orm::Value::from(merge_us),
        ]);
    db.execute_raw(insert.statement()).await?;
    if current == source {
        move_timeline(db, tenant, source, &survivor, None).await
    } else {
        let moving = merged_into(db, tenant, [source.to_owned()]).await?;
        move_timeline(db, tenant, &current, &survivor, Some(&moving)).await
    }
}

/// The merge of `source` into `target` was undone: what was recorded for the source (and for
/// profiles merged into it) goes back to the source's timeline.
pub(crate) async fn unmerge<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    source: &str,
    target: &str,
) -> Result<(), Error> {
    let mut select = Sql::new(db.get_database_backend());
    select
        .push(&format!("SELECT target FROM {MERGES} WHERE tenant = "))
        .bind(tenant)
        .push(" AND source = ")
        .bind(source);
    let Some(row) = db.query_one_raw(select.statement()).await? else {
        // Never merged here (or already undone): nothing to give back.
        return Ok(());
    };
    let merged_target: String = row.try_get("", "target")?;
    if merged_target != target {
        tracing::warn!("ignoring an unmerge of a merge this service does not hold");
        return Ok(());
    }
    let current = timeline_of_profile(db, tenant, source).await?;
    let moving = merged_into(db, tenant, [source.to_owned()]).await?;
    let mut delete = Sql::new(db.get_database_backend());
    delete
        .push(&format!("DELETE FROM {MERGES} WHERE tenant = "))
        .bind(tenant)
        .push(" AND source = ")
        .bind(source);
    db.execute_raw(delete.statement()).await?;
    move_timeline(db, tenant, &current, source, Some(&moving)).await
}

/// Deletes everything held on `profiles` and on profiles merged into them.
pub(crate) async fn erase<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profiles: Vec<String>,
) -> Result<u64, Error> {
    let erased = merged_into(db, tenant, profiles).await?;
    let finals = surviving(db, tenant, erased.iter().map(String::as_str)).await?;
    let timelines: BTreeSet<String> = erased
        .iter()
        .map(|p| finals.get(p).unwrap_or(p).clone())
        .collect();
    let mut deleted = 0;
    for table in [INTERACTIONS, THREADS] {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!("DELETE FROM {table} WHERE "));
        if table == INTERACTIONS {
            sql.push("timeline_key IN ")
                .bind_list(timelines.iter().map(|t| super::timeline_key(tenant, t)))
                .push(" AND ");
        }
        sql.push("tenant = ")
            .bind(tenant)
            .push(" AND timeline IN ")
            .bind_list(timelines.iter().cloned())
            .push(" AND (timeline IN ")
            .bind_list(erased.iter().cloned())
            .push(" OR profile IN ")
            .bind_list(erased.iter().cloned())
            .push(")");
        deleted += db.execute_raw(sql.statement()).await?.rows_affected();
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("DELETE FROM {MERGES} WHERE tenant = "))
        .bind(tenant)
        .push(" AND (source IN ")
        .bind_list(erased.iter().cloned())
        .push(" OR target IN ")
        .bind_list(erased.iter().cloned())
        .push(")");
    db.execute_raw(sql.statement()).await?;
    Ok(deleted)
}
