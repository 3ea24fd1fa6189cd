//! The contact policy's rules, as pure functions of a policy, a customer and a time: whether an
//! unknown consent allows a purpose, and which budget limits a message
//! counts against in which calendar period of the customer's time zone.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use throughline_proto::common::v1::{
    BudgetPeriod, Channel, ConsentStatus, ContactBudget, ContactLimit, Purpose,
};
use throughline_proto::distribution::v1::{ContactPolicy, UnknownConsentRule};
use throughline_runtime::local_time::to_utc;

/// The name of the tenant's policy (a singleton).
pub const POLICY_NAME: &str = "contactPolicy";

/// The policy of a tenant that has set none: service and survey messages may go without a
/// recorded consent, marketing needs a grant; service messages are outside the budget and may
/// bypass quiet hours when the send asks to; no budget and no default quiet hours.
pub fn default_policy() -> ContactPolicy {
    ContactPolicy {
        name: POLICY_NAME.to_owned(),
        default_budget: Some(ContactBudget::default()),
        budget_exempt_purposes: vec![Purpose::Service as i32],
        default_quiet_hours: None,
        quiet_hours_bypass_purposes: vec![Purpose::Service as i32],
        unknown_consent_rules: vec![
            UnknownConsentRule {
                purpose: Purpose::Marketing as i32,
                allow: false,
            },
            UnknownConsentRule {
                purpose: Purpose::Service as i32,
                allow: true,
            },
            UnknownConsentRule {
                purpose: Purpose::Survey as i32,
                allow: true,
            },
        ],
        update_time: None,
        etag: String::new(),
    }
}

/// Whether `status` allows contact for `purpose` under `policy`.
pub fn consent_allows(policy: &ContactPolicy, status: ConsentStatus, purpose: Purpose) -> bool {
    match status {
        ConsentStatus::Granted => true,
        ConsentStatus::Denied => false,
        ConsentStatus::Unknown | ConsentStatus::Unspecified => policy
            .unknown_consent_rules
            .iter()
            .find(|rule| rule.purpose == purpose as i32)
            // A purpose the policy does not mention needs a grant.
            .is_some_and(|rule| rule.allow),
    }
}

pub fn budget_exempt(policy: &ContactPolicy, purpose: Purpose) -> bool {
    policy.budget_exempt_purposes.contains(&(purpose as i32))
}

pub fn may_bypass_quiet_hours(policy: &ContactPolicy, purpose: Purpose) -> bool {
    policy
        .quiet_hours_bypass_purposes
        .contains(&(purpose as i32))
}

/// The limits of `budget` that a message on `channel` for `purpose` counts against.
pub fn matching_limits(
    budget: &ContactBudget,
    channel: Channel,
    purpose: Purpose,
) -> impl Iterator<Item = &ContactLimit> {
    budget.limits.iter().filter(move |limit| {
        (limit.channel == Channel::Unspecified as i32 || limit.channel == channel as i32)
            && (limit.purpose == Purpose::Unspecified as i32 || limit.purpose == purpose as i32)
    })
}

/// The counter a limit keeps: channel, purpose and period.
pub fn limit_key(limit: &ContactLimit) -> String {
    format!("c{}.p{}.{}", limit.channel, limit.purpose, limit.period)
}

fn period(limit: &ContactLimit) -> BudgetPeriod {
    match BudgetPeriod::try_from(limit.period) {
        Ok(BudgetPeriod::Week) => BudgetPeriod::Week,
        Ok(BudgetPeriod::Month) => BudgetPeriod::Month,
        _ => BudgetPeriod::Day,
    }
}

/// The first local day of the limit's period that contains `day`.
fn period_first_day(limit: &ContactLimit, day: NaiveDate) -> NaiveDate {
    match period(limit) {
        BudgetPeriod::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
        BudgetPeriod::Month => day.with_day(1).unwrap_or(day),
        _ => day,
    }
}

/// The period of `limit` that `at` falls in, in `zone`: its first day as yyyymmdd, and when it
/// ends.
pub fn period_of(limit: &ContactLimit, zone: Tz, at: DateTime<Utc>) -> (i32, DateTime<Utc>) {
    let day = at.with_timezone(&zone).date_naive();
    let first = period_first_day(limit, day);
    let next = match period(limit) {
        BudgetPeriod::Week => first + Days::new(7),
        BudgetPeriod::Month => first
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(first + Days::new(31)),
        _ => first + Days::new(1),
    };
    let key = first.year() * 10_000 + first.month() as i32 * 100 + first.day() as i32;
    (key, to_utc(zone, next.and_time(NaiveTime::MIN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn periods_are_calendar_periods_of_the_customer_zone() {
        let zone: Tz = "America/New_York".parse().unwrap_or(Tz::UTC);
        let daily = ContactLimit {
            period: BudgetPeriod::Day as i32,
            ..ContactLimit::default()
        };
        // 02:00 UTC on the 15th is still the 14th in New York.
        let (key, end) = period_of(&daily, zone, utc("2026-01-15T02:00:00Z"));
        assert_eq!(key, 20_260_114);
        assert_eq!(end, utc("2026-01-15T05:00:00Z"));
        let weekly = ContactLimit {
            period: BudgetPeriod::Week as i32,
            ..ContactLimit::default()
        };
        // Wednesday the 14th → the week starting Monday the 12th.
        assert_eq!(
            period_of(&weekly, zone, utc("2026-01-14T15:00:00Z")).0,
            20_260_112
        );
        let monthly = ContactLimit {
            period: BudgetPeriod::Month as i32,
            ..ContactLimit::default()
        };
        assert_eq!(
            period_of(&monthly, zone, utc("2026-01-14T15:00:00Z")).0,
            20_260_101
        );
    }

    #[test]
    fn unknown_consent_follows_the_policy_per_purpose() {
        let policy = default_policy();
        assert!(!consent_allows(
            &policy,
            ConsentStatus::Unknown,
            Purpose::Marketing
        ));
        assert!(consent_allows(
            &policy,
            ConsentStatus::Unknown,
            Purpose::Service
        ));
        assert!(!consent_allows(
            &policy,
            ConsentStatus::Denied,
            Purpose::Service
        ));
        assert!(consent_allows(
            &policy,
            ConsentStatus::Granted,
            Purpose::Marketing
        ));
    }
}
