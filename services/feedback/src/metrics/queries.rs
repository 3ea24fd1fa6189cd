//! The aggregates metrics are computed from, counted in SQL: answers per kind and score,
//! responses and complete responses, and invitations, each per group key and trend period.
//! Only these counts leave the database.

use std::collections::BTreeMap;

use sea_orm::ConnectionTrait;
use throughline_proto::common::v1::Channel;
use throughline_proto::feedback::v1::{InvitationState, MetricDimension, MetricKind};
use throughline_runtime::Error;
use throughline_runtime::sql::Sql;

use super::periods::Period;
use super::stats::{CesCounts, CsatCounts, NpsCounts};
use crate::filter::Filter;
use crate::store::counts::{COLUMNS, DAY_US, INVITATIONS, RESPONSES, day_of};

/// The counts of one group in one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub nps: NpsCounts,
    pub csat: CsatCounts,
    pub ces: CesCounts,
    /// Responses with at least one answer.
    pub responses: i64,
    pub complete: i64,
    pub invitations: i64,
}

impl Tally {
    pub(crate) fn add(&mut self, other: &Self) {
        self.nps.add(&other.nps);
        self.csat.add(&other.csat);
        self.ces.add(&other.ces);
        self.responses += other.responses;
        self.complete += other.complete;
        self.invitations += other.invitations;
    }

    fn add_score(&mut self, kind: i32, score: i32, count: i64) {
        let slot = match MetricKind::try_from(kind) {
            Ok(MetricKind::Nps) => usize::try_from(score)
                .ok()
                .and_then(|i| self.nps.by_score.get_mut(i)),
            Ok(MetricKind::Csat) => usize::try_from(score - 1)
                .ok()
                .and_then(|i| self.csat.by_score.get_mut(i)),
            Ok(MetricKind::Ces) => usize::try_from(score - 1)
                .ok()
                .and_then(|i| self.ces.by_score.get_mut(i)),
            _ => None,
        };
        // A score outside its scale was refused when answered; none is counted if one appears.
        if let Some(slot) = slot {
            *slot += count;
        }
    }
}

/// Tallies by group key (see `BreakdownGroup.key`) and period index.
pub(crate) type Tallies = BTreeMap<(String, usize), Tally>;

/// What to count and how to group it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query<'a> {
    pub tenant: &'a str,
    pub filter: &'a Filter,
    /// Group by this dimension; everything in one group (key "") when `None`.
    pub dimension: Option<MetricDimension>,
    /// Split into these periods (ordered, contiguous, covering the window); one period (index
    /// 0) when `None` or when there is only one.
    pub periods: Option<&'a [Period]>,
    /// Count only answers of this kind, and no responses or invitations: what drivers need.
    pub only_kind: Option<MetricKind>,
}

/// The tallies of `query`. The whole UTC days of the window come from the daily counts when
/// the query asks nothing they do not keep; the rest is counted from the rows.
pub(crate) async fn tallies<C: ConnectionTrait>(
    db: &C,
    query: Query<'_>,
) -> Result<Tallies, Error> {
    let Some(days) = whole_days(&query) else {
        return count_rows(db, query).await;
    };
    let filter = query.filter;
    let before = Filter {
        end_us: days.start,
        ..filter.clone()
    };
    let after = Filter {
        start_us: days.end,
        ..filter.clone()
    };
    let (mut tallies, before, after) = futures::try_join!(
        read_daily_counts(db, &query, &days),
        count_edge(db, query, &before),
        count_edge(db, query, &after),
    )?;
    for (group, tally) in before.into_iter().chain(after) {
        tallies.entry(group).or_default().add(&tally);
    }
    Ok(tallies)
}

/// The tallies of `query` over the part `edge` of its window, counted from the rows.
async fn count_edge<C: ConnectionTrait>(
    db: &C,
    query: Query<'_>,
    edge: &Filter,
) -> Result<Tallies, Error> {
    if edge.start_us >= edge.end_us {
        return Ok(Tallies::new());
    }
    count_rows(
        db,
        Query {
            filter: edge,
            ..query
        },
    )
    .await
}

/// The whole UTC days `[start, end)` of the query's window that the daily counts can answer
/// for: none when it filters or groups by what they do not keep (touchpoint, journey, segment)
/// or splits into periods that do not start at midnight UTC.
fn whole_days(query: &Query<'_>) -> Option<std::ops::Range<i64>> {
    let filter = query.filter;
    if filter.touchpoint.is_some() || filter.journey.is_some() || filter.segment.is_some() {
        return None;
    }
    if !matches!(query.dimension, None | Some(MetricDimension::Channel)) {
        return None;
    }
    if let Some(periods) = query.periods
        && periods.len() > 1
        && periods
            .iter()
            .skip(1)
            .any(|p| day_of(p.start_us) != p.start_us)
    {
        return None;
    }
    let start = day_of(filter.start_us + DAY_US - 1);
    let end = day_of(filter.end_us);
    (start < end).then_some(start..end)
}

/// The tallies of `days` from the daily counts and the changes not yet folded into them.
async fn read_daily_counts<C: ConnectionTrait>(
    db: &C,
    query: &Query<'_>,
    days: &std::ops::Range<i64>,
) -> Result<Tallies, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    let mut grouped = Vec::new();
    sql.push("SELECT ");
    push_group_columns(&mut sql, query, "s.day_us", &mut grouped);
    sql.push(&format!(
        "s.kind, s.score, CAST(SUM(s.n) AS BIGINT) AS n FROM \
         (SELECT {COLUMNS} FROM feedback_daily_counts \
         UNION ALL SELECT {COLUMNS} FROM feedback_count_changes) s WHERE s.tenant = "
    ))
    .bind(query.tenant);
    let filter = query.filter;
    if !filter.surveys.is_empty() {
        sql.push(" AND s.survey_id IN ")
            .bind_list(filter.surveys.iter().map(String::as_str));
    }
    sql.push(" AND s.day_us >= ")
        .bind(days.start)
        .push(" AND s.day_us < ")
        .bind(days.end);
    if !filter.channels.is_empty() {
        sql.push(" AND s.channel IN ")
            .bind_list(filter.channels.iter().copied());
    }
    if let Some(kind) = query.only_kind {
        sql.push(" AND s.kind = ").bind(kind as i32);
    }
    grouped.extend(["s.kind", "s.score"]);
    sql.push(" GROUP BY ").push(&grouped.join(", "));
    let mut tallies = Tallies::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let tally = tallies.entry(group(query, &row)?).or_default();
        let kind: i32 = row.try_get("", "kind")?;
        let score: i32 = row.try_get("", "score")?;
        let n: i64 = row.try_get("", "n")?;
        match kind {
            RESPONSES => {
                tally.responses += n;
                if score == 1 {
                    tally.complete += n;
                }
            }
            INVITATIONS => tally.invitations += n,
            kind => tally.add_score(kind, score, n),
        }
    }
    Ok(tallies)
}

/// The tallies of `query` counted from the rows, the three aggregates read concurrently.
async fn count_rows<C: ConnectionTrait>(db: &C, query: Query<'_>) -> Result<Tallies, Error> {
    let mut tallies = Tallies::new();
    if query.only_kind.is_some() {
        read_scores(db, &query, &mut tallies).await?;
        return Ok(tallies);
    }
    let backend = db.get_database_backend();
    let (scores, responses, invitations) = futures::try_join!(
        db.query_all_raw(statement(backend, &query, Table::Scores)),
        db.query_all_raw(statement(backend, &query, Table::Responses)),
        db.query_all_raw(statement(backend, &query, Table::Invitations)),
    )?;
    for row in scores {
        let tally = tallies.entry(group(&query, &row)?).or_default();
        tally.add_score(
            row.try_get("", "kind")?,
            row.try_get("", "score")?,
            row.try_get("", "n")?,
        );
    }
    for row in responses {
        let tally = tallies.entry(group(&query, &row)?).or_default();
        tally.responses += row.try_get::<i64>("", "n")?;
        tally.complete += row.try_get::<Option<i64>>("", "c")?.unwrap_or(0);
    }
    for row in invitations {
        tallies.entry(group(&query, &row)?).or_default().invitations +=
            row.try_get::<i64>("", "n")?;
    }
    Ok(tallies)
}

async fn read_scores<C: ConnectionTrait>(
    db: &C,
    query: &Query<'_>,
    tallies: &mut Tallies,
) -> Result<(), Error> {
    let rows = db
        .query_all_raw(statement(db.get_database_backend(), query, Table::Scores))
        .await?;
    for row in rows {
        let tally = tallies.entry(group(query, &row)?).or_default();
        tally.add_score(
            row.try_get("", "kind")?,
            row.try_get("", "score")?,
            row.try_get("", "n")?,
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Scores,
    Responses,
    Invitations,
}

fn statement(backend: sea_orm::DbBackend, query: &Query<'_>, table: Table) -> sea_orm::Statement {
    let mut sql = Sql::new(backend);
    let mut grouped = Vec::new();
    sql.push("SELECT ");
    push_group_columns(&mut sql, query, "s.create_us", &mut grouped);
    let from = match table {
        Table::Scores => {
            sql.push("s.kind, s.score, COUNT(*) AS n");
            grouped.extend(["s.kind", "s.score"]);
            "feedback_scores"
        }
        Table::Responses => {
            sql.push("COUNT(*) AS n, SUM(s.complete) AS c");
            "feedback_responses"
        }
        Table::Invitations => {
            sql.push("COUNT(*) AS n");
            "feedback_invitations"
        }
    };
    sql.push(&format!(" FROM {from} s"));
    if query.dimension == Some(MetricDimension::Segment) {
        // A response counts in each segment its customer was in when they responded, and
        // under the empty key when in none.
        sql.push(
            " LEFT JOIN feedback_segment_members m ON m.tenant = s.tenant \
             AND m.profile = s.profile AND s.profile <> '' AND m.enter_us <= s.create_us \
             AND (m.exit_us IS NULL OR m.exit_us > s.create_us)",
        );
    }
    sql.push(" WHERE s.tenant = ").bind(query.tenant);
    match table {
        Table::Scores => {
            if let Some(kind) = query.only_kind {
                sql.push(" AND s.kind = ").bind(kind as i32);
            }
        }
        Table::Invitations => {
            sql.push(" AND s.state NOT IN ").bind_list([
                InvitationState::Throttled as i32,
                InvitationState::Suppressed as i32,
            ]);
        }
        Table::Responses => {}
    }
    query.filter.push_conditions(&mut sql, "s");
    if !grouped.is_empty() {
        sql.push(" GROUP BY ").push(&grouped.join(", "));
    }
    sql.statement()
}

/// Writes the group key `k` and the period `p` (of the time in `time_column`), each followed by
/// a comma, and adds those grouped by to `grouped`.
fn push_group_columns(
    sql: &mut Sql,
    query: &Query<'_>,
    time_column: &str,
    grouped: &mut Vec<&'static str>,
) {
    match query.dimension {
        Some(dimension) => {
            sql.push(key_expression(dimension)).push(" AS k, ");
            grouped.push("k");
        }
        None => {
            sql.push("'' AS k, ");
        }
    }
    match query.periods {
        Some(periods) if periods.len() > 1 => {
            sql.push(&period_expression(periods, time_column))
                .push(" AS p, ");
            grouped.push("p");
        }
        _ => {
            sql.push("CAST(0 AS BIGINT) AS p, ");
        }
    }
}

/// The SQL of a group key; text on both databases.
fn key_expression(dimension: MetricDimension) -> &'static str {
    match dimension {
        MetricDimension::Channel => "CAST(s.channel AS TEXT)",
        MetricDimension::Touchpoint => "s.touchpoint",
        MetricDimension::Journey => "s.journey",
        MetricDimension::JourneyNode => {
            "CASE WHEN s.journey_node = '' THEN '' ELSE s.journey || '#' || s.journey_node END"
        }
        MetricDimension::Segment => "COALESCE(m.segment, '')",
        MetricDimension::Unspecified => "''",
    }
}

/// The index of the period `time_column` falls in. The filter keeps answers inside the window,
/// which the periods cover, so the last period takes everything past the second-to-last end.
/// The bounds are integers computed here, written as literals.
fn period_expression(periods: &[Period], time_column: &str) -> String {
    let mut expression = String::from("CAST(CASE");
    for (index, period) in periods.iter().enumerate().take(periods.len() - 1) {
        expression.push_str(&format!(
            " WHEN {time_column} < {} THEN {index}",
            period.end_us
        ));
    }
    expression.push_str(&format!(" ELSE {} END AS BIGINT)", periods.len() - 1));
    expression
}

/// The group key and period of a row, the key as `BreakdownGroup.key` has it.
fn group(query: &Query<'_>, row: &sea_orm::QueryResult) -> Result<(String, usize), Error> {
    let key: String = row.try_get("", "k")?;
    let key = match query.dimension {
        Some(MetricDimension::Channel) => channel_key(key.parse().unwrap_or(0)),
        _ => key,
    };
    let period: i64 = row.try_get("", "p")?;
    Ok((key, usize::try_from(period).unwrap_or(0)))
}

/// `CHANNEL_SMS` for an SMS channel; empty for an unset one.
fn channel_key(channel: i32) -> String {
    match Channel::try_from(channel) {
        Ok(Channel::Unspecified) | Err(_) => String::new(),
        Ok(channel) => channel.as_str_name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(start_us: i64, end_us: i64) -> Filter {
        Filter {
            surveys: Vec::new(),
            start_us,
            end_us,
            channels: Vec::new(),
            touchpoint: None,
            journey: None,
            segment: None,
            min_sample_size: 30,
        }
    }

    fn query(filter: &Filter) -> Query<'_> {
        Query {
            tenant: "acme",
            filter,
            dimension: Some(MetricDimension::Channel),
            periods: None,
            only_kind: None,
        }
    }

    #[test]
    fn whole_days_are_those_inside_the_window() {
        let day = DAY_US;
        let aligned = filter(10 * day, 20 * day);
        assert_eq!(whole_days(&query(&aligned)), Some(10 * day..20 * day));
        let ragged = filter(10 * day + 1, 20 * day - 1);
        assert_eq!(whole_days(&query(&ragged)), Some(11 * day..19 * day));
        let short = filter(10 * day + 1, 11 * day + 5);
        assert_eq!(whole_days(&query(&short)), None);
    }

    #[test]
    fn what_daily_counts_do_not_keep_is_counted_from_the_rows() {
        let day = DAY_US;
        let by_touchpoint = Filter {
            touchpoint: Some("checkout".into()),
            ..filter(0, 30 * day)
        };
        assert_eq!(whole_days(&query(&by_touchpoint)), None);
        let plain = filter(0, 30 * day);
        let by_journey = Query {
            dimension: Some(MetricDimension::Journey),
            ..query(&plain)
        };
        assert_eq!(whole_days(&by_journey), None);
        // Periods cut at midnight in New York do not fall on UTC days; at midnight UTC they do.
        let periods = |offset: i64| {
            (0..3)
                .map(|i| Period {
                    start_us: i * 10 * day + offset,
                    end_us: (i + 1) * 10 * day + offset,
                })
                .collect::<Vec<_>>()
        };
        let zoned = periods(5 * 3_600_000_000);
        let query_zoned = Query {
            periods: Some(&zoned),
            ..query(&plain)
        };
        assert_eq!(whole_days(&query_zoned), None);
        let utc = periods(0);
        let query_utc = Query {
            periods: Some(&utc),
            ..query(&plain)
        };
        assert_eq!(whole_days(&query_utc), Some(0..30 * day));
    }
}
