//! Journey statistics: entered, active and exited by reason, per node what happened there, the
//! conversions of the treatment and holdout groups, and the uplift with its confidence
//! interval. Everything is counted by the database; no instance row reaches Rust.

use std::collections::{BTreeMap, HashMap};

use sea_orm::ConnectionTrait;
use throughline_proto::common::v1::ConfidenceInterval;
use throughline_proto::orchestration::v1::{GroupStats, JourneyStats, NodeStats};
use throughline_runtime::Error;
use throughline_runtime::proportion;
use throughline_runtime::sql::Sql;

use crate::store::instances::state;
use crate::store::{INSTANCES, STEPS};

/// Which instances the figures cover.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub tenant: String,
    pub journey: String,
    /// 0 for every version.
    pub version: i32,
    /// Entered at or after, and before (microseconds).
    pub entered_from_us: Option<i64>,
    pub entered_until_us: Option<i64>,
}

impl Scope {
    /// `WHERE` conditions on the instances, aliased `i`.
    fn filter(&self, sql: &mut Sql) {
        sql.push(" WHERE i.tenant = ")
            .bind(self.tenant.as_str())
            .push(" AND i.journey = ")
            .bind(self.journey.as_str());
        if self.version > 0 {
            sql.push(" AND i.version = ").bind(self.version);
        }
        if let Some(from) = self.entered_from_us {
            sql.push(" AND i.start_us >= ").bind(from);
        }
        if let Some(until) = self.entered_until_us {
            sql.push(" AND i.start_us < ").bind(until);
        }
    }
}

/// The figures of the instances in `scope`, with one `NodeStats` per node of `node_order`
/// (the definition order) and after them any other node instances passed.
pub(crate) async fn journey_stats(
    db: &impl ConnectionTrait,
    scope: &Scope,
    node_order: &[String],
) -> Result<JourneyStats, Error> {
    let mut stats = JourneyStats {
        journey: format!("journeys/{}", scope.journey),
        version: scope.version,
        ..JourneyStats::default()
    };
    let (treatment, holdout) = groups(db, scope, &mut stats).await?;
    if holdout.entered > 0 && treatment.entered > 0 {
        let (uplift, lower, upper) = proportion::difference(
            treatment.conversions,
            treatment.entered,
            holdout.conversions,
            holdout.entered,
        );
        stats.uplift = Some(uplift);
        stats.uplift_interval = Some(ConfidenceInterval {
            lower,
            upper,
            level: proportion::LEVEL,
        });
    }
    stats.treatment = Some(treatment);
    stats.holdout = Some(holdout);
    stats.nodes = nodes(db, scope, node_order).await?;
    Ok(stats)
}

/// Entered, active and exits of every instance into `stats`; the two groups' conversions.
async fn groups(
    db: &impl ConnectionTrait,
    scope: &Scope,
    stats: &mut JourneyStats,
) -> Result<(GroupStats, GroupStats), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT i.holdout, i.state, i.exit_reason, COUNT(*), \
         CAST(SUM(i.converted) AS BIGINT) FROM {INSTANCES} i"
    ));
    scope.filter(&mut sql);
    sql.push(" GROUP BY i.holdout, i.state, i.exit_reason");
    let (mut treatment, mut holdout) = (GroupStats::default(), GroupStats::default());
    for row in db.query_all_raw(sql.statement()).await? {
        let in_holdout: i32 = row.try_get_by_index(0)?;
        let instance_state: i32 = row.try_get_by_index(1)?;
        let reason: String = row.try_get_by_index(2)?;
        let count: i64 = row.try_get_by_index(3)?;
        let conversions: i64 = row.try_get_by_index(4)?;
        stats.entered += count;
        if state::is_active(instance_state) {
            stats.active += count;
        } else {
            *stats.exits_by_reason.entry(reason).or_default() += count;
        }
        let group = if in_holdout != 0 {
            &mut holdout
        } else {
            &mut treatment
        };
        group.entered += count;
        group.conversions += conversions;
    }
    for group in [&mut treatment, &mut holdout] {
        if group.entered > 0 {
            group.conversion_rate = group.conversions as f64 / group.entered as f64;
        }
    }
    Ok((treatment, holdout))
}

/// Per node, of the treatment group only (the holdout passes no node): instances that reached
/// it, are there now, went on from it or ended at it, their outcomes, and how many converted.
/// A goal ends an instance, so every node a converted instance reached came before its
/// conversion.
async fn nodes(
    db: &impl ConnectionTrait,
    scope: &Scope,
    node_order: &[String],
) -> Result<Vec<NodeStats>, Error> {
    let mut by_node: HashMap<String, NodeStats> = HashMap::new();
    let backend = db.get_database_backend();
    let steps =
        format!("FROM {STEPS} s JOIN {INSTANCES} i ON i.tenant = s.tenant AND i.id = s.instance");

    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT s.node_id, COUNT(DISTINCT s.instance), \
         COUNT(DISTINCT CASE WHEN s.seq < i.step_count - 1 THEN s.instance END), \
         COUNT(DISTINCT CASE WHEN i.converted = 1 THEN s.instance END) {steps}"
    ));
    scope.filter(&mut sql);
    sql.push(" AND i.holdout = 0 GROUP BY s.node_id");
    for row in db.query_all_raw(sql.statement()).await? {
        let stats = node(&mut by_node, row.try_get_by_index(0)?);
        stats.entered = row.try_get_by_index(1)?;
        stats.completed = row.try_get_by_index(2)?;
        stats.conversions = row.try_get_by_index(3)?;
    }

    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT s.node_id, s.outcome, COUNT(DISTINCT s.instance) {steps}"
    ));
    scope.filter(&mut sql);
    sql.push(" AND i.holdout = 0 AND s.outcome <> '' GROUP BY s.node_id, s.outcome");
    for row in db.query_all_raw(sql.statement()).await? {
        let outcome: String = row.try_get_by_index(1)?;
        node(&mut by_node, row.try_get_by_index(0)?)
            .outcomes
            .insert(outcome, row.try_get_by_index(2)?);
    }

    // An instance keeps the node it is at, or ended at.
    let mut sql = Sql::new(backend);
    sql.push(&format!(
        "SELECT i.node, i.state, i.exit_reason, COUNT(*) FROM {INSTANCES} i"
    ));
    scope.filter(&mut sql);
    sql.push(" AND i.holdout = 0 AND i.node <> '' GROUP BY i.node, i.state, i.exit_reason");
    for row in db.query_all_raw(sql.statement()).await? {
        let instance_state: i32 = row.try_get_by_index(1)?;
        let reason: String = row.try_get_by_index(2)?;
        let count: i64 = row.try_get_by_index(3)?;
        let stats = node(&mut by_node, row.try_get_by_index(0)?);
        if state::is_active(instance_state) {
            stats.waiting += count;
        } else {
            *stats.exits_by_reason.entry(reason).or_default() += count;
        }
    }
    Ok(in_order(by_node, node_order))
}

fn node(by_node: &mut HashMap<String, NodeStats>, id: String) -> &mut NodeStats {
    by_node.entry(id.clone()).or_insert_with(|| NodeStats {
        node_id: id,
        ..NodeStats::default()
    })
}

/// The nodes of `order` first, in that order, even those no instance reached; then the rest by
/// id.
fn in_order(mut by_node: HashMap<String, NodeStats>, order: &[String]) -> Vec<NodeStats> {
    let mut nodes: Vec<NodeStats> = order
        .iter()
        .map(|id| {
            by_node.remove(id).unwrap_or_else(|| NodeStats {
                node_id: id.clone(),
                ..NodeStats::default()
            })
        })
        .collect();
    let rest: BTreeMap<String, NodeStats> = by_node.into_iter().collect();
    nodes.extend(rest.into_values());
    nodes
}
