//! `MetricFilter`, checked once and applied to any table that carries a response's survey,
//! context, profile and creation time (`feedback_scores`, `feedback_texts`,
//! `feedback_responses`): what GetMetrics, GetDriverAnalysis and GetThemes share.

use throughline_proto::feedback::v1::MetricFilter;
use throughline_runtime::request::{channels, resource_id};
use throughline_runtime::sql::Sql;
use throughline_runtime::time::timestamp_us;
use throughline_runtime::{Error, FieldViolation};

/// The most surveys one filter may name.
const MAX_SURVEYS: usize = 100;
const MAX_TOUCHPOINT_LEN: usize = 200;

/// A checked `MetricFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Survey ids; empty means every survey.
    pub surveys: Vec<String>,
    /// Responses created in `[start_us, end_us)`.
    pub start_us: i64,
    pub end_us: i64,
    /// Context channels; empty means all.
    pub channels: Vec<i32>,
    pub touchpoint: Option<String>,
    /// `journeys/{id}` as stored in the context.
    pub journey: Option<String>,
    /// `segments/{id}`.
    pub segment: Option<String>,
    pub min_sample_size: i64,
}

impl Filter {
    /// Checks `filter` (violations named under `field`, e.g. `filter`); `default_min_sample` is
    /// the configured minimum sample size.
    pub(crate) fn parse(
        filter: Option<&MetricFilter>,
        field: &str,
        default_min_sample: u32,
    ) -> Result<Self, Error> {
        let Some(filter) = filter else {
            return Err(Error::invalid(field, "is required, with a time_range"));
        };
        let mut violations = Vec::new();
        if filter.surveys.len() > MAX_SURVEYS {
            violations.push(FieldViolation::new(
                format!("{field}.surveys"),
                format!("at most {MAX_SURVEYS} surveys"),
            ));
        }
        let mut surveys = Vec::new();
        for (index, name) in filter.surveys.iter().enumerate() {
            match resource_id(name, "surveys", &format!("{field}.surveys[{index}]")) {
                Ok(id) => surveys.push(id.to_owned()),
                Err(Error::InvalidArgument(found)) => violations.extend(found),
                Err(other) => return Err(other),
            }
        }
        let range = filter.time_range.as_ref();
        let start_us = range
            .and_then(|r| r.start_time.as_ref())
            .and_then(timestamp_us);
        let end_us = range
            .and_then(|r| r.end_time.as_ref())
            .and_then(timestamp_us);
        let (start_us, end_us) = match (start_us, end_us) {
            (Some(start), Some(end)) if start < end => (start, end),
            (Some(_), Some(_)) => {
                violations.push(FieldViolation::new(
                    format!("{field}.time_range"),
                    "end_time must be after start_time",
                ));
                (0, 0)
            }
            _ => {
                violations.push(FieldViolation::new(
                    format!("{field}.time_range"),
                    "is required, with a start_time and an end_time after the Unix epoch",
                ));
                (0, 0)
            }
        };
        let channels = match channels(&filter.channels, &format!("{field}.channels")) {
            Ok(channels) => channels,
            Err(Error::InvalidArgument(found)) => {
                violations.extend(found);
                Vec::new()
            }
            Err(other) => return Err(other),
        };
        if filter.touchpoint.len() > MAX_TOUCHPOINT_LEN {
            violations.push(FieldViolation::new(
                format!("{field}.touchpoint"),
                format!("at most {MAX_TOUCHPOINT_LEN} characters"),
            ));
        }
        for (value, collection, name) in [
            (&filter.journey, "journeys", "journey"),
            (&filter.segment, "segments", "segment"),
        ] {
            if !value.is_empty() {
                let path = format!("{field}.{name}");
                if let Err(Error::InvalidArgument(found)) = resource_id(value, collection, &path) {
                    violations.extend(found);
                }
            }
        }
        if filter.min_sample_size < 0 {
            violations.push(FieldViolation::new(
                format!("{field}.min_sample_size"),
                "must not be negative",
            ));
        }
        Error::unless_valid(violations)?;
        let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        Ok(Self {
            surveys,
            start_us,
            end_us,
            channels,
            touchpoint: non_empty(&filter.touchpoint),
            journey: non_empty(&filter.journey),
            segment: non_empty(&filter.segment),
            min_sample_size: match filter.min_sample_size {
                0 => i64::from(default_min_sample),
                size => i64::from(size),
            },
        })
    }

    /// Appends ` AND …` for every condition to a statement over `table AS alias` whose
    /// tenant is already bound, e.g. `SELECT … FROM feedback_scores s WHERE s.tenant = $1`.
    pub(crate) fn push_conditions(&self, sql: &mut Sql, alias: &str) {
        if !self.surveys.is_empty() {
            sql.push(&format!(" AND {alias}.survey_id IN "))
                .bind_list(self.surveys.iter().map(String::as_str));
        }
        sql.push(&format!(" AND {alias}.create_us >= "))
            .bind(self.start_us)
            .push(&format!(" AND {alias}.create_us < "))
            .bind(self.end_us);
        if !self.channels.is_empty() {
            sql.push(&format!(" AND {alias}.channel IN "))
                .bind_list(self.channels.iter().copied());
        }
        if let Some(touchpoint) = &self.touchpoint {
            sql.push(&format!(" AND {alias}.touchpoint = "))
                .bind(touchpoint.as_str());
        }
        if let Some(journey) = &self.journey {
            sql.push(&format!(" AND {alias}.journey = "))
                .bind(journey.as_str());
        }
        if let Some(segment) = &self.segment {
            // The segments the customer was in when they responded.
            sql.push(&format!(
                " AND EXISTS (SELECT 1 FROM feedback_segment_members m \
                 WHERE m.tenant = {alias}.tenant AND m.profile = {alias}.profile \
                 AND m.segment = "
            ))
            .bind(segment.as_str())
            .push(&format!(
                " AND m.enter_us <= {alias}.create_us \
                 AND (m.exit_us IS NULL OR m.exit_us > {alias}.create_us))"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use throughline_proto::google::r#type::Interval;
    use throughline_runtime::time::timestamp;

    fn filter(start: i64, end: i64) -> MetricFilter {
        MetricFilter {
            time_range: Some(Interval {
                start_time: Some(timestamp(start)),
                end_time: Some(timestamp(end)),
            }),
            ..MetricFilter::default()
        }
    }

    fn fields(error: Error) -> Vec<String> {
        match error {
            Error::InvalidArgument(violations) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_window_is_required_and_ordered() {
        assert_eq!(
            fields(Filter::parse(None, "filter", 30).unwrap_err()),
            ["filter"]
        );
        assert_eq!(
            fields(Filter::parse(Some(&filter(5, 5)), "filter", 30).unwrap_err()),
            ["filter.time_range"]
        );
        let parsed = Filter::parse(Some(&filter(1, 9)), "filter", 30).unwrap();
        assert_eq!(
            (parsed.start_us, parsed.end_us, parsed.min_sample_size),
            (1, 9, 30)
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut bad = filter(1, 9);
        bad.surveys = vec!["surveys/ok".into(), "nps".into()];
        bad.channels = vec![1, 999];
        bad.journey = "cart".into();
        bad.segment = "segments/Not Valid".into();
        bad.min_sample_size = -1;
        assert_eq!(
            fields(Filter::parse(Some(&bad), "filter", 30).unwrap_err()),
            [
                "filter.surveys[1]",
                "filter.channels[1]",
                "filter.journey",
                "filter.segment",
                "filter.min_sample_size"
            ]
        );
    }
}
