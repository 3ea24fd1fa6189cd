//! Local wall-clock windows in a customer's time zone: when quiet hours that an instant falls
//! in end, and when the next moment inside a window begins. Shared by the distribution
//! service's quiet hours and the orchestration service's waits and journey policies.

use chrono::{DateTime, Datelike, Days, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use throughline_proto::common::v1::LocalTimeWindow;
use throughline_proto::google::r#type::TimeOfDay;

fn local_time(time: Option<&TimeOfDay>) -> NaiveTime {
    time.and_then(|t| {
        NaiveTime::from_hms_opt(
            u32::try_from(t.hours).ok()?,
            u32::try_from(t.minutes).ok()?,
            u32::try_from(t.seconds).ok()?,
        )
    })
    .unwrap_or(NaiveTime::MIN)
}

/// The UTC instant of a local wall-clock time; in a daylight-saving gap, the first instant
/// after it.
pub fn to_utc(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..4 {
        if let Some(time) = zone.from_local_datetime(&probe).earliest() {
            return time.with_timezone(&Utc);
        }
        probe += chrono::Duration::minutes(30);
    }
    zone.from_utc_datetime(&local).with_timezone(&Utc)
}

/// When the quiet hours that `at` falls in end, or `None` when `at` is outside them. A window
/// whose end is not after its start spans midnight; `days` are the days it starts on.
pub fn quiet_hours_end(
    window: &LocalTimeWindow,
    zone: Tz,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let start_time = local_time(window.start_time.as_ref());
    let end_time = local_time(window.end_time.as_ref());
    if start_time == end_time {
        return None;
    }
    let local = at.with_timezone(&zone).naive_local();
    let today = local.date();
    // A window that started yesterday may still run (overnight), and one that starts today.
    for start_day in [today.checked_sub_days(Days::new(1))?, today] {
        let starts_on_day = window.days.is_empty()
            || window
                .days
                .contains(&(start_day.weekday().number_from_monday() as i32));
        if !starts_on_day {
            continue;
        }
        let start = start_day.and_time(start_time);
        let end_day = if end_time > start_time {
            start_day
        } else {
            start_day.checked_add_days(Days::new(1))?
        };
        let end = end_day.and_time(end_time);
        if start <= local && local < end {
            return Some(to_utc(zone, end));
        }
    }
    None
}

/// The first instant at or after `at` that lies inside `window` in `zone`: `at` itself when it
/// is inside already. `None` for an empty window (start equal to end).
pub fn next_inside(window: &LocalTimeWindow, zone: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if quiet_hours_end(window, zone, at).is_some() {
        return Some(at);
    }
    let start_time = local_time(window.start_time.as_ref());
    if start_time == local_time(window.end_time.as_ref()) {
        return None;
    }
    let today = at.with_timezone(&zone).date_naive();
    // The window starts at most a week ahead (it names at least one day of the week).
    (0..=7u64)
        .filter_map(|ahead| today.checked_add_days(Days::new(ahead)))
        .filter(|day| starts_on(window, *day))
        .map(|day| to_utc(zone, day.and_time(start_time)))
        .find(|start| *start > at)
}

fn starts_on(window: &LocalTimeWindow, day: chrono::NaiveDate) -> bool {
    window.days.is_empty()
        || window
            .days
            .contains(&(day.weekday().number_from_monday() as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: i32, end: i32, days: Vec<i32>) -> LocalTimeWindow {
        LocalTimeWindow {
            start_time: Some(TimeOfDay {
                hours: start,
                ..TimeOfDay::default()
            }),
            end_time: Some(TimeOfDay {
                hours: end,
                ..TimeOfDay::default()
            }),
            days,
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn overnight_quiet_hours_end_the_next_local_morning() {
        let zone: Tz = "Europe/Paris".parse().unwrap_or(Tz::UTC);
        let quiet = window(21, 8, vec![]);
        // 22:30 in Paris (UTC+1 in January) → 08:00 the next day, 07:00 UTC.
        assert_eq!(
            quiet_hours_end(&quiet, zone, utc("2026-01-14T21:30:00Z")),
            Some(utc("2026-01-15T07:00:00Z"))
        );
        // 03:00 local, in the window that started yesterday.
        assert_eq!(
            quiet_hours_end(&quiet, zone, utc("2026-01-15T02:00:00Z")),
            Some(utc("2026-01-15T07:00:00Z"))
        );
        // 12:00 local is outside.
        assert_eq!(
            quiet_hours_end(&quiet, zone, utc("2026-01-15T11:00:00Z")),
            None
        );
    }

    #[test]
    fn quiet_hours_apply_only_on_their_days() {
        let zone = Tz::UTC;
        // Saturday (6) and Sunday (7), all day from 00:00 to 23:00.
        let weekend = window(0, 23, vec![6, 7]);
        // 2026-01-17 is a Saturday.
        assert!(quiet_hours_end(&weekend, zone, utc("2026-01-17T10:00:00Z")).is_some());
        assert!(quiet_hours_end(&weekend, zone, utc("2026-01-16T10:00:00Z")).is_none());
    }

    #[test]
    fn the_next_moment_inside_a_daytime_window() {
        let zone: Tz = "Europe/Paris".parse().unwrap_or(Tz::UTC);
        let daytime = window(9, 18, vec![]);
        // 22:30 in Paris → 09:00 the next day, 08:00 UTC.
        assert_eq!(
            next_inside(&daytime, zone, utc("2026-01-14T21:30:00Z")),
            Some(utc("2026-01-15T08:00:00Z"))
        );
        // 07:00 local → 09:00 the same day.
        assert_eq!(
            next_inside(&daytime, zone, utc("2026-01-15T06:00:00Z")),
            Some(utc("2026-01-15T08:00:00Z"))
        );
        // Inside already: now.
        assert_eq!(
            next_inside(&daytime, zone, utc("2026-01-15T10:00:00Z")),
            Some(utc("2026-01-15T10:00:00Z"))
        );
        // Weekdays only: Friday 19:00 UTC → Monday 09:00.
        let weekdays = window(9, 18, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            next_inside(&weekdays, Tz::UTC, utc("2026-01-16T19:00:00Z")),
            Some(utc("2026-01-19T09:00:00Z"))
        );
        assert_eq!(
            next_inside(&window(9, 9, vec![]), Tz::UTC, utc("2026-01-16T19:00:00Z")),
            None
        );
    }
}
