//! Reading the timeline: one interaction, a customer's or a thread's interactions newest first
//! (keyset pages over the `(timeline_key, occur_us, id)` index), and the latest interaction on
//! each channel. A timeline is selected by its key (for the index) and by tenant and timeline
//! (keys may collide).

use sea_orm::ConnectionTrait;
use throughline_proto::common::v1::Channel;
use throughline_proto::interaction::v1::Interaction;
use throughline_runtime::Error;

use super::{INTERACTION_COLUMNS, INTERACTIONS, interaction_from_row};
use crate::sql::Sql;
use crate::time::PageToken;

pub(crate) async fn get<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<Option<Interaction>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {INTERACTION_COLUMNS} FROM {INTERACTIONS} WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND id = ")
    .bind(id);
    db.query_one_raw(sql.statement())
        .await?
        .map(|row| interaction_from_row(&row))
        .transpose()
}

/// Which interactions a page reads.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub(crate) timeline: Option<String>,
    pub(crate) thread: Option<String>,
    pub(crate) channels: Vec<i32>,
    pub(crate) types: Vec<String>,
    pub(crate) from_us: Option<i64>,
    pub(crate) until_us: Option<i64>,
    pub(crate) after: Option<PageToken>,
    pub(crate) page_size: usize,
}

/// A page of interactions, and the sort key of its last one when there are more.
pub(crate) async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    query: &Query,
) -> Result<(Vec<Interaction>, Option<PageToken>), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {INTERACTION_COLUMNS} FROM {INTERACTIONS} WHERE tenant = "
    ))
    .bind(tenant);
    if let Some(timeline) = &query.timeline {
        sql.push(" AND timeline_key = ")
            .bind(super::timeline_key(tenant, timeline))
            .push(" AND timeline = ")
            .bind(timeline.as_str());
    }
    if let Some(thread) = &query.thread {
        // `thread <> ''` lets both databases use the partial index of threaded interactions.
        sql.push(" AND thread <> '' AND thread = ")
            .bind(thread.as_str());
    }
    if !query.channels.is_empty() {
        sql.push(" AND channel IN ")
            .bind_list(query.channels.iter().copied());
    }
    if !query.types.is_empty() {
        sql.push(" AND interaction_type IN ")
            .bind_list(query.types.iter().cloned());
    }
    if let Some(from) = query.from_us {
        sql.push(" AND occur_us >= ").bind(from);
    }
    if let Some(until) = query.until_us {
        sql.push(" AND occur_us < ").bind(until);
    }
    if let Some(after) = &query.after {
        sql.after_page("occur_us", after);
    }
    sql.push(" ORDER BY occur_us DESC, id DESC LIMIT ")
        .bind(i64::try_from(query.page_size + 1).unwrap_or(i64::MAX));
    let rows = db.query_all_raw(sql.statement()).await?;
    let more = rows.len() > query.page_size;
    let mut interactions = Vec::with_capacity(rows.len().min(query.page_size));
    let mut last = None;
    for row in rows.iter().take(query.page_size) {
        last = Some(PageToken {
            sort_us: row.try_get("", "occur_us")?,
            id: row.try_get("", "id")?,
        });
        interactions.push(interaction_from_row(row)?);
    }
    Ok((interactions, if more { last } else { None }))
}

/// The latest interaction on each channel of a timeline, newest first: one index probe per
/// channel.
pub(crate) async fn latest_per_channel<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    timeline: &str,
) -> Result<Vec<Interaction>, Error> {
    let key = super::timeline_key(tenant, timeline);
    let mut latest = Vec::new();
    for channel in (1..=13).filter(|c| Channel::try_from(*c).is_ok()) {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!(
            "SELECT {INTERACTION_COLUMNS} FROM {INTERACTIONS} WHERE tenant = "
        ))
        .bind(tenant)
        .push(" AND timeline_key = ")
        .bind(key)
        .push(" AND timeline = ")
        .bind(timeline)
        .push(" AND channel = ")
        .bind(channel)
        .push(" ORDER BY occur_us DESC, id DESC LIMIT 1");
        if let Some(row) = db.query_one_raw(sql.statement()).await? {
            latest.push((
                row.try_get::<i64>("", "occur_us")?,
                interaction_from_row(&row)?,
            ));
        }
    }
    latest.sort_by_key(|(occur_us, _)| std::cmp::Reverse(*occur_us));
    Ok(latest
        .into_iter()
        .map(|(_, interaction)| interaction)
        .collect())
}
