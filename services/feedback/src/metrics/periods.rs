//! Trend periods: the days, ISO weeks or months of an IANA time zone that overlap a window, as
//! UTC microseconds, so SQL can place each answer in its period with integer comparisons.

use chrono::{Datelike, Days, Months, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;
use throughline_proto::feedback::v1::TrendGranularity;

/// A trend longer than this many periods is refused: a day-by-day trend over 10 years.
pub(crate) const MAX_PERIODS: usize = 3_700;

/// One period, `[start_us, end_us)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Period {
    pub start_us: i64,
    pub end_us: i64,
}

/// The periods overlapping `[start_us, end_us)`, oldest first, whole (the first may start
/// before the window and the last end after it); `None` when there would be more than
/// [`MAX_PERIODS`].
pub(crate) fn periods(
    granularity: TrendGranularity,
    zone: Tz,
    start_us: i64,
    end_us: i64,
) -> Option<Vec<Period>> {
    let first = zone.timestamp_micros(start_us).single()?.date_naive();
    let mut date = period_start(granularity, first);
    let mut periods = Vec::new();
    let mut start = local_midnight(zone, date)?;
    while start < end_us {
        let next = next_period(granularity, date)?;
        let end = local_midnight(zone, next)?;
        if end > start_us {
            periods.push(Period {
                start_us: start,
                end_us: end,
            });
            if periods.len() > MAX_PERIODS {
                return None;
            }
        }
        date = next;
        start = end;
    }
    Some(periods)
}

/// The first day of the period containing `date`.
fn period_start(granularity: TrendGranularity, date: NaiveDate) -> NaiveDate {
    match granularity {
        TrendGranularity::Week => {
            date - Days::new(u64::from(date.weekday().num_days_from_monday()))
        }
        TrendGranularity::Month => date.with_day(1).unwrap_or(date),
        TrendGranularity::Day | TrendGranularity::Unspecified => date,
    }
}

fn next_period(granularity: TrendGranularity, date: NaiveDate) -> Option<NaiveDate> {
    match granularity {
        TrendGranularity::Week => date.checked_add_days(Days::new(7)),
        TrendGranularity::Month => date.checked_add_months(Months::new(1)),
        TrendGranularity::Day | TrendGranularity::Unspecified => {
            date.checked_add_days(Days::new(1))
        }
    }
}

/// When `date` starts in `zone`: its midnight, the earlier one when clocks go back over
/// midnight, or the first minute that exists when they jump over it.
fn local_midnight(zone: Tz, date: NaiveDate) -> Option<i64> {
    let midnight = date.and_time(NaiveTime::MIN);
    (0..=24 * 4)
        .map(|quarter| midnight + chrono::Duration::minutes(15 * quarter))
        .find_map(|local| zone.from_local_datetime(&local).earliest())
        .map(|start| start.timestamp_micros())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn us(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn days_are_cut_at_local_midnight_across_a_clock_change() {
        let zone: Tz = "Europe/Paris".parse().unwrap();
        // Clocks go forward on 2026-03-29: that day lasts 23 hours.
        let days = periods(
            TrendGranularity::Day,
            zone,
            us("2026-03-28T12:00:00Z"),
            us("2026-03-30T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            days,
            [
                Period {
                    start_us: us("2026-03-28T00:00:00+01:00"),
                    end_us: us("2026-03-29T00:00:00+01:00"),
                },
                Period {
                    start_us: us("2026-03-29T00:00:00+01:00"),
                    end_us: us("2026-03-30T00:00:00+02:00"),
                },
                Period {
                    start_us: us("2026-03-30T00:00:00+02:00"),
                    end_us: us("2026-03-31T00:00:00+02:00"),
                },
            ]
        );
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let utc = Tz::UTC;
        // 2026-11-18 is a Wednesday.
        let weeks = periods(
            TrendGranularity::Week,
            utc,
            us("2026-11-18T10:00:00Z"),
            us("2026-11-24T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(weeks.len(), 2);
        assert_eq!(weeks[0].start_us, us("2026-11-16T00:00:00Z"));
        assert_eq!(weeks[1].end_us, us("2026-11-30T00:00:00Z"));
        let months = periods(
            TrendGranularity::Month,
            utc,
            us("2026-01-31T10:00:00Z"),
            us("2026-03-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            months
                .iter()
                .map(|m| (m.start_us, m.end_us))
                .collect::<Vec<_>>(),
            [
                (us("2026-01-01T00:00:00Z"), us("2026-02-01T00:00:00Z")),
                (us("2026-02-01T00:00:00Z"), us("2026-03-01T00:00:00Z")),
            ]
        );
    }

    #[test]
    fn too_many_periods_are_refused() {
        assert!(
            periods(
                TrendGranularity::Day,
                Tz::UTC,
                0,
                us("2020-01-01T00:00:00Z")
            )
            .is_none()
        );
    }
}
