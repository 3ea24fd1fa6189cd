//! Daily counts beside the rows metrics count, so a dashboard's window of whole days reads a few
//! thousand counters instead of a million answers.
//!
//! `feedback_daily_counts` holds, per tenant, survey, UTC day, context channel, kind and score,
//! how many rows there are: answers (`kind` is the `MetricKind`, `score` the score), responses
//! (`kind` [`RESPONSES`], `score` 1 when complete, 0 when not) and invitations that count
//! towards the response rate (`kind` [`INVITATIONS`], `score` 0).
//!
//! Writers do not update those counters: concurrent submissions to one survey would queue on
//! the same row. Each write instead appends its changes, +1 for rows it added and −1 for rows
//! it removed, to `feedback_count_changes` in its own transaction, and [`fold`] moves changes
//! into the daily counters in the background. Readers add both tables, so a count is exact
//! whether or not its changes have been folded yet.

use std::collections::BTreeMap;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use throughline_proto::feedback::v1::InvitationState;
use throughline_runtime::Error;
use throughline_runtime::db::write_transaction;
use throughline_runtime::sql::{Sql, insert_rows};
use tokio_util::sync::CancellationToken;

/// A UTC day in microseconds.
pub(crate) const DAY_US: i64 = 86_400_000_000;
/// `kind` of the counters of responses.
pub(crate) const RESPONSES: i32 = -1;
/// `kind` of the counters of invitations.
pub(crate) const INVITATIONS: i32 = -2;
/// The counter columns, in both tables.
pub(crate) const COLUMNS: &str = "tenant, survey_id, day_us, channel, kind, score, n";

/// Changes moved per fold; the rest wait for the next round.
const FOLD_BATCH: i64 = 20_000;
/// Counters written per statement (seven parameters each, under SQLite's limit).
const UPSERT_CHUNK: usize = 1_000;
/// How often [`fold_worker`] folds when the last round emptied the changes.
const FOLD_INTERVAL: Duration = Duration::from_secs(1);

/// The rows whose counts change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    Scores,
    Responses,
    Invitations,
}

/// Which rows of a table: every one (a backfill), or those of a tenant whose `column` is one
/// of `values`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rows<'a> {
    All,
    Where {
        tenant: &'a str,
        column: &'a str,
        values: &'a [&'a str],
    },
}

/// `SELECT` of the counts of `rows` of `counted`, each multiplied by `sign`, in [`COLUMNS`].
fn select_counts(sql: &mut Sql, counted: Counted, rows: Rows<'_>, sign: i64) {
    let (table, kind, score) = match counted {
        Counted::Scores => ("feedback_scores", "kind", "score"),
        Counted::Responses => ("feedback_responses", "", "complete"),
        Counted::Invitations => ("feedback_invitations", "", ""),
    };
    let day = format!("create_us - create_us % {DAY_US}");
    let kind_column = match counted {
        Counted::Scores => kind.to_owned(),
        Counted::Responses => RESPONSES.to_string(),
        Counted::Invitations => INVITATIONS.to_string(),
    };
    let score_column = if score.is_empty() { "0" } else { score };
    sql.push(&format!(
        "SELECT tenant, survey_id, {day} AS day_us, channel, {kind_column} AS kind, \
         {score_column} AS score, {sign} * COUNT(*) AS n FROM {table} WHERE 1 = 1"
    ));
    if let Rows::Where {
        tenant,
        column,
        values,
    } = rows
    {
        sql.push(" AND tenant = ")
            .bind(tenant)
            .push(&format!(" AND {column} IN "))
            .bind_list(values.iter().copied());
    }
    if counted == Counted::Invitations {
        // Throttled and suppressed invitations never reached the customer.
        sql.push(" AND state NOT IN ").bind_list([
            InvitationState::Throttled as i32,
            InvitationState::Suppressed as i32,
        ]);
    }
    let mut grouped = vec!["tenant", "survey_id", day.as_str(), "channel"];
    grouped.extend([kind, score].into_iter().filter(|c| !c.is_empty()));
    sql.push(" GROUP BY ").push(&grouped.join(", "));
}

/// Appends the counts of each part's rows, times `sign` (+1 after adding the rows, −1 before
/// removing them), to the changes, in the caller's transaction and in one statement.
pub(crate) async fn record(
    db: &impl ConnectionTrait,
    sign: i64,
    parts: &[(Counted, Rows<'_>)],
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!("INSERT INTO feedback_count_changes ({COLUMNS}) "));
    for (index, (counted, rows)) in parts.iter().enumerate() {
        if index > 0 {
            sql.push(" UNION ALL ");
        }
        select_counts(&mut sql, *counted, *rows, sign);
    }
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Rebuilds the daily counts from the rows and drops the changes: what the migration that
/// introduced them does, and what to run after changing the counted tables by hand. Nothing may
/// write feedback meanwhile.
pub async fn recount(db: &impl ConnectionTrait) -> Result<(), Error> {
    for table in ["feedback_count_changes", "feedback_daily_counts"] {
        db.execute_unprepared(&format!("DELETE FROM {table}"))
            .await?;
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO feedback_daily_counts ({COLUMNS}) \
         SELECT tenant, survey_id, day_us, channel, kind, score, CAST(SUM(n) AS BIGINT) FROM ("
    ));
    for (index, counted) in [Counted::Scores, Counted::Responses, Counted::Invitations]
        .into_iter()
        .enumerate()
    {
        if index > 0 {
            sql.push(" UNION ALL ");
        }
        select_counts(&mut sql, counted, Rows::All, 1);
    }
    sql.push(") c GROUP BY tenant, survey_id, day_us, channel, kind, score");
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// A counter: tenant, survey, UTC day, channel, kind and score.
pub(crate) type CounterKey = (String, String, i64, i32, i32, i32);

/// The UTC day (its first microsecond) of `time_us`, as the daily counts key it.
pub(crate) fn day_of(time_us: i64) -> i64 {
    time_us - time_us.rem_euclid(DAY_US)
}

/// Appends `changes` (each counter's change) in one statement, in the caller's transaction:
/// for rows the caller has just written and holds, so nothing is read back.
pub(crate) async fn record_changes(
    db: &impl ConnectionTrait,
    changes: &BTreeMap<CounterKey, i64>,
) -> Result<(), Error> {
    let changes: Vec<_> = changes.iter().filter(|(_, n)| **n != 0).collect();
    for chunk in changes.chunks(UPSERT_CHUNK) {
        let sql = insert_counters(
            db.get_database_backend(),
            "feedback_count_changes",
            chunk.iter().copied(),
        )?;
        db.execute_raw(sql.statement()).await?;
    }
    Ok(())
}

/// `INSERT INTO {table}` of `(counter, n)` rows.
fn insert_counters<'a>(
    backend: sea_orm::DbBackend,
    table: &str,
    counters: impl Iterator<Item = (&'a CounterKey, &'a i64)>,
) -> Result<Sql, Error> {
    let rows = counters.map(|((tenant, survey, day, channel, kind, score), n)| {
        vec![
            sea_orm::Value::from(tenant.as_str()),
            survey.as_str().into(),
            (*day).into(),
            (*channel).into(),
            (*kind).into(),
            (*score).into(),
            (*n).into(),
        ]
    });
    let columns: Vec<&str> = COLUMNS.split(", ").collect();
    insert_rows(backend, table, &columns, rows)
}

/// Moves up to [`FOLD_BATCH`] changes into the daily counters in one transaction; how many it
/// moved. Replicas may fold at once: a change is deleted, and so counted, by one of them only.
pub(crate) async fn fold(db: &DatabaseConnection) -> Result<u64, Error> {
    // An idle service takes no write lock: on the embedded SQLite file every service shares,
    // that lock would hold the others' writes up once a second.
    let pending = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT 1 FROM feedback_count_changes LIMIT 1",
        ))
        .await?;
    if pending.is_none() {
        return Ok(0);
    }
    let transaction = write_transaction(db).await?;
    let backend = transaction.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "DELETE FROM feedback_count_changes WHERE seq IN \
         (SELECT seq FROM feedback_count_changes ORDER BY seq LIMIT {FOLD_BATCH}) \
         RETURNING {COLUMNS}"
    ));
    let rows = transaction.query_all_raw(sql.statement()).await?;
    let moved = rows.len() as u64;
    let mut sums: BTreeMap<CounterKey, i64> = BTreeMap::new();
    for row in rows {
        let key = (
            row.try_get("", "tenant")?,
            row.try_get("", "survey_id")?,
            row.try_get("", "day_us")?,
            row.try_get("", "channel")?,
            row.try_get("", "kind")?,
            row.try_get("", "score")?,
        );
        *sums.entry(key).or_default() += row.try_get::<i64>("", "n")?;
    }
    // In key order, so two replicas folding at once take the counters' locks in one order.
    let sums: Vec<_> = sums.into_iter().filter(|(_, n)| *n != 0).collect();
    for chunk in sums.chunks(UPSERT_CHUNK) {
        let mut sql = insert_counters(
            backend,
            "feedback_daily_counts",
            chunk.iter().map(|(key, n)| (key, n)),
        )?;
        sql.push(
            " ON CONFLICT (tenant, survey_id, day_us, channel, kind, score) \
             DO UPDATE SET n = feedback_daily_counts.n + excluded.n",
        );
        transaction.execute_raw(sql.statement()).await?;
    }
    transaction.commit().await?;
    Ok(moved)
}

/// Folds changes until `stopping`: at once again while a round finds a full batch, otherwise
/// every [`FOLD_INTERVAL`].
pub(crate) async fn fold_worker(db: DatabaseConnection, stopping: CancellationToken) {
    loop {
        let pause = match fold(&db).await {
            Ok(moved) if moved as i64 >= FOLD_BATCH => Duration::ZERO,
            Ok(_) => FOLD_INTERVAL,
            Err(error) => {
                // Unfolded changes are still counted by readers; the next round retries.
                tracing::warn!(%error, "folding feedback count changes failed");
                FOLD_INTERVAL
            }
        };
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
