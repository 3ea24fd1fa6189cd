//! Checks a journey definition on create, update and publish: a well-formed graph, CEL that
//! compiles against the known variables, and each node's own fields. Every problem is a field
//! violation pointing at the node, for example `journey.definition.nodes[3].wait.duration`.
//!
//! Everything is reported at once, so that whoever edits a journey fixes it in one round.

mod graph;
mod nodes;

use prost::Message;
use prost_types::Duration;
use throughline_proto::common::v1::channel_selector::Selector;
use throughline_proto::common::v1::{Channel, ChannelSelector, LocalTimeWindow, Purpose};
use throughline_proto::google::r#type::{DayOfWeek, TimeOfDay};
use throughline_proto::orchestration::v1::trigger::Kind as TriggerKind;
use throughline_proto::orchestration::v1::{
    EntryMode, EventMatcher, JourneyDefinition, JourneyPolicies, SuppressionAction,
};
use throughline_runtime::FieldViolation;

use crate::expr::{self, Kind as ExprKind};

const DAY_SECONDS: i64 = 24 * 3600;
/// The longest wait, timeout, goal window or delay: a journey is about one customer episode.
const MAX_DAYS: i64 = 365;
const MAX_LOOKBACK_DAYS: i64 = 90;
const MAX_VARIABLES_BYTES: usize = 64 * 1024;
const MAX_HOLDOUT_PERCENT: f64 = 50.0;

/// Every problem of `definition`, with paths under `field` (such as `journey.definition`).
pub(crate) fn definition(definition: &JourneyDefinition, field: &str) -> Vec<FieldViolation> {
    let mut check = Check {
        field,
        violations: Vec::new(),
    };
    check.trigger(definition);
    check.entry_policy(definition);
    graph::check(&mut check, definition);
    for (index, node) in definition.nodes.iter().enumerate() {
        nodes::check(&mut check, &format!("nodes[{index}]"), node);
    }
    check.goal_and_exits(definition);
    if !definition.holdout_percent.is_finite()
        || !(0.0..=MAX_HOLDOUT_PERCENT).contains(&definition.holdout_percent)
    {
        check.push("holdout_percent", "must be between 0 and 50");
    }
    if let Some(policies) = &definition.policies {
        check.policies(definition, policies);
    }
    if let Some(variables) = &definition.variables
        && variables.encoded_len() > MAX_VARIABLES_BYTES
    {
        check.push("variables", "at most 64 KiB");
    }
    check.violations
}

/// The violations found so far, with the prefix their paths go under.
pub(super) struct Check<'a> {
    field: &'a str,
    violations: Vec<FieldViolation>,
}

impl Check<'_> {
    fn push(&mut self, path: &str, description: impl Into<String>) {
        let field = if self.field.is_empty() {
            path.to_owned()
        } else {
            format!("{}.{path}", self.field)
        };
        self.violations
            .push(FieldViolation::new(field, description));
    }

    fn trigger(&mut self, definition: &JourneyDefinition) {
        match definition.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
            None => self.push("trigger", "required: one of event, segment_entered or api"),
            Some(TriggerKind::Event(matcher)) => self.matcher(Some(matcher), "trigger.event"),
            Some(TriggerKind::SegmentEntered(segment)) => {
                if !reference(&segment.segment, "segments", is_id) {
                    self.push("trigger.segment_entered.segment", "must be segments/{id}");
                }
            }
            Some(TriggerKind::Api(_)) => {}
        }
    }

    fn entry_policy(&mut self, definition: &JourneyDefinition) {
        let Some(policy) = &definition.entry_policy else {
            return;
        };
        let Ok(mode) = EntryMode::try_from(policy.mode) else {
            self.push("entry_policy.mode", format!("unknown mode {}", policy.mode));
            return;
        };
        let path = "entry_policy.reentry_interval";
        if mode == EntryMode::OncePerInterval {
            match self.duration(policy.reentry_interval.as_ref(), path) {
                Some(us) if us > 0 => {}
                Some(_) => self.push(
                    path,
                    "required for ENTRY_MODE_ONCE_PER_INTERVAL, above zero",
                ),
                None => {}
            }
        } else if policy.reentry_interval.is_some() {
            self.push(path, "only for ENTRY_MODE_ONCE_PER_INTERVAL");
        }
    }

    fn goal_and_exits(&mut self, definition: &JourneyDefinition) {
        if let Some(goal) = &definition.goal {
            self.matcher(goal.event.as_ref(), "goal.event");
            self.bounded(goal.window.as_ref(), "goal.window", false, MAX_DAYS);
        }
        for (index, exit) in definition.exit_conditions.iter().enumerate() {
            let path = format!("exit_conditions[{index}]");
            self.matcher(exit.event.as_ref(), &format!("{path}.event"));
            self.reason(&exit.reason, &format!("{path}.reason"), true);
        }
    }

    fn policies(&mut self, definition: &JourneyDefinition, policies: &JourneyPolicies) {
        self.bounded(
            policies.minimum_delay.as_ref(),
            "policies.minimum_delay",
            false,
            MAX_DAYS,
        );
        if let Some(window) = &policies.quiet_hours {
            self.window(window, "policies.quiet_hours");
        }
        if policies.ignore_quiet_hours && nodes::sends_marketing(definition) {
            self.push(
                "policies.ignore_quiet_hours",
                "not allowed for a journey that sends marketing (PURPOSE_MARKETING)",
            );
        }
        if let Some(cap) = &policies.frequency_cap {
            if cap.max_messages < 1 {
                self.push("policies.frequency_cap.max_messages", "must be at least 1");
            }
            self.bounded(
                cap.period.as_ref(),
                "policies.frequency_cap.period",
                true,
                MAX_DAYS,
            );
        }
        for (index, rule) in policies.suppressions.iter().enumerate() {
            let path = format!("policies.suppressions[{index}]");
            self.cel(
                &rule.condition,
                ExprKind::Suppression,
                &format!("{path}.condition"),
            );
            self.bounded(
                rule.lookback.as_ref(),
                &format!("{path}.lookback"),
                false,
                MAX_LOOKBACK_DAYS,
            );
            if !matches!(
                SuppressionAction::try_from(rule.action),
                Ok(SuppressionAction::SkipSend | SuppressionAction::Exit)
            ) {
                self.push(
                    &format!("{path}.action"),
                    "required: SUPPRESSION_ACTION_SKIP_SEND or SUPPRESSION_ACTION_EXIT",
                );
            }
            self.reason(&rule.reason, &format!("{path}.reason"), true);
        }
    }

    fn matcher(&mut self, matcher: Option<&EventMatcher>, path: &str) {
        let Some(matcher) = matcher else {
            self.push(path, "required: an event_type or an interaction_type");
            return;
        };
        if matcher.event_type.is_empty() && matcher.interaction_type.is_empty() {
            self.push(path, "set event_type or interaction_type");
        }
        for (name, value) in [
            ("event_type", &matcher.event_type),
            ("interaction_type", &matcher.interaction_type),
        ] {
            if !value.is_empty() && !is_event_type(value) {
                self.push(
                    &format!("{path}.{name}"),
                    "lower-case words separated by dots, for example `order.placed`",
                );
            }
        }
        if !matcher.interaction_type.is_empty()
            && !matcher.event_type.is_empty()
            && matcher.event_type != "interaction.recorded"
        {
            self.push(
                &format!("{path}.event_type"),
                "an interaction_type matches `interaction.recorded` events: leave event_type empty",
            );
        }
        if !matcher.condition.is_empty() {
            self.cel(
                &matcher.condition,
                ExprKind::EventCondition,
                &format!("{path}.condition"),
            );
        }
    }

    fn cel(&mut self, source: &str, kind: ExprKind, path: &str) {
        if let Err(description) = expr::compile(source, kind) {
            self.push(path, description);
        }
    }

    fn reason(&mut self, reason: &str, path: &str, required: bool) {
        if reason.is_empty() {
            if required {
                self.push(path, "required, for example `ordered`");
            }
        } else if reason.chars().count() > 64 {
            self.push(path, "at most 64 characters");
        }
    }

    /// A duration's microseconds, or a violation when negative or malformed; `Some(0)` unset.
    fn duration(&mut self, duration: Option<&Duration>, path: &str) -> Option<i64> {
        let Some(duration) = duration else {
            return Some(0);
        };
        if !(0..1_000_000_000).contains(&duration.nanos) && duration.seconds >= 0 {
            self.push(path, "nanos must be between 0 and 999999999");
            return None;
        }
        if duration.seconds < 0 || duration.nanos < 0 {
            self.push(path, "must not be negative");
            return None;
        }
        let Some(us) = duration
            .seconds
            .checked_mul(1_000_000)
            .and_then(|us| us.checked_add(i64::from(duration.nanos / 1000)))
        else {
            self.push(path, "too long");
            return None;
        };
        Some(us)
    }

    /// A duration of at most `max_days`, above zero when `required`.
    fn bounded(&mut self, duration: Option<&Duration>, path: &str, required: bool, max_days: i64) {
        let Some(us) = self.duration(duration, path) else {
            return;
        };
        if required && us == 0 {
            self.push(path, "required, above zero");
        } else if us > max_days * DAY_SECONDS * 1_000_000 {
            self.push(path, format!("at most {max_days} days"));
        }
    }

    fn window(&mut self, window: &LocalTimeWindow, path: &str) {
        let start = self.time_of_day(window.start_time.as_ref(), &format!("{path}.start_time"));
        let end = self.time_of_day(window.end_time.as_ref(), &format!("{path}.end_time"));
        if start.is_some() && start == end {
            self.push(path, "start_time and end_time must differ");
        }
        for (index, day) in window.days.iter().enumerate() {
            if !matches!(DayOfWeek::try_from(*day), Ok(d) if d != DayOfWeek::Unspecified) {
                self.push(
                    &format!("{path}.days[{index}]"),
                    format!("unknown day of week {day}"),
                );
            }
        }
    }

    /// Seconds since midnight, or a violation; unset is midnight.
    fn time_of_day(&mut self, time: Option<&TimeOfDay>, path: &str) -> Option<i32> {
        let Some(time) = time else {
            return Some(0);
        };
        let mut valid = true;
        for (name, value, max) in [
            ("hours", time.hours, 23),
            ("minutes", time.minutes, 59),
            ("seconds", time.seconds, 59),
            ("nanos", time.nanos, 999_999_999),
        ] {
            if !(0..=max).contains(&value) {
                self.push(
                    &format!("{path}.{name}"),
                    format!("must be between 0 and {max}"),
                );
                valid = false;
            }
        }
        valid.then(|| time.hours * 3600 + time.minutes * 60 + time.seconds)
    }

    fn channel(&mut self, selector: Option<&ChannelSelector>, path: &str) {
        match selector.and_then(|s| s.selector.as_ref()) {
            None => self.push(path, "required: a channel or preferred"),
            Some(Selector::Channel(channel)) => {
                if !is_channel(*channel) {
                    self.push(
                        &format!("{path}.channel"),
                        format!("unknown channel {channel}"),
                    );
                }
            }
            Some(Selector::Preferred(preferred)) => {
                for (index, channel) in preferred.candidates.iter().enumerate() {
                    if !is_channel(*channel) {
                        self.push(
                            &format!("{path}.preferred.candidates[{index}]"),
                            format!("unknown channel {channel}"),
                        );
                    }
                }
            }
        }
    }

    fn purpose(&mut self, purpose: i32, path: &str) {
        if !matches!(Purpose::try_from(purpose), Ok(p) if p != Purpose::Unspecified) {
            self.push(
                path,
                "required: PURPOSE_MARKETING, PURPOSE_SERVICE or PURPOSE_SURVEY",
            );
        }
    }
}

fn is_channel(channel: i32) -> bool {
    matches!(Channel::try_from(channel), Ok(c) if c != Channel::Unspecified)
}

/// `{collection}/{id}` with an id `valid` accepts.
fn reference(name: &str, collection: &str, valid: impl Fn(&str) -> bool) -> bool {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(valid)
}

/// Ids chosen by people (templates, segments): letters, digits, `-` and `_`, 1 to 63.
fn is_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Node ids: lower-case letters, digits, `_` and `-`, 1 to 63.
fn is_node_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A name CEL can read as `vars.name`: a letter or `_`, then letters, digits or `_`.
fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 64
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `order.placed`, `feedback.detractor`: dot-separated words of lower-case letters, digits
/// and `_`, each starting with a letter.
fn is_event_type(value: &str) -> bool {
    value.len() <= 128
        && value.split('.').all(|word| {
            word.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

#[cfg(test)]
mod tests;
