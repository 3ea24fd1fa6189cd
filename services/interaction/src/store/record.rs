//! Recording: a batch of valid interactions written in one transaction as one multi-row insert
//! (`ON CONFLICT DO NOTHING`, so a retried id stores nothing), their `interaction.recorded`
//! events as one multi-row outbox insert, and the threads they continue brought up to date.

use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::{ConnectionTrait, DbBackend, Value};
use serde::Serialize;
use throughline_proto::event::v1::InteractionRecorded;
use throughline_proto::interaction::v1::Interaction;
use throughline_runtime::Error;

use super::identity::surviving;
use super::{
    INTERACTION_COLUMNS, INTERACTIONS, THREADS, interaction_from_row, profile_of, thread_name,
};
use crate::events;
use crate::sql::{Sql, bytea_hex};
use crate::time::timestamp;
use crate::validate::{NewInteraction, Violation};

/// What became of one item of a batch.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Newly stored (with the stored interaction when asked for).
    Stored(Option<Interaction>),
    /// Already recorded with the same content; nothing stored.
    Duplicate(Option<Interaction>),
    /// Not stored: the id is taken by a different interaction, or the thread does not exist.
    Rejected(Violation),
}

/// A valid item with what the store adds to it.
struct Row<'a> {
    item: &'a NewInteraction,
    profile: String,
    timeline: String,
    timeline_key: i64,
}

/// One batch to record: valid items of one tenant, with the profile each item's customer
/// resolved to.
pub(crate) struct Batch<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) items: &'a [NewInteraction],
    pub(crate) profiles: &'a [Option<String>],
}

/// Records `items` (all valid) of `tenant` through `db` (a transaction). `profiles` holds the
/// profile each item's customer resolved to. With `want_stored` the outcomes carry the stored
/// interactions (RPCs that answer them); streaming ingest leaves them out.
pub(crate) async fn record<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    items: &[NewInteraction],
    profiles: &[Option<String>],
    want_stored: bool,
) -> Result<Vec<Outcome>, Error> {
    let batch = Batch {
        tenant,
        items,
        profiles,
    };
    let mut outcomes = record_batches(db, std::slice::from_ref(&batch), want_stored).await?;
    Ok(outcomes.pop().unwrap_or_default())
}

/// Records `batches` in order through `db` (a transaction), as [`record`] records one. Which
/// profiles were merged into others is read once per tenant for all of them.
pub(crate) async fn record_batches<C: ConnectionTrait>(
    db: &C,
    batches: &[Batch<'_>],
    want_stored: bool,
) -> Result<Vec<Vec<Outcome>>, Error> {
    let mut profiles_by_tenant: HashMap<&str, HashSet<&str>> = HashMap::new();
    for batch in batches {
        profiles_by_tenant
            .entry(batch.tenant)
            .or_default()
            .extend(batch.profiles.iter().flatten().map(String::as_str));
    }
    let mut merged_by_tenant = HashMap::with_capacity(profiles_by_tenant.len());
    for (tenant, profiles) in profiles_by_tenant {
        merged_by_tenant.insert(tenant, surviving(db, tenant, profiles).await?);
    }
    let mut outcomes = Vec::with_capacity(batches.len());
    for batch in batches {
        let merged = &merged_by_tenant[batch.tenant];
        outcomes.push(record_batch(db, batch, merged, want_stored).await?);
    }
    Ok(outcomes)
}

/// Records one batch; `merged` maps each profile merged away to its survivor.
async fn record_batch<C: ConnectionTrait>(
    db: &C,
    batch: &Batch<'_>,
    merged: &HashMap<String, String>,
    want_stored: bool,
) -> Result<Vec<Outcome>, Error> {
    let Batch {
        tenant,
        items,
        profiles,
    } = *batch;
    let record_us = crate::time::now_us();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];

    let missing = missing_threads(db, tenant, items).await?;

    // The first occurrence of each id goes to the database; later ones in the same batch are
    // compared with it.
    let mut first_of: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    let mut repeats = Vec::new();
    let mut rows: Vec<(usize, Row<'_>)> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        if !item.thread.is_empty() && missing.contains(item.thread.as_str()) {
            outcomes[index] = Some(Outcome::Rejected(Violation::new(
                "interaction.thread",
                "NOT_FOUND",
                "no such thread",
            )));
            continue;
        }
        if let Some(first) = first_of.get(item.id.as_str()) {
            repeats.push((index, *first));
            continue;
        }
        first_of.insert(&item.id, index);
        let profile = profiles.get(index).cloned().flatten().unwrap_or_default();
        let timeline = if profile.is_empty() {
            item.customer.as_str().to_owned()
        } else {
            merged
                .get(&profile)
                .cloned()
                .unwrap_or_else(|| profile.clone())
        };
        rows.push((
            index,
            Row {
                item,
                profile,
                timeline_key: super::timeline_key(tenant, &timeline),
                timeline,
            },
        ));
    }

    // The events are built while the database inserts the rows, for all of them: almost
    // always every row is new.
    let backend = db.get_database_backend();
    let (inserted, prepared) = futures::future::join(insert(db, tenant, &rows, record_us), async {
        recorded_statements(backend, tenant, rows.iter().map(|(_, row)| row))
    })
    .await;
    let inserted = inserted?;
    let not_inserted: Vec<&str> = rows
        .iter()
        .filter(|(_, row)| !inserted.contains(row.item.id.as_str()))
        .map(|(_, row)| row.item.id.as_str())
        .collect();
    let stored = stored(db, tenant, &not_inserted).await?;

    let mut new_rows = Vec::with_capacity(inserted.len());
    for (index, row) in &rows {
        let outcome = if inserted.contains(row.item.id.as_str()) {
            new_rows.push(row);
            Outcome::Stored(want_stored.then(|| new_interaction(row, record_us)))
        } else {
            match stored.get(row.item.id.as_str()) {
                Some((hash, interaction)) if *hash == row.item.content_hash => {
                    Outcome::Duplicate(want_stored.then(|| interaction.clone()))
                }
                // Deleted between the insert and the read (erasure): it was recorded.
                None => Outcome::Duplicate(None),
                Some(_) => Outcome::Rejected(reused()),
            }
        };
        outcomes[*index] = Some(outcome);
    }
    for (index, first) in repeats {
        let outcome = match &outcomes[first] {
            Some(_) if items[index].content_hash != items[first].content_hash => {
                Outcome::Rejected(reused())
            }
            Some(Outcome::Stored(interaction) | Outcome::Duplicate(interaction)) => {
                Outcome::Duplicate(interaction.clone())
            }
            Some(rejected @ Outcome::Rejected(_)) => rejected.clone(),
            None => Outcome::Rejected(reused()),
        };
        outcomes[index] = Some(outcome);
    }

    let statements = if new_rows.len() == rows.len() {
        prepared?
    } else {
        recorded_statements(backend, tenant, new_rows.iter().copied())?
    };
    for statement in statements {
        db.execute_raw(statement).await?;
    }
    update_threads(db, tenant, &new_rows, record_us).await?;

    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Outcome::Rejected(reused())))
        .collect())
}

/// The outbox statements of the `interaction.recorded` events of `rows`.
fn recorded_statements<'r, 'a: 'r>(
    backend: DbBackend,
    tenant: &str,
    rows: impl Iterator<Item = &'r Row<'a>>,
) -> Result<Vec<sea_orm::Statement>, Error> {
    let recorded: Vec<_> = rows
        .map(|row| {
            events::event(
                tenant,
                "interaction.recorded",
                &profile_of(&row.timeline),
                "InteractionRecorded",
                &recorded_event(row),
            )
        })
        .collect();
    events::append_statements(backend, &recorded)
}

fn reused() -> Violation {
    Violation::new(
        "interaction_id",
        "ID_REUSED",
        "already recorded with different content",
    )
}

async fn missing_threads<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    items: &[NewInteraction],
) -> Result<HashSet<String>, Error> {
    let named: HashSet<&str> = items
        .iter()
        .map(|item| item.thread.as_str())
        .filter(|thread| !thread.is_empty())
        .collect();
    if named.is_empty() {
        return Ok(HashSet::new());
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("SELECT id FROM {THREADS} WHERE tenant = "))
        .bind(tenant)
        .push(" AND id IN ")
        .bind_list(named.iter().map(|id| (*id).to_owned()));
    let found: HashSet<String> = db
        .query_all_raw(sql.statement())
        .await?
        .iter()
        .map(|row| row.try_get("", "id"))
        .collect::<Result<_, _>>()?;
    Ok(named
        .into_iter()
        .filter(|id| !found.contains(*id))
        .map(str::to_owned)
        .collect())
}

/// Inserts the rows that are not stored yet; returns the ids it inserted.
async fn insert<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    rows: &[(usize, Row<'_>)],
    record_us: i64,
) -> Result<HashSet<String>, Error> {
    let mut inserted = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(1000) {
        let statement = if db.get_database_backend() == DbBackend::Postgres {
            insert_postgres(tenant, chunk, record_us)?
        } else {
            insert_values(db.get_database_backend(), tenant, chunk, record_us)
        };
        for row in db.query_all_raw(statement).await? {
            inserted.insert(row.try_get::<String>("", "id")?);
        }
    }
    Ok(inserted)
}

const INSERT_COLUMNS: &str = "tenant, id, customer, profile, timeline, timeline_key, channel, \
     direction, interaction_type, occur_us, record_us, thread, touchpoint, reason, step, agent, \
     outcome, source, attributes, content_hash";

/// One multi-row `VALUES` (20 values a row keeps it far below SQLite's parameter limit).
/// `OR IGNORE` rather than `ON CONFLICT … DO NOTHING`: with the latter the NOT NULL checks
/// could still abort the statement, so SQLite copied every page the insert touched into a
/// statement journal first (12 % of the writer's time in the ingest benchmark). The values
/// bound here are never NULL, so ignoring changes nothing but that.
fn insert_values(
    backend: DbBackend,
    tenant: &str,
    chunk: &[(usize, Row<'_>)],
    record_us: i64,
) -> sea_orm::Statement {
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "INSERT OR IGNORE INTO {INTERACTIONS} ({INSERT_COLUMNS}) VALUES "
    ));
    for (position, (_, row)) in chunk.iter().enumerate() {
        if position > 0 {
            sql.push(", ");
        }
        let item = row.item;
        sql.bind_list([
            Value::from(tenant),
            item.id.as_str().into(),
            item.customer.as_str().into(),
            row.profile.as_str().into(),
            row.timeline.as_str().into(),
            row.timeline_key.into(),
            item.channel.into(),
            item.direction.into(),
            item.r#type.as_str().into(),
            item.occur_us.into(),
            record_us.into(),
            item.thread.as_str().into(),
            item.touchpoint.as_str().into(),
            item.reason.as_str().into(),
            item.step.as_str().into(),
            item.agent.as_str().into(),
            item.outcome.as_str().into(),
            item.source.as_str().into(),
            item.attributes_bytes.clone().into(),
            item.content_hash.into(),
        ]);
    }
    sql.push(" RETURNING id");
    sql.statement()
}

/// A row as `json_populate_recordset` reads it.
#[derive(Serialize)]
struct JsonRow<'a> {
    tenant: &'a str,
    id: &'a str,
    customer: &'a str,
    profile: &'a str,
    timeline: &'a str,
    timeline_key: i64,
    channel: i32,
    direction: i32,
    interaction_type: &'a str,
    occur_us: i64,
    record_us: i64,
    thread: &'a str,
    touchpoint: &'a str,
    reason: &'a str,
    step: &'a str,
    agent: &'a str,
    outcome: &'a str,
    source: &'a str,
    attributes: Option<String>,
    content_hash: i64,
}

/// On PostgreSQL the batch travels as one JSON parameter expanded by
/// `json_populate_recordset`: parsing and planning a statement of one parameter is far cheaper
/// than one of 20,000, and the rows are read by the columns' own input functions, as COPY does.
fn insert_postgres(
    tenant: &str,
    chunk: &[(usize, Row<'_>)],
    record_us: i64,
) -> Result<sea_orm::Statement, Error> {
    let rows: Vec<JsonRow<'_>> = chunk
        .iter()
        .map(|(_, row)| {
            let item = row.item;
            JsonRow {
                tenant,
                id: &item.id,
                customer: item.customer.as_str(),
                profile: &row.profile,
                timeline: &row.timeline,
                timeline_key: row.timeline_key,
                channel: item.channel,
                direction: item.direction,
                interaction_type: &item.r#type,
                occur_us: item.occur_us,
                record_us,
                thread: &item.thread,
                touchpoint: &item.touchpoint,
                reason: &item.reason,
                step: &item.step,
                agent: &item.agent,
                outcome: &item.outcome,
                source: &item.source,
                attributes: item.attributes_bytes.as_deref().map(bytea_hex),
                content_hash: item.content_hash,
            }
        })
        .collect();
    let json = serde_json::to_string(&rows).map_err(Error::internal)?;
    let mut sql = Sql::new(DbBackend::Postgres);
    sql.push(&format!(
        "INSERT INTO {INTERACTIONS} ({INSERT_COLUMNS}) SELECT {INSERT_COLUMNS} \
         FROM json_populate_recordset(NULL::{INTERACTIONS}, "
    ))
    .bind(json)
    .push("::json) ON CONFLICT (tenant, id) DO NOTHING RETURNING id");
    Ok(sql.statement())
}

/// The stored interactions and content hashes of `ids`.
async fn stored<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, (i64, Interaction)>, Error> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(1000) {
        let mut sql = Sql::new(db.get_database_backend());
        sql.push(&format!(
            "SELECT {INTERACTION_COLUMNS} FROM {INTERACTIONS} WHERE tenant = "
        ))
        .bind(tenant)
        .push(" AND id IN ")
        .bind_list(chunk.iter().map(|id| (*id).to_owned()));
        for row in db.query_all_raw(sql.statement()).await? {
            let id: String = row.try_get("", "id")?;
            let hash: i64 = row.try_get("", "content_hash")?;
            found.insert(id, (hash, interaction_from_row(&row)?));
        }
    }
    Ok(found)
}

fn new_interaction(row: &Row<'_>, record_us: i64) -> Interaction {
    let item = row.item;
    Interaction {
        name: format!("interactions/{}", item.id),
        customer: Some(item.customer.to_ref()),
        profile: profile_of(&row.timeline),
        channel: item.channel,
        direction: item.direction,
        r#type: item.r#type.clone(),
        occur_time: Some(timestamp(item.occur_us)),
        thread: thread_name(&item.thread),
        touchpoint: item.touchpoint.clone(),
        reason: item.reason.clone(),
        step: item.step.clone(),
        agent: item.agent.clone(),
        outcome: item.outcome.clone(),
        source: item.source.clone(),
        attributes: item.attributes.clone(),
        record_time: Some(timestamp(record_us)),
    }
}

fn recorded_event(row: &Row<'_>) -> InteractionRecorded {
    let item = row.item;
    InteractionRecorded {
        interaction: format!("interactions/{}", item.id),
        customer: Some(item.customer.to_ref()),
        profile: profile_of(&row.timeline),
        channel: item.channel,
        direction: item.direction,
        interaction_type: item.r#type.clone(),
        occur_time: Some(timestamp(item.occur_us)),
        thread: thread_name(&item.thread),
        touchpoint: item.touchpoint.clone(),
        reason: item.reason.clone(),
        step: item.step.clone(),
        outcome: item.outcome.clone(),
        attributes: item.attributes.clone(),
    }
}

/// What a batch adds to one thread.
struct ThreadProgress {
    count: i64,
    first: (i64, i32),
    last: (i64, i32),
    step: Option<(i64, String)>,
}

/// Brings each thread the new interactions continue up to date: count, first and last channel
/// and time, and the step of its latest interaction that carries one. Comparisons with the
/// stored values make the result independent of the order in which batches arrive.
async fn update_threads<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    rows: &[&Row<'_>],
    now_us: i64,
) -> Result<(), Error> {
    // Sorted by thread id, so concurrent batches lock threads in the same order.
    let mut progress: BTreeMap<&str, ThreadProgress> = BTreeMap::new();
    for row in rows.iter().filter(|row| !row.item.thread.is_empty()) {
        let item = row.item;
        let entry = progress
            .entry(item.thread.as_str())
            .or_insert(ThreadProgress {
                count: 0,
                first: (item.occur_us, item.channel),
                last: (item.occur_us, item.channel),
                step: None,
            });
        entry.count += 1;
        if item.occur_us < entry.first.0 {
            entry.first = (item.occur_us, item.channel);
        }
        if item.occur_us >= entry.last.0 {
            entry.last = (item.occur_us, item.channel);
        }
        if !item.step.is_empty()
            && entry
                .step
                .as_ref()
                .is_none_or(|(at, _)| item.occur_us >= *at)
        {
            entry.step = Some((item.occur_us, item.step.clone()));
        }
    }
    for (thread, progress) in progress {
        let mut sql = Sql::new(db.get_database_backend());
        let (first_us, first_channel) = progress.first;
        let (last_us, last_channel) = progress.last;
        sql.push(&format!(
            "UPDATE {THREADS} SET interaction_count = interaction_count + "
        ))
        .bind(progress.count)
        .push(", opened_channel = CASE WHEN first_us IS NULL OR first_us > ")
        .bind(first_us)
        .push(" THEN ")
        .bind(first_channel)
        .push(" ELSE opened_channel END, first_us = CASE WHEN first_us IS NULL OR first_us > ")
        .bind(first_us)
        .push(" THEN ")
        .bind(first_us)
        .push(" ELSE first_us END, last_channel = CASE WHEN last_us IS NULL OR last_us <= ")
        .bind(last_us)
        .push(" THEN ")
        .bind(last_channel)
        .push(" ELSE last_channel END, last_us = CASE WHEN last_us IS NULL OR last_us <= ")
        .bind(last_us)
        .push(" THEN ")
        .bind(last_us)
        .push(" ELSE last_us END, active_us = CASE WHEN active_us < ")
        .bind(last_us)
        .push(" THEN ")
        .bind(last_us)
        .push(" ELSE active_us END");
        if let Some((step_us, step)) = progress.step {
            sql.push(", current_step = CASE WHEN step_us IS NULL OR step_us <= ")
                .bind(step_us)
                .push(" THEN ")
                .bind(step)
                .push(" ELSE current_step END, step_us = CASE WHEN step_us IS NULL OR step_us <= ")
                .bind(step_us)
                .push(" THEN ")
                .bind(step_us)
                .push(" ELSE step_us END");
        }
        sql.push(", update_us = ")
            .bind(now_us)
            .push(", revision = revision + 1 WHERE tenant = ")
            .bind(tenant)
            .push(" AND id = ")
            .bind(thread);
        db.execute_raw(sql.statement()).await?;
    }
    Ok(())
}
