//! Checks of what callers send: every offending field is named (`profile.email`,
//! `profile.attributes.tier`, `profile.preferences.time_zone`), all in one answer.

use std::collections::BTreeSet;
use std::str::FromStr;

use prost::Message;
use throughline_proto::common::v1::attribute_value::Kind;
use throughline_proto::common::v1::{AttributeValue, BudgetPeriod, Channel, Purpose};
use throughline_proto::profile::v1::{Preferences, Profile};

use crate::Options;
use crate::error::{Error, Result, Violations};
use crate::identity;

const MAX_NAME: usize = 256;
const MAX_KEY: usize = 64;
const MAX_LIST: usize = 100;
const MAX_BUDGET_LIMITS: usize = 20;

/// Normalises `profile`'s core fields in place (email lower-cased, phone in E.164) and
/// checks them, its attributes and its preferences; `prefix` is the request's field path.
pub fn profile(
    profile: &mut Profile,
    prefix: &str,
    options: &Options,
    violations: &mut Violations,
) {
    for (field, value) in [
        ("given_name", &profile.given_name),
        ("family_name", &profile.family_name),
    ] {
        if value.chars().count() > MAX_NAME || value.chars().any(char::is_control) {
            violations.add(
                format!("{prefix}.{field}"),
                format!("at most {MAX_NAME} characters, no control characters"),
            );
        }
    }
    if !profile.email.is_empty() {
        match identity::email(&profile.email) {
            Ok(email) => profile.email = email,
            Err((_, why)) => violations.add(format!("{prefix}.email"), why),
        }
    }
    if !profile.phone.is_empty() {
        match identity::phone(&profile.phone) {
            Ok(phone) => profile.phone = phone,
            Err((_, why)) => violations.add(format!("{prefix}.phone"), why),
        }
    }
    attributes(profile, prefix, options, violations);
    if let Some(preferences) = &profile.preferences {
        self::preferences(preferences, &format!("{prefix}.preferences"), violations);
    }
}

fn attributes(profile: &Profile, prefix: &str, options: &Options, violations: &mut Violations) {
    if profile.attributes.len() > options.max_attributes {
        violations.add(
            format!("{prefix}.attributes"),
            format!("at most {} attributes", options.max_attributes),
        );
    }
    for (key, value) in &profile.attributes {
        let field = format!("{prefix}.attributes.{key}");
        if !is_attribute_key(key) {
            violations.add(
                &field,
                format!("keys are lower_snake_case, at most {MAX_KEY} characters"),
            );
            continue;
        }
        if let Err(why) = attribute_value(value, true) {
            violations.add(&field, why);
        } else if value.encoded_len() > options.max_attribute_bytes {
            violations.add(
                &field,
                format!("larger than {} bytes", options.max_attribute_bytes),
            );
        }
    }
}

pub fn is_attribute_key(key: &str) -> bool {
    key.len() <= MAX_KEY
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn attribute_value(value: &AttributeValue, top: bool) -> std::result::Result<(), String> {
    match &value.kind {
        None => {
            Err("the value has no type (set one of string, number, bool, timestamp, list)".into())
        }
        Some(Kind::NumberValue(number)) if !number.is_finite() => {
            Err("numbers must be finite".into())
        }
        Some(Kind::TimestampValue(time)) if !(0..1_000_000_000).contains(&time.nanos) => {
            Err("not a valid timestamp".into())
        }
        Some(Kind::StringValue(text)) if text.chars().any(|c| c == '\0') => {
            Err("strings must not contain NUL".into())
        }
        Some(Kind::ListValue(list)) => {
            if !top {
                return Err("lists cannot contain lists".into());
            }
            if list.values.len() > MAX_LIST {
                return Err(format!("lists hold at most {MAX_LIST} values"));
            }
            list.values
                .iter()
                .try_for_each(|item| attribute_value(item, false))
        }
        Some(_) => Ok(()),
    }
}

pub fn preferences(preferences: &Preferences, prefix: &str, violations: &mut Violations) {
    if !preferences.language.is_empty() && !is_language_tag(&preferences.language) {
        violations.add(
            format!("{prefix}.language"),
            "not a BCP-47 language tag such as `en-GB`",
        );
    }
    if !preferences.time_zone.is_empty() && chrono_tz::Tz::from_str(&preferences.time_zone).is_err()
    {
        violations.add(
            format!("{prefix}.time_zone"),
            "not an IANA time zone such as `Europe/Paris`",
        );
    }
    if let Some(window) = &preferences.quiet_hours {
        for (field, time) in [
            ("start_time", &window.start_time),
            ("end_time", &window.end_time),
        ] {
            let field = format!("{prefix}.quiet_hours.{field}");
            match time {
                None => violations.add(field, "required"),
                Some(time)
                    if !(0..24).contains(&time.hours)
                        || !(0..60).contains(&time.minutes)
                        || !(0..60).contains(&time.seconds)
                        || time.nanos != 0 =>
                {
                    violations.add(field, "a time of day from 00:00:00 to 23:59:59")
                }
                Some(_) => {}
            }
        }
        if window.days.iter().any(|day| !(1..=7).contains(day)) {
            violations.add(
                format!("{prefix}.quiet_hours.days"),
                "days are MONDAY to SUNDAY",
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (index, channel) in preferences.channel_ranking.iter().enumerate() {
        if !valid_channel(*channel) || !seen.insert(*channel) {
            violations.add(
                format!("{prefix}.channel_ranking[{index}]"),
                "a channel, each at most once",
            );
        }
    }
    if let Some(budget) = &preferences.contact_budget {
        if budget.limits.len() > MAX_BUDGET_LIMITS {
            violations.add(
                format!("{prefix}.contact_budget.limits"),
                format!("at most {MAX_BUDGET_LIMITS} limits"),
            );
        }
        for (index, limit) in budget.limits.iter().enumerate() {
            let at = format!("{prefix}.contact_budget.limits[{index}]");
            if Channel::try_from(limit.channel).is_err() {
                violations.add(format!("{at}.channel"), "unknown channel");
            }
            if Purpose::try_from(limit.purpose).is_err() {
                violations.add(format!("{at}.purpose"), "unknown purpose");
            }
            if limit.max_contacts < 0 {
                violations.add(format!("{at}.max_contacts"), "must not be negative");
            }
            if !matches!(
                BudgetPeriod::try_from(limit.period),
                Ok(BudgetPeriod::Day | BudgetPeriod::Week | BudgetPeriod::Month)
            ) {
                violations.add(format!("{at}.period"), "DAY, WEEK or MONTH");
            }
        }
    }
}

pub fn valid_channel(channel: i32) -> bool {
    matches!(Channel::try_from(channel), Ok(c) if c != Channel::Unspecified)
}

pub fn valid_purpose(purpose: i32) -> bool {
    matches!(Purpose::try_from(purpose), Ok(p) if p != Purpose::Unspecified)
}

fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    tag.len() <= 35
        && (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|part| {
            (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

/// The fields an update mask may name.
const CORE: [&str; 4] = ["given_name", "family_name", "email", "phone"];
const PREFERENCES: [&str; 5] = [
    "language",
    "time_zone",
    "quiet_hours",
    "channel_ranking",
    "contact_budget",
];

/// Applies the paths of `mask` from `update` onto `current`; `*` replaces every updatable
/// field. Returns the paths that changed. Server-owned fields are refused.
pub fn apply_mask(current: &mut Profile, update: &Profile, mask: &[String]) -> Result<Vec<String>> {
    let mut violations = Violations::default();
    let before = current.clone();
    let expanded: Vec<String> = if mask.iter().any(|p| p == "*") {
        CORE.iter()
            .map(|f| (*f).to_owned())
            .chain(["attributes".to_owned(), "preferences".to_owned()])
            .collect()
    } else {
        mask.to_vec()
    };
    let preferences = |p: &Profile| p.preferences.clone().unwrap_or_default();
    for path in &expanded {
        match path.as_str() {
            "given_name" => current.given_name = update.given_name.clone(),
            "family_name" => current.family_name = update.family_name.clone(),
            "email" => current.email = update.email.clone(),
            "phone" => current.phone = update.phone.clone(),
            "attributes" => current.attributes = update.attributes.clone(),
            "preferences" => current.preferences = update.preferences.clone(),
            other => {
                if let Some(key) = other.strip_prefix("attributes.") {
                    if !is_attribute_key(key) {
                        violations.add("update_mask", format!("`{other}`: not an attribute key"));
                        continue;
                    }
                    // A key named in the mask but absent from the update is removed.
                    match update.attributes.get(key) {
                        Some(value) => {
                            current.attributes.insert(key.to_owned(), value.clone());
                        }
                        None => {
                            current.attributes.remove(key);
                        }
                    }
                } else if let Some(field) = other.strip_prefix("preferences.")
                    && PREFERENCES.contains(&field)
                {
                    let mut target = preferences(current);
                    let source = preferences(update);
                    match field {
                        "language" => target.language = source.language,
                        "time_zone" => target.time_zone = source.time_zone,
                        "quiet_hours" => target.quiet_hours = source.quiet_hours,
                        "channel_ranking" => target.channel_ranking = source.channel_ranking,
                        _ => target.contact_budget = source.contact_budget,
                    }
                    current.preferences = Some(target);
                } else {
                    violations.add(
                        "update_mask",
                        format!("`{other}` cannot be updated here (identifiers, consent and segments have their own methods; output-only fields never)"),
                    );
                }
            }
        }
    }
    if expanded.is_empty() {
        violations.add("update_mask", "required: the fields to update, or `*`");
    }
    violations.into_result()?;
    Ok(changed_fields(&before, current))
}

/// The paths that differ between two profiles' stored parts.
pub fn changed_fields(before: &Profile, after: &Profile) -> Vec<String> {
    let mut changed = Vec::new();
    for (field, a, b) in [
        ("given_name", &before.given_name, &after.given_name),
        ("family_name", &before.family_name, &after.family_name),
        ("email", &before.email, &after.email),
        ("phone", &before.phone, &after.phone),
    ] {
        if a != b {
            changed.push(field.to_owned());
        }
    }
    let keys: BTreeSet<&String> = before
        .attributes
        .keys()
        .chain(after.attributes.keys())
        .collect();
    for key in keys {
        if before.attributes.get(key) != after.attributes.get(key) {
            changed.push(format!("attributes.{key}"));
        }
    }
    let (a, b) = (
        before.preferences.clone().unwrap_or_default(),
        after.preferences.clone().unwrap_or_default(),
    );
    for (field, differs) in [
        ("language", a.language != b.language),
        ("time_zone", a.time_zone != b.time_zone),
        ("quiet_hours", a.quiet_hours != b.quiet_hours),
        ("channel_ranking", a.channel_ranking != b.channel_ranking),
        ("contact_budget", a.contact_budget != b.contact_budget),
    ] {
        if differs {
            changed.push(format!("preferences.{field}"));
        }
    }
    changed
}

/// Page size of a list call: 0 means `default`, at most `max`.
pub fn page_size(size: i32, default: u64, max: u64) -> Result<u64> {
    match size {
        0 => Ok(default),
        size if size < 0 => Err(Error::invalid("page_size", "must not be negative")),
        size => Ok((size as u64).min(max)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn attribute_keys_are_lower_snake_case() {
        for good in ["tier", "lifetime_value", "a1"] {
            assert!(is_attribute_key(good), "{good}");
        }
        for bad in ["", "Tier", "1a", "bad-key", "a.b", &"x".repeat(65)] {
            assert!(!is_attribute_key(bad), "{bad}");
        }
    }

    #[test]
    fn language_tags() {
        for good in ["en", "en-GB", "zh-Hant-TW", "es-419"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in ["", "e", "english language", "en_GB", "en-"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn masks_name_the_fields_that_changed() {
        let mut current = Profile {
            given_name: "Ada".into(),
            ..Default::default()
        };
        let update = Profile {
            given_name: "Augusta".into(),
            preferences: Some(Preferences {
                time_zone: "Europe/London".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let changed = apply_mask(
            &mut current,
            &update,
            &["given_name".into(), "preferences.time_zone".into()],
        )
        .unwrap();
        assert_eq!(changed, ["given_name", "preferences.time_zone"]);
        assert!(apply_mask(&mut current, &update, &["name".into()]).is_err());
        assert!(apply_mask(&mut current, &update, &[]).is_err());
    }
}
