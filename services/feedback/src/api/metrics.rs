//! Metric RPCs: GetMetrics and GetDriverAnalysis.

use std::str::FromStr;

use chrono_tz::Tz;
use throughline_proto::feedback::v1::*;
use throughline_runtime::{Error, FieldViolation};

use super::Api;
use crate::filter::Filter;
use crate::metrics::{self, periods};

/// Drivers returned when the request does not say, and the most it may ask for.
const DEFAULT_DRIVERS: usize = 20;
const MAX_DRIVERS: i32 = 100;

/// The dimensions drivers are looked for in when the request names none.
const DEFAULT_DRIVER_DIMENSIONS: [MetricDimension; 3] = [
    MetricDimension::Channel,
    MetricDimension::Touchpoint,
    MetricDimension::JourneyNode,
];

impl Api {
    pub(super) async fn get_metrics(
        &self,
        tenant: &str,
        request: GetMetricsRequest,
    ) -> Result<GetMetricsResponse, Error> {
        let filter = Filter::parse(
            request.filter.as_ref(),
            "filter",
            self.service.options.min_sample_size,
        );
        let mut violations = Vec::new();
        let granularity = match TrendGranularity::try_from(request.trend_granularity) {
            Ok(TrendGranularity::Unspecified) => None,
            Ok(granularity) => Some(granularity),
            Err(_) => {
                violations.push(FieldViolation::new(
                    "trend_granularity",
                    "is not a TrendGranularity",
                ));
                None
            }
        };
        let zone = if request.time_zone.is_empty() {
            Some(Tz::UTC)
        } else {
            Tz::from_str(&request.time_zone).ok()
        };
        if zone.is_none() {
            violations.push(FieldViolation::new(
                "time_zone",
                "is not an IANA time zone, for example \"Europe/Paris\"",
            ));
        }
        let breakdown = dimension(request.breakdown, "breakdown", &mut violations);
        let filter = merge(filter, violations)?;

        let periods = match (granularity, zone) {
            (Some(granularity), Some(zone)) => Some(
                periods::periods(granularity, zone, filter.start_us, filter.end_us).ok_or_else(
                    || {
                        Error::invalid(
                            "trend_granularity",
                            format!(
                                "the time range holds more than {} periods of it",
                                periods::MAX_PERIODS
                            ),
                        )
                    },
                )?,
            ),
            _ => None,
        };
        let found = metrics::metrics(
            &self.service.db,
            tenant,
            &filter,
            periods.as_deref(),
            breakdown,
        )
        .await?;
        Ok(GetMetricsResponse {
            overall: Some(found.overall),
            trend: found.trend,
            breakdown: found.breakdown,
        })
    }

    pub(super) async fn get_driver_analysis(
        &self,
        tenant: &str,
        request: GetDriverAnalysisRequest,
    ) -> Result<GetDriverAnalysisResponse, Error> {
        let filter = Filter::parse(
            request.filter.as_ref(),
            "filter",
            self.service.options.min_sample_size,
        );
        let mut violations = Vec::new();
        let kind = match MetricKind::try_from(request.metric) {
            Ok(MetricKind::Unspecified) => MetricKind::Nps,
            Ok(kind) => kind,
            Err(_) => {
                violations.push(FieldViolation::new("metric", "is not a MetricKind"));
                MetricKind::Nps
            }
        };
        let mut dimensions = Vec::new();
        for (index, value) in request.dimensions.iter().enumerate() {
            if let Some(found) = dimension(*value, &format!("dimensions[{index}]"), &mut violations)
            {
                if !dimensions.contains(&found) {
                    dimensions.push(found);
                }
            } else if *value == 0 {
                violations.push(FieldViolation::new(
                    format!("dimensions[{index}]"),
                    "must be set",
                ));
            }
        }
        if dimensions.is_empty() && request.dimensions.is_empty() {
            dimensions.extend(DEFAULT_DRIVER_DIMENSIONS);
        }
        if !(0..=MAX_DRIVERS).contains(&request.limit) {
            violations.push(FieldViolation::new(
                "limit",
                format!("must be between 0 and {MAX_DRIVERS}"),
            ));
        }
        let filter = merge(filter, violations)?;
        let limit = match request.limit {
            0 => DEFAULT_DRIVERS,
            limit => usize::try_from(limit).unwrap_or(DEFAULT_DRIVERS),
        };
        let found =
            metrics::drivers(&self.service.db, tenant, &filter, kind, &dimensions, limit).await?;
        Ok(GetDriverAnalysisResponse {
            baseline_score: found.baseline_score,
            sample_size: found.sample_size,
            drivers: found.drivers,
        })
    }
}

/// A set dimension; `None` when unset, or unknown (a violation named `field`).
fn dimension(
    value: i32,
    field: &str,
    violations: &mut Vec<FieldViolation>,
) -> Option<MetricDimension> {
    match MetricDimension::try_from(value) {
        Ok(MetricDimension::Unspecified) => None,
        Ok(dimension) => Some(dimension),
        Err(_) => {
            violations.push(FieldViolation::new(field, "is not a MetricDimension"));
            None
        }
    }
}

/// The filter when it and the rest of the request are valid; every violation otherwise.
fn merge(
    filter: Result<Filter, Error>,
    mut violations: Vec<FieldViolation>,
) -> Result<Filter, Error> {
    match filter {
        Ok(filter) => {
            Error::unless_valid(violations)?;
            Ok(filter)
        }
        Err(Error::InvalidArgument(mut found)) => {
            found.append(&mut violations);
            Err(Error::InvalidArgument(found))
        }
        Err(other) => Err(other),
    }
}
