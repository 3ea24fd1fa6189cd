//! NPS, CSAT and CES with confidence intervals, counts and response rates, trends, breakdowns
//! and driver analysis, all computed from counts aggregated in SQL.
//!
//! - [`stats`]: the statistics, on counts per score.
//! - [`queries`]: the aggregates, per group key and period.
//! - [`periods`]: trend periods in a time zone.

pub(crate) mod periods;
pub(crate) mod queries;
pub(crate) mod stats;

use sea_orm::ConnectionTrait;
use throughline_proto::common::v1::ConfidenceInterval;
use throughline_proto::feedback::v1::{
    BreakdownGroup, CesMetric, CsatMetric, Driver, MetricDimension, MetricKind, MetricSummary,
    NpsMetric, TrendPoint,
};
use throughline_proto::google::r#type::Interval;
use throughline_runtime::Error;
use throughline_runtime::time::timestamp;

use crate::filter::Filter;
use periods::Period;
use queries::{Query, Tallies, Tally};
use stats::Estimate;

/// The summary of one group's counts.
pub(crate) fn summary(tally: &Tally, min_sample_size: i64) -> MetricSummary {
    let interval = |estimate: &Estimate| ConfidenceInterval {
        lower: estimate.lower,
        upper: estimate.upper,
        level: stats::LEVEL,
    };
    MetricSummary {
        response_count: tally.responses,
        complete_count: tally.complete,
        invitation_count: tally.invitations,
        // Uninvited responses can outnumber invitations; the rate stays a proportion.
        response_rate: if tally.invitations > 0 {
            (tally.responses as f64 / tally.invitations as f64).min(1.0)
        } else {
            0.0
        },
        nps: stats::nps(&tally.nps).map(|nps| NpsMetric {
            score: nps.estimate.value,
            interval: Some(interval(&nps.estimate)),
            promoters: nps.promoters,
            passives: nps.passives,
            detractors: nps.detractors,
            count: nps.count,
        }),
        csat: stats::csat(&tally.csat).map(|csat| CsatMetric {
            score: csat.estimate.value,
            interval: Some(interval(&csat.estimate)),
            satisfied: csat.satisfied,
            count: csat.count,
        }),
        ces: stats::ces(&tally.ces).map(|ces| CesMetric {
            mean: ces.estimate.value,
            interval: Some(interval(&ces.estimate)),
            count: ces.count,
        }),
        small_sample: tally.responses < min_sample_size,
    }
}

/// What GetMetrics computes: the overall summary, a trend and a breakdown.
pub(crate) struct Metrics {
    pub overall: MetricSummary,
    pub trend: Vec<TrendPoint>,
    pub breakdown: Vec<BreakdownGroup>,
}

/// The metrics of `filter` in `tenant`, with a trend over `periods` and a breakdown by
/// `breakdown` when asked.
pub(crate) async fn metrics<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    filter: &Filter,
    periods: Option<&[Period]>,
    breakdown: Option<MetricDimension>,
) -> Result<Metrics, Error> {
    let query = Query {
        tenant,
        filter,
        dimension: None,
        periods: None,
        only_kind: None,
    };
    let grouped = async {
        match breakdown {
            Some(dimension) => queries::tallies(
                db,
                Query {
                    dimension: Some(dimension),
                    ..query
                },
            )
            .await
            .map(Some),
            None => Ok(None),
        }
    };
    let trend = async {
        match periods {
            Some(periods) => queries::tallies(
                db,
                Query {
                    periods: Some(periods),
                    ..query
                },
            )
            .await
            .map(Some),
            None => Ok(None),
        }
    };
    // A breakdown other than by segment partitions the responses: the overall counts are its
    // sum, no second pass over the same rows.
    let partitions = breakdown.is_some() && breakdown != Some(MetricDimension::Segment);
    let overall = async {
        if partitions {
            Ok(None)
        } else {
            queries::tallies(db, query).await.map(Some)
        }
    };
    let (grouped, trend, overall) = futures::try_join!(grouped, trend, overall)?;

    let min = filter.min_sample_size;
    let overall = match (&overall, &grouped) {
        (Some(overall), _) => total(overall),
        (None, Some(grouped)) => total(grouped),
        (None, None) => Tally::default(),
    };
    let mut groups: Vec<(String, Tally)> = grouped
        .unwrap_or_default()
        .into_iter()
        .map(|((key, _), tally)| (key, tally))
        .collect();
    groups.sort_by(|(a_key, a), (b_key, b)| {
        b.responses
            .cmp(&a.responses)
            .then(answers(b).cmp(&answers(a)))
            .then(a_key.cmp(b_key))
    });
    let trend = match (periods, trend) {
        (Some(periods), Some(tallies)) => periods
            .iter()
            .enumerate()
            .map(|(index, period)| TrendPoint {
                period: Some(Interval {
                    start_time: Some(timestamp(period.start_us)),
                    end_time: Some(timestamp(period.end_us)),
                }),
                metrics: Some(summary(
                    &tallies
                        .get(&(String::new(), index))
                        .cloned()
                        .unwrap_or_default(),
                    min,
                )),
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Metrics {
        overall: summary(&overall, min),
        trend,
        breakdown: groups
            .into_iter()
            .map(|(key, tally)| BreakdownGroup {
                key,
                metrics: Some(summary(&tally, min)),
            })
            .collect(),
    })
}

fn total(tallies: &Tallies) -> Tally {
    let mut total = Tally::default();
    for tally in tallies.values() {
        total.add(tally);
    }
    total
}

fn answers(tally: &Tally) -> i64 {
    tally.nps.total() + tally.csat.total() + tally.ces.total()
}

/// The score of `kind` with its variance, and the answers behind it.
fn score(tally: &Tally, kind: MetricKind) -> Option<(Estimate, i64)> {
    match kind {
        MetricKind::Csat => stats::csat(&tally.csat).map(|m| (m.estimate, m.count)),
        MetricKind::Ces => stats::ces(&tally.ces).map(|m| (m.estimate, m.count)),
        MetricKind::Nps | MetricKind::Unspecified => {
            stats::nps(&tally.nps).map(|m| (m.estimate, m.count))
        }
    }
}

/// What GetDriverAnalysis computes.
pub(crate) struct Drivers {
    pub baseline_score: f64,
    pub sample_size: i64,
    pub drivers: Vec<Driver>,
}

/// Every group of each of `dimensions` compared with the rest of `filter` on `kind`, the
/// largest absolute difference first, at most `limit`.
pub(crate) async fn drivers<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    filter: &Filter,
    kind: MetricKind,
    dimensions: &[MetricDimension],
    limit: usize,
) -> Result<Drivers, Error> {
    let query = Query {
        tenant,
        filter,
        dimension: None,
        periods: None,
        only_kind: Some(kind),
    };
    let overall = total(&queries::tallies(db, query).await?);
    let grouped = futures::future::try_join_all(dimensions.iter().map(|dimension| {
        queries::tallies(
            db,
            Query {
                dimension: Some(*dimension),
                ..query
            },
        )
    }))
    .await?;
    let Some((baseline, sample_size)) = score(&overall, kind) else {
        return Ok(Drivers {
            baseline_score: 0.0,
            sample_size: 0,
            drivers: Vec::new(),
        });
    };
    let mut drivers = Vec::new();
    for (dimension, tallies) in dimensions.iter().zip(grouped) {
        for ((key, _), tally) in tallies {
            let rest = Tally {
                nps: overall.nps.minus(&tally.nps),
                csat: overall.csat.minus(&tally.csat),
                ces: overall.ces.minus(&tally.ces),
                ..Tally::default()
            };
            // A group that is everything has nothing to differ from.
            let (Some((group, size)), Some((rest, rest_size))) =
                (score(&tally, kind), score(&rest, kind))
            else {
                continue;
            };
            let student = (kind == MetricKind::Ces).then_some((size, rest_size));
            let difference = stats::difference(&group, &rest, student);
            drivers.push(Driver {
                dimension: *dimension as i32,
                key,
                sample_size: size,
                score: group.value,
                rest_score: rest.value,
                difference: difference.value,
                difference_interval: Some(ConfidenceInterval {
                    lower: difference.lower,
                    upper: difference.upper,
                    level: stats::LEVEL,
                }),
                small_sample: size < filter.min_sample_size,
            });
        }
    }
    drivers.sort_by(|a, b| {
        b.difference
            .abs()
            .total_cmp(&a.difference.abs())
            .then(b.sample_size.cmp(&a.sample_size))
            .then(a.dimension.cmp(&b.dimension))
            .then(a.key.cmp(&b.key))
    });
    drivers.truncate(limit);
    Ok(Drivers {
        baseline_score: baseline.value,
        sample_size,
        drivers,
    })
}
