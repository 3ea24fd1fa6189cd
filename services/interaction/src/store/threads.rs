//! Threads: cases and conversations that span channels. Every change is one conditional
//! `UPDATE … RETURNING` (never a read, then a write), so concurrent changes serialise in the
//! database on both backends and a refused change is explained by a read afterwards.

use sea_orm::{ConnectionTrait, QueryResult, Value};
use throughline_proto::event::v1::{ThreadOpened, ThreadResolved};
use throughline_proto::interaction::v1::{Thread, ThreadState};
use throughline_runtime::Error;

use super::{THREADS, decode_struct, profile_of};
use crate::customer::CustomerKey;
use crate::events;
use crate::sql::Sql;
use crate::time::{PageToken, now_us, timestamp};

const THREAD_COLUMNS: &str = "id, customer, timeline, display_name, reason, state, current_step, \
     opened_channel, last_channel, last_us, interaction_count, resolution, attributes, active_us, \
     create_us, update_us, resolve_us, revision";

fn from_row(row: &QueryResult) -> Result<Thread, Error> {
    let get_text = |column: &str| row.try_get::<String>("", column);
    let timeline = get_text("timeline")?;
    let revision: i64 = row.try_get("", "revision")?;
    Ok(Thread {
        name: format!("threads/{}", get_text("id")?),
        customer: Some(CustomerKey::from_stored(get_text("customer")?).to_ref()),
        profile: profile_of(&timeline),
        display_name: get_text("display_name")?,
        reason: get_text("reason")?,
        state: row.try_get("", "state")?,
        current_step: get_text("current_step")?,
        opened_channel: row.try_get("", "opened_channel")?,
        last_channel: row.try_get("", "last_channel")?,
        last_interaction_time: row.try_get::<Option<i64>>("", "last_us")?.map(timestamp),
        interaction_count: row.try_get("", "interaction_count")?,
        resolution: get_text("resolution")?,
        attributes: decode_struct(row.try_get("", "attributes")?)?,
        create_time: Some(timestamp(row.try_get("", "create_us")?)),
        update_time: Some(timestamp(row.try_get("", "update_us")?)),
        resolve_time: row.try_get::<Option<i64>>("", "resolve_us")?.map(timestamp),
        etag: revision.to_string(),
    })
}

/// A thread to open.
#[derive(Debug)]
pub(crate) struct NewThread {
    pub(crate) id: String,
    pub(crate) customer: CustomerKey,
    pub(crate) profile: String,
    pub(crate) timeline: String,
    pub(crate) display_name: String,
    pub(crate) reason: String,
    pub(crate) current_step: String,
    pub(crate) attributes: Option<Vec<u8>>,
}

pub(crate) async fn create<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    thread: NewThread,
) -> Result<Thread, Error> {
    let now = now_us();
    let step_us: Option<i64> = (!thread.current_step.is_empty()).then_some(now);
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO {THREADS} (tenant, id, customer, profile, timeline, display_name, reason, \
         state, current_step, step_us, opened_channel, first_us, last_channel, last_us, \
         active_us, interaction_count, resolution, attributes, create_us, update_us, resolve_us, \
         revision) VALUES "
    ))
    .bind_list([
        Value::from(tenant),
        thread.id.as_str().into(),
        thread.customer.as_str().into(),
        thread.profile.as_str().into(),
        thread.timeline.as_str().into(),
        thread.display_name.as_str().into(),
        thread.reason.as_str().into(),
        (ThreadState::Open as i32).into(),
        thread.current_step.as_str().into(),
        step_us.into(),
        0i32.into(),
        Option::<i64>::None.into(),
        0i32.into(),
        Option::<i64>::None.into(),
        now.into(),
        0i64.into(),
        "".into(),
        thread.attributes.into(),
        now.into(),
        now.into(),
        Option::<i64>::None.into(),
        1i64.into(),
    ])
    .push(&format!(
        " ON CONFLICT (tenant, id) DO NOTHING RETURNING {THREAD_COLUMNS}"
    ));
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Err(Error::AlreadyExists(format!("threads/{}", thread.id)));
    };
    let created = from_row(&row)?;
    let opened = ThreadOpened {
        thread: created.name.clone(),
        profile: created.profile.clone(),
        channel: created.opened_channel,
        reason: created.reason.clone(),
        reopened: false,
    };
    events::append(
        db,
        &events::event(
            tenant,
            "thread.opened",
            &created.profile,
            "ThreadOpened",
            &opened,
        ),
    )
    .await?;
    Ok(created)
}

pub(crate) async fn get<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<Thread>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {THREAD_COLUMNS} FROM {THREADS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND id = ")
    .bind(id);
    db.query_one_raw(sql.statement())
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

/// The fields UpdateThread may change; `None` leaves one as it is.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub(crate) display_name: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) current_step: Option<String>,
    pub(crate) attributes: Option<Option<Vec<u8>>>,
}

pub(crate) async fn update<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
    changes: Changes,
    etag: &str,
) -> Result<Thread, Error> {
    let now = now_us();
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {THREADS} SET update_us = "))
        .bind(now)
        .push(", revision = revision + 1");
    if let Some(display_name) = changes.display_name {
        sql.push(", display_name = ").bind(display_name);
    }
    if let Some(reason) = changes.reason {
        sql.push(", reason = ").bind(reason);
    }
    if let Some(step) = changes.current_step {
        // Set now: an interaction that happened before this does not take it back.
        sql.push(", current_step = ")
            .bind(step)
            .push(", step_us = ")
            .bind(now);
    }
    if let Some(attributes) = changes.attributes {
        sql.push(", attributes = ").bind(attributes);
    }
    sql.push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id);
    let expected_revision = match etag {
        "" => None,
        etag => Some(
            etag.parse::<i64>()
                .map_err(|_| Error::invalid("thread.etag", "not an etag this service issued"))?,
        ),
    };
    if let Some(revision) = expected_revision {
        sql.push(" AND revision = ").bind(revision);
    }
    sql.push(&format!(" RETURNING {THREAD_COLUMNS}"));
    match db.query_one_raw(sql.statement()).await? {
        Some(row) => from_row(&row),
        None if get(db, tenant, id).await?.is_some() => Err(Error::Aborted(
            "the thread changed since its etag was read; read it again".into(),
        )),
        None => Err(not_found(id)),
    }
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::NotFound(format!("threads/{id}"))
}

/// Resolves an open thread; FAILED_PRECONDITION if it is resolved already.
pub(crate) async fn resolve<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
    resolution: &str,
) -> Result<Thread, Error> {
    let now = now_us();
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {THREADS} SET state = "))
        .bind(ThreadState::Resolved as i32)
        .push(", resolution = ")
        .bind(resolution)
        .push(", resolve_us = ")
        .bind(now)
        .push(", update_us = ")
        .bind(now)
        .push(", revision = revision + 1 WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id)
        .push(" AND state = ")
        .bind(ThreadState::Open as i32)
        .push(&format!(" RETURNING {THREAD_COLUMNS}"));
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Err(refusal(db, tenant, id, "THREAD_RESOLVED", "already resolved").await);
    };
    let thread = from_row(&row)?;
    let resolved = ThreadResolved {
        thread: thread.name.clone(),
        profile: thread.profile.clone(),
        resolution: thread.resolution.clone(),
    };
    events::append(
        db,
        &events::event(
            tenant,
            "thread.resolved",
            &thread.profile,
            "ThreadResolved",
            &resolved,
        ),
    )
    .await?;
    Ok(thread)
}

/// Reopens a resolved thread; FAILED_PRECONDITION if it is open.
pub(crate) async fn reopen<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Thread, Error> {
    let now = now_us();
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("UPDATE {THREADS} SET state = "))
        .bind(ThreadState::Open as i32)
        .push(", resolution = '', resolve_us = NULL, update_us = ")
        .bind(now)
        .push(", revision = revision + 1 WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id)
        .push(" AND state = ")
        .bind(ThreadState::Resolved as i32)
        .push(&format!(" RETURNING {THREAD_COLUMNS}"));
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Err(refusal(db, tenant, id, "THREAD_OPEN", "already open").await);
    };
    let thread = from_row(&row)?;
    let opened = ThreadOpened {
        thread: thread.name.clone(),
        profile: thread.profile.clone(),
        channel: thread.last_channel,
        reason: thread.reason.clone(),
        reopened: true,
    };
    events::append(
        db,
        &events::event(
            tenant,
            "thread.opened",
            &thread.profile,
            "ThreadOpened",
            &opened,
        ),
    )
    .await?;
    Ok(thread)
}

/// Why a state change found no thread to change: it is missing, or in the other state.
async fn refusal<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
    reason: &'static str,
    message: &str,
) -> Error {
    match get(db, tenant, id).await {
        Ok(Some(_)) => Error::FailedPrecondition {
            reason,
            message: format!("threads/{id} is {message}"),
        },
        Ok(None) => not_found(id),
        Err(error) => error,
    }
}

/// A page of a timeline's threads, most recently active first.
pub(crate) async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    timeline: &str,
    states: &[i32],
    after: Option<&PageToken>,
    page_size: usize,
) -> Result<(Vec<Thread>, Option<PageToken>), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {THREAD_COLUMNS} FROM {THREADS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND timeline = ")
    .bind(timeline);
    if !states.is_empty() {
        sql.push(" AND state IN ").bind_list(states.iter().copied());
    }
    if let Some(after) = after {
        sql.after_page("active_us", after);
    }
    sql.push(" ORDER BY active_us DESC, id DESC LIMIT ")
        .bind(i64::try_from(page_size + 1).unwrap_or(i64::MAX));
    let rows = db.query_all_raw(sql.statement()).await?;
    let more = rows.len() > page_size;
    let mut threads = Vec::with_capacity(rows.len().min(page_size));
    let mut last = None;
    for row in rows.iter().take(page_size) {
        last = Some(PageToken {
            sort_us: row.try_get("", "active_us")?,
            id: row.try_get("", "id")?,
        });
        threads.push(from_row(row)?);
    }
    Ok((threads, if more { last } else { None }))
}
