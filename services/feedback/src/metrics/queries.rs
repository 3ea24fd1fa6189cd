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

/// The tallies of `query`, the three aggregates read concurrently.
pub(crate) async fn tallies<C: ConnectionTrait>(
    db: &C,
    query: Query<'_>,
) -> Result<Tallies, Error> {
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
            sql.push(&period_expression(periods)).push(" AS p, ");
            grouped.push("p");
        }
        _ => {
            sql.push("CAST(0 AS BIGINT) AS p, ");
        }
    }
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

/// The index of the period `s.create_us` falls in. The filter keeps answers inside the window,
/// which the periods cover, so the last period takes everything past the second-to-last end.
/// The bounds are integers computed here, written as literals.
fn period_expression(periods: &[Period]) -> String {
    let mut expression = String::from("CAST(CASE");
    for (index, period) in periods.iter().enumerate().take(periods.len() - 1) {
        expression.push_str(&format!(
            " WHEN s.create_us < {} THEN {index}",
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
