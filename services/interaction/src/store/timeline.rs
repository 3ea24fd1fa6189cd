//! Reading the timeline: one interaction, a customer's or a thread's interactions newest first
//! (keyset pages over the `(timeline_key, occur_us, id)` index), and the latest interaction on
//! each channel. A timeline is selected by its key (for the index) and by tenant and timeline
//! (keys may collide).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use futures::{StreamExt as _, TryStreamExt as _};
use prost::Message;
use prost::bytes::{Bytes, BytesMut};

use sea_orm::{ConnectionTrait, DatabaseConnection};
use throughline_proto::common::v1::Channel;
use throughline_proto::interaction::v1::Interaction;
use throughline_runtime::Error;
use throughline_runtime::batch::Batcher;
use throughline_runtime::db::generic_plan_pool;

use super::identity::surviving;
use super::{INTERACTION_COLUMNS, INTERACTIONS, MERGES, interaction_from_row};
use crate::sql::Sql;
use crate::time::PageToken;

/// Loader tasks reading pages. Each takes every call waiting (up to [`MAX_BATCH`]), reads
/// each distinct page once, and runs the batch's statements concurrently, so that a batch of
/// one customer's page is one statement and a batch of many customers' pages uses several
/// connections.
const LOADERS: usize = 1;
/// Most calls one loader takes at a time.
const MAX_BATCH: usize = 256;

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
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
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
pub(crate) type Page = (Vec<Interaction>, Option<PageToken>);

/// A page as the callers of one batch share it: read once, and encoded for the wire once, by
/// the first caller that answers with it ([`SharedPage::encoded`]), however many asked.
#[derive(Debug)]
pub(crate) struct SharedPage {
    pub(crate) page: Page,
    encoded: OnceLock<Vec<Bytes>>,
}

impl SharedPage {
    fn new(page: Page) -> Self {
        Self {
            page,
            encoded: OnceLock::new(),
        }
    }

    /// Each interaction of the page in its protobuf encoding, all in one buffer.
    pub(crate) fn encoded(&self) -> &[Bytes] {
        self.encoded.get_or_init(|| {
            // Not sized first: `encode` measures each interaction itself, and measuring is a
            // walk of the whole message, as dear as a good part of the encoding.
            let mut buffer = BytesMut::new();
            self.page
                .0
                .iter()
                .map(|interaction| {
                    // Cannot fail: the buffer grows as needed.
                    let _ = interaction.encode(&mut buffer);
                    buffer.split().freeze()
                })
                .collect()
        })
    }
}

/// Fewest pages a statement of several reads. A statement runs on one connection, so a
/// PostgreSQL backend executes its pages one after the other; the statements of a batch run
/// concurrently.
const PAGES_PER_STATEMENT: usize = 8;
/// Most statements a batch runs at once, so that one batch holds at most this many pooled
/// connections and leaves the rest to writes.
const CONCURRENT_STATEMENTS: usize = 4;
/// Most values one statement binds; a page binds about ten, more with long channel or type
/// filters. Well under SQLite's and PostgreSQL's limits.
const MAX_BOUND: usize = 5_000;

/// Where page statements run.
#[derive(Debug, Clone)]
pub(crate) struct Readers {
    /// The service's pool: pages whose best plan depends on the values.
    pool: DatabaseConnection,
    /// A few connections that plan each statement once, whatever the values
    /// ([`generic_plan_pool`]): pages whose best plan is the same for every customer.
    planned_once: DatabaseConnection,
}

impl Readers {
    /// Must be called within a Tokio runtime.
    pub(crate) fn new(db: &DatabaseConnection) -> Self {
        Self {
            pool: db.clone(),
            planned_once: generic_plan_pool(db, CONCURRENT_STATEMENTS as u32),
        }
    }
}

/// Whether the best plan of `query`'s page is the same whatever the values: a walk down one
/// customer's timeline index (of one channel at most), newest first, that stops after a page.
/// Not so with a thread (with a customer as well, the better index is the smaller of the two)
/// or several channels (for a customer with millions of interactions, walking the timeline
/// beats gathering each channel's and sorting them; for one with few, the other way round).
fn plans_alike(query: &Query) -> bool {
    query.timeline.is_some() && query.thread.is_none() && query.channels.len() <= 1
}

/// The pages `queries` ask for, in their order. Each statement is a `UNION ALL` of its pages'
/// own indexed, limited selects, so concurrent readers share the round trip and the
/// statement's start-up (on PostgreSQL most of a page read's cost) while each page keeps its
/// own plan; the statements run concurrently, those of pages that plan alike on the
/// connections that plan once.
pub(crate) async fn pages(
    readers: &Readers,
    tenant: &str,
    queries: &[Query],
) -> Result<Vec<Page>, Error> {
    let per_statement = PAGES_PER_STATEMENT.max(queries.len().div_ceil(CONCURRENT_STATEMENTS));
    let (alike, rest): (Vec<usize>, Vec<usize>) =
        (0..queries.len()).partition(|&i| plans_alike(&queries[i]));
    let mut statements = Vec::new();
    for (db, group) in [(&readers.planned_once, alike), (&readers.pool, rest)] {
        let mut first = 0;
        while first < group.len() {
            let mut sql = Sql::new(db.get_database_backend());
            let mut end = first;
            while end < group.len()
                && (end == first || (end - first < per_statement && sql.bound() < MAX_BOUND))
            {
                if end > first {
                    sql.push(" UNION ALL ");
                }
                push_page(&mut sql, tenant, end - first, &queries[group[end]]);
                end += 1;
            }
            sql.push(" ORDER BY page, occur_us DESC, id DESC");
            statements.push(read_statement(db, sql, queries, group[first..end].to_vec()));
            first = end;
        }
    }
    // Long filters can split a batch into more statements than CONCURRENT_STATEMENTS.
    let read: Vec<Vec<(usize, Page)>> = futures::stream::iter(statements)
        .buffered(CONCURRENT_STATEMENTS)
        .try_collect()
        .await?;
    let mut found: Vec<Option<Page>> = queries.iter().map(|_| None).collect();
    for (i, page) in read.into_iter().flatten() {
        found[i] = Some(page);
    }
    found
        .into_iter()
        .map(|page| page.ok_or_else(|| Error::internal("a page read left a page out")))
        .collect()
}

/// The pages of `queries` numbered `which` that `sql` reads (its page `n` is `which[n]`), each
/// with its number.
async fn read_statement(
    db: &DatabaseConnection,
    sql: Sql,
    queries: &[Query],
    which: Vec<usize>,
) -> Result<Vec<(usize, Page)>, Error> {
    let rows = db.query_all_raw(sql.statement()).await?;
    let mut read: Vec<Vec<&sea_orm::QueryResult>> = vec![Vec::new(); which.len()];
    for row in &rows {
        let page: i64 = row.try_get("", "page")?;
        let slot = usize::try_from(page)
            .ok()
            .and_then(|page| read.get_mut(page))
            .ok_or_else(|| Error::internal(format!("a page read answered page {page}")))?;
        slot.push(row);
    }
    which
        .into_iter()
        .zip(read)
        .map(|(i, rows)| Ok((i, page_from_rows(&rows, queries[i].page_size)?)))
        .collect()
}

/// `SELECT * FROM (…) AS page{n}`: page `n` of a statement, one more row than the page holds
/// (to tell whether there are more), tagged with `n`.
fn push_page(sql: &mut Sql, tenant: &str, n: usize, query: &Query) {
    sql.push(&format!(
        "SELECT * FROM (SELECT CAST({n} AS BIGINT) AS page, {INTERACTION_COLUMNS} \
         FROM {INTERACTIONS} WHERE tenant = "
    ))
    .bind(tenant);
    if let Some(timeline) = &query.timeline {
        // A profile merged away has no timeline of its own any more (its interactions moved to
        // the survivor's), so its page reads nothing here and `Pages` reads the survivor's.
        // Checking in the statement spares every other read a lookup of its own.
        sql.push(" AND timeline_key = ")
            .bind(super::timeline_key(tenant, timeline))
            .push(" AND timeline = ")
            .bind(timeline.as_str())
            .push(&format!(
                " AND NOT EXISTS (SELECT 1 FROM {MERGES} WHERE tenant = "
            ))
            .bind(tenant)
            .push(" AND source = ")
            .bind(timeline.as_str())
            .push(")");
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
        .bind(i64::try_from(query.page_size + 1).unwrap_or(i64::MAX))
        .push(&format!(") AS page{n}"));
}

/// A page from its rows, newest first, of which at most `page_size` are returned.
fn page_from_rows(rows: &[&sea_orm::QueryResult], page_size: usize) -> Result<Page, Error> {
    let more = rows.len() > page_size;
    let mut interactions = Vec::with_capacity(rows.len().min(page_size));
    let mut last = None;
    for row in rows.iter().take(page_size) {
        last = Some(PageToken {
            sort_us: row.try_get("", "occur_us")?,
            id: row.try_get("", "id")?,
        });
        interactions.push(interaction_from_row(row)?);
    }
    Ok((interactions, if more { last } else { None }))
}

/// Pages read for concurrent callers together ([`pages`] through the runtime's read batcher):
/// ListInteractions of many customers at once costs a few statements, not one each, and
/// callers asking for the same page share its read. Each read starts after its callers
/// asked, so a page shows every interaction recorded before the call.
#[derive(Debug, Clone)]
pub(crate) struct Pages {
    batcher: Batcher<(String, Query), Option<Arc<SharedPage>>>,
    readers: Readers,
}

impl Pages {
    /// Must be called within a Tokio runtime.
    pub(crate) fn start(db: &DatabaseConnection) -> Self {
        let readers = Readers::new(db);
        let batched = readers.clone();
        let batcher = Batcher::per_tenant(
            LOADERS,
            MAX_BATCH,
            db,
            move |_, tenant, queries: Vec<Query>| {
                let readers = batched.clone();
                async move {
                    let distinct: Vec<Query> = queries
                        .into_iter()
                        .collect::<HashSet<_>>()
                        .into_iter()
                        .collect();
                    let mut found = pages(&readers, &tenant, &distinct).await?;
                    read_survivors(&readers, &tenant, &distinct, &mut found).await?;
                    // Shared, so that answering a batch's callers costs neither a copy of a
                    // page in the loader nor an encoding of it per caller.
                    Ok::<_, Error>(
                        distinct
                            .into_iter()
                            .zip(
                                found
                                    .into_iter()
                                    .map(|page| Arc::new(SharedPage::new(page))),
                            )
                            .collect::<HashMap<_, _>>(),
                    )
                }
            },
        );
        Self { batcher, readers }
    }

    /// The page `query` asks for; a timeline of a profile merged away reads as the survivor's.
    pub(crate) async fn read(&self, tenant: &str, query: Query) -> Result<Arc<SharedPage>, Error> {
        self.batcher
            .load((tenant.to_owned(), query))
            .await
            .map_err(super::identity::error_of_status)?
            .ok_or_else(|| Error::internal("a batched page read left a page out"))
    }

    /// The latest interaction on each channel of a timeline, newest first (channels in their
    /// order among equals): a page of one per channel, all read by [`pages`] in one round of
    /// statements rather than a round trip per channel.
    pub(crate) async fn latest_per_channel(
        &self,
        tenant: &str,
        timeline: &str,
    ) -> Result<Vec<Interaction>, Error> {
        let queries: Vec<Query> = (1..=13)
            .filter(|channel| Channel::try_from(*channel).is_ok())
            .map(|channel| Query {
                timeline: Some(timeline.to_owned()),
                channels: vec![channel],
                page_size: 1,
                ..Query::default()
            })
            .collect();
        let mut latest: Vec<Interaction> = pages(&self.readers, tenant, &queries)
            .await?
            .into_iter()
            .flat_map(|(interactions, _)| interactions)
            .collect();
        latest.sort_by_key(|interaction| {
            std::cmp::Reverse(
                interaction
                    .occur_time
                    .map(|time| (time.seconds, time.nanos)),
            )
        });
        Ok(latest)
    }
}

/// Reads again, from the survivor's timeline, each page of `queries` that came back empty
/// because its profile was merged away ([`push_page`] reads nothing for such a profile). Only
/// empty pages are asked about, so a batch of timelines with interactions costs no lookup.
async fn read_survivors(
    readers: &Readers,
    tenant: &str,
    queries: &[Query],
    found: &mut [Page],
) -> Result<(), Error> {
    let empty: Vec<usize> = (0..queries.len())
        .filter(|&i| found[i].0.is_empty() && queries[i].timeline.is_some())
        .collect();
    if empty.is_empty() {
        return Ok(());
    }
    let survivors = surviving(
        &readers.pool,
        tenant,
        empty.iter().filter_map(|&i| queries[i].timeline.as_deref()),
    )
    .await?;
    let mut moved = Vec::new();
    let mut again = Vec::new();
    for i in empty {
        let survivor = queries[i]
            .timeline
            .as_ref()
            .and_then(|timeline| survivors.get(timeline));
        if let Some(survivor) = survivor {
            moved.push(i);
            again.push(Query {
                timeline: Some(survivor.clone()),
                ..queries[i].clone()
            });
        }
    }
    if again.is_empty() {
        return Ok(());
    }
    for (i, page) in moved.into_iter().zip(pages(readers, tenant, &again).await?) {
        found[i] = page;
    }
    Ok(())
}
