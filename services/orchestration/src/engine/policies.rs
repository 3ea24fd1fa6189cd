//! The journey's policies against creep, checked before every message it sends (send and
//! request-feedback nodes), on top of the distribution service's consent, suppression list,
//! quiet hours and contact budget: a minimum delay after the trigger, quiet hours in the
//! customer's time zone, a frequency cap per journey, and suppression rules in CEL over the
//! customer's recent interactions.

use throughline_proto::common::v1::Purpose;
use throughline_proto::orchestration::v1::{JourneyDefinition, SuppressionAction};
use throughline_proto::profile::v1::Profile;
use throughline_runtime::Error;
use throughline_runtime::local_time::quiet_hours_end;
use throughline_runtime::time::{MICROS_PER_DAY, duration_us};

use super::effects;
use super::run::{condition, zone_of};
use crate::Service;
use crate::expr::{self, Kind as ExprKind, Scope};
use crate::store::entries;
use crate::store::instances::Instance;

/// How far back a suppression rule looks when it does not say, and at most.
const DEFAULT_LOOKBACK_US: i64 = 7 * MICROS_PER_DAY;
const MAX_LOOKBACK_US: i64 = 90 * MICROS_PER_DAY;

/// What the policies say about a message now.
#[derive(Debug, PartialEq)]
pub(crate) enum Decision {
    Proceed,
    /// Not yet: the minimum delay or quiet hours hold it until then.
    WaitUntil(i64),
    /// Skip this message with this step outcome and go on.
    Skip(String),
    /// End the instance with this exit reason.
    Exit(String),
}

pub(crate) async fn check(
    service: &Service,
    definition: &JourneyDefinition,
    instance: &Instance,
    profile: Option<&Profile>,
    purpose: i32,
    sent_this_run: usize,
    now: i64,
) -> Result<Decision, Error> {
    let Some(policies) = definition.policies.as_ref() else {
        return Ok(Decision::Proceed);
    };
    // No abandoned-cart message five minutes after the cart.
    if let Some(delay) = policies.minimum_delay.as_ref().and_then(duration_us) {
        let earliest = instance.start_us.saturating_add(delay);
        if now < earliest {
            return Ok(Decision::WaitUntil(earliest));
        }
    }
    let service_message = purpose == Purpose::Service as i32;
    if !(policies.ignore_quiet_hours && service_message) {
        let window = policies.quiet_hours.as_ref().or_else(|| {
            profile
                .and_then(|p| p.preferences.as_ref())
                .and_then(|p| p.quiet_hours.as_ref())
        });
        if let Some(window) = window
            && let Some(end) = quiet_hours_end(window, zone_of(profile), super::utc(now))
        {
            return Ok(Decision::WaitUntil(end.timestamp_micros()));
        }
    }
    if let Some(cap) = policies.frequency_cap.as_ref()
        && let Some(period) = cap.period.as_ref().and_then(duration_us)
    {
        let sent = entries::contacts_since(
            service.db(),
            &instance.tenant,
            &instance.journey,
            &instance.customer,
            now - period,
        )
        .await?;
        // Messages sent earlier in this run are not recorded yet.
        let sent = sent + i64::try_from(sent_this_run).unwrap_or(i64::MAX);
        if sent >= i64::from(cap.max_messages) {
            return Ok(Decision::Skip("skipped:frequency_cap".into()));
        }
    }
    if policies.suppressions.is_empty() {
        return Ok(Decision::Proceed);
    }
    let lookback = |rule_lookback: Option<&prost_types::Duration>| {
        rule_lookback
            .and_then(duration_us)
            .unwrap_or(DEFAULT_LOOKBACK_US)
            .min(MAX_LOOKBACK_US)
    };
    let furthest = policies
        .suppressions
        .iter()
        .map(|rule| lookback(rule.lookback.as_ref()))
        .max()
        .unwrap_or(DEFAULT_LOOKBACK_US);
    let interactions = effects::recent_interactions(service, instance, now - furthest, now).await?;
    let mut scope = Scope {
        profile: profile
            .map(expr::profile_value)
            .unwrap_or_else(|| serde_json::json!({})),
        trigger: instance.trigger.clone(),
        vars: serde_json::Value::Object(instance.variables.clone()),
        now_us: now,
        event: None,
        interactions: None,
    };
    for rule in &policies.suppressions {
        let since = now - lookback(rule.lookback.as_ref());
        let within: Vec<serde_json::Value> = interactions
            .iter()
            .filter(|(occur_us, _)| *occur_us >= since)
            .map(|(_, interaction)| interaction.clone())
            .collect();
        scope.interactions = Some(serde_json::Value::Array(within));
        if condition(&rule.condition, ExprKind::Suppression, &scope) {
            return Ok(
                match SuppressionAction::try_from(rule.action).unwrap_or_default() {
                    SuppressionAction::Exit => Decision::Exit(rule.reason.clone()),
                    _ => Decision::Skip(format!("suppressed:{}", rule.reason)),
                },
            );
        }
    }
    Ok(Decision::Proceed)
}
