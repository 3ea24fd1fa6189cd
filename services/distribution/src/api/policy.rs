//! Policy RPCs: suppressions, the contact policy, a customer's budget usage, and the
//! configured providers.

use chrono::{DateTime, Utc};
use throughline_proto::common::v1::{
    BudgetPeriod, Channel, ContactBudget, LocalTimeWindow, Purpose,
};
use throughline_proto::distribution::v1::*;
use throughline_runtime::time::{PageToken, now_us, timestamp, timestamp_us};
use throughline_runtime::{Error, FieldViolation};

use super::{Api, page_size, resource_id};
use crate::policy::{POLICY_NAME, limit_key, period_of};
use crate::recipient::{self, normalise_address};
use crate::store::suppressions::{self, SuppressionRow};
use crate::store::{budget, policies};

fn purposes(values: &[i32], field: &str, violations: &mut Vec<FieldViolation>) {
    for (index, value) in values.iter().enumerate() {
        if !matches!(Purpose::try_from(*value), Ok(p) if p != Purpose::Unspecified) {
            violations.push(FieldViolation::new(
                format!("{field}[{index}]"),
                "unknown purpose",
            ));
        }
    }
}

fn check_window(window: &LocalTimeWindow, field: &str, violations: &mut Vec<FieldViolation>) {
    for (name, time) in [
        ("start_time", &window.start_time),
        ("end_time", &window.end_time),
    ] {
        let valid = time.as_ref().is_some_and(|t| {
            (0..24).contains(&t.hours)
                && (0..60).contains(&t.minutes)
                && (0..60).contains(&t.seconds)
                && t.nanos == 0
        });
        if !valid {
            violations.push(FieldViolation::new(
                format!("{field}.{name}"),
                "is required: a time of day",
            ));
        }
    }
    for (index, day) in window.days.iter().enumerate() {
        if !(1..=7).contains(day) {
            violations.push(FieldViolation::new(
                format!("{field}.days[{index}]"),
                "must be MONDAY to SUNDAY",
            ));
        }
    }
}

/// Checks a budget; violations name `field.limits[i]…`.
pub(crate) fn check_budget(
    budget: &ContactBudget,
    field: &str,
    violations: &mut Vec<FieldViolation>,
) {
    if budget.limits.len() > 50 {
        violations.push(FieldViolation::new(
            format!("{field}.limits"),
            "at most 50 limits",
        ));
    }
    for (index, limit) in budget.limits.iter().enumerate() {
        let at = format!("{field}.limits[{index}]");
        if Channel::try_from(limit.channel).is_err() {
            violations.push(FieldViolation::new(
                format!("{at}.channel"),
                "unknown channel",
            ));
        }
        if Purpose::try_from(limit.purpose).is_err() {
            violations.push(FieldViolation::new(
                format!("{at}.purpose"),
                "unknown purpose",
            ));
        }
        if limit.max_contacts < 0 {
            violations.push(FieldViolation::new(
                format!("{at}.max_contacts"),
                "must not be negative",
            ));
        }
        if !matches!(BudgetPeriod::try_from(limit.period), Ok(p) if p != BudgetPeriod::Unspecified)
        {
            violations.push(FieldViolation::new(
                format!("{at}.period"),
                "is required: DAY, WEEK or MONTH",
            ));
        }
    }
}

impl Api {
    pub(super) async fn add_suppression(
        &self,
        tenant: &str,
        request: AddSuppressionRequest,
    ) -> Result<AddSuppressionResponse, Error> {
        let suppression = request
            .suppression
            .ok_or_else(|| Error::invalid("suppression", "is required"))?;
        let mut violations = Vec::new();
        let address = match &suppression.address {
            Some(address) => match normalise_address(address, "suppression.address") {
                Ok((kind, value)) => format!("{kind}:{value}"),
                Err(Error::InvalidArgument(found)) => {
                    violations.extend(found);
                    String::new()
                }
                Err(error) => return Err(error),
            },
            None => {
                violations.push(FieldViolation::new("suppression.address", "is required"));
                String::new()
            }
        };
        if Channel::try_from(suppression.channel).is_err() {
            violations.push(FieldViolation::new(
                "suppression.channel",
                "unknown channel",
            ));
        }
        if Purpose::try_from(suppression.purpose).is_err() {
            violations.push(FieldViolation::new(
                "suppression.purpose",
                "unknown purpose",
            ));
        }
        if !matches!(
            SuppressionReason::try_from(suppression.reason),
            Ok(r) if r != SuppressionReason::Unspecified
        ) {
            violations.push(FieldViolation::new("suppression.reason", "is required"));
        }
        if suppression.source.len() > 256 {
            violations.push(FieldViolation::new(
                "suppression.source",
                "at most 256 characters",
            ));
        }
        if suppression.note.len() > 1024 {
            violations.push(FieldViolation::new(
                "suppression.note",
                "at most 1024 characters",
            ));
        }
        let expire_us = match &suppression.expire_time {
            None => None,
            Some(time) => match timestamp_us(time) {
                Some(us) => Some(us),
                None => {
                    violations.push(FieldViolation::new(
                        "suppression.expire_time",
                        "not a valid time",
                    ));
                    None
                }
            },
        };
        Error::unless_valid(violations)?;
        let row = SuppressionRow {
            id: uuid::Uuid::now_v7().to_string(),
            address,
            channel: suppression.channel,
            purpose: suppression.purpose,
            reason: suppression.reason,
            source: suppression.source,
            note: suppression.note,
            expire_us,
            create_us: now_us(),
        };
        let stored = suppressions::add(self.service.db(), tenant, &row).await?;
        Ok(AddSuppressionResponse {
            suppression: Some(stored.to_proto()),
        })
    }

    pub(super) async fn remove_suppression(
        &self,
        tenant: &str,
        request: RemoveSuppressionRequest,
    ) -> Result<RemoveSuppressionResponse, Error> {
        let id = resource_id(&request.name, "suppressions", "name")?;
        if suppressions::remove(self.service.db(), tenant, id).await? {
            Ok(RemoveSuppressionResponse {})
        } else {
            Err(Error::NotFound(request.name))
        }
    }

    pub(super) async fn list_suppressions(
        &self,
        tenant: &str,
        request: ListSuppressionsRequest,
    ) -> Result<ListSuppressionsResponse, Error> {
        let mut violations = Vec::new();
        let address = match &request.address {
            Some(address) => match normalise_address(address, "address") {
                Ok((kind, value)) => Some(format!("{kind}:{value}")),
                Err(Error::InvalidArgument(found)) => {
                    violations.extend(found);
                    None
                }
                Err(error) => return Err(error),
            },
            None => None,
        };
        for (index, reason) in request.reasons.iter().enumerate() {
            if !matches!(SuppressionReason::try_from(*reason), Ok(r) if r != SuppressionReason::Unspecified)
            {
                violations.push(FieldViolation::new(
                    format!("reasons[{index}]"),
                    "unknown reason",
                ));
            }
        }
        let size = page_size(request.page_size)?;
        Error::unless_valid(violations)?;
        let filters = format!("{address:?}|{:?}", request.reasons);
        let after = PageToken::decode(&request.page_token, &filters)
            .map_err(|message| Error::invalid("page_token", message))?;
        let (rows, next) = suppressions::list(
            self.service.db(),
            tenant,
            address.as_deref(),
            &request.reasons,
            after.as_ref(),
            size,
        )
        .await?;
        Ok(ListSuppressionsResponse {
            suppressions: rows.iter().map(SuppressionRow::to_proto).collect(),
            next_page_token: next.map(|token| token.encode(&filters)).unwrap_or_default(),
        })
    }

    pub(super) async fn get_contact_policy(
        &self,
        tenant: &str,
        request: GetContactPolicyRequest,
    ) -> Result<GetContactPolicyResponse, Error> {
        if request.name != POLICY_NAME {
            return Err(Error::invalid("name", "must be contactPolicy"));
        }
        Ok(GetContactPolicyResponse {
            contact_policy: Some(policies::get(self.service.db(), tenant).await?),
        })
    }

    pub(super) async fn update_contact_policy(
        &self,
        tenant: &str,
        request: UpdateContactPolicyRequest,
    ) -> Result<UpdateContactPolicyResponse, Error> {
        let given = request
            .contact_policy
            .ok_or_else(|| Error::invalid("contact_policy", "is required"))?;
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .filter(|paths| !paths.is_empty())
            .ok_or_else(|| Error::invalid("update_mask", "is required"))?;
        let db = self.service.db();
        let mut policy = policies::get(db, tenant).await?;
        if !given.etag.is_empty() && given.etag != policy.etag {
            return Err(Error::Aborted(
                "the contact policy changed since it was read (stale etag)".to_owned(),
            ));
        }
        let revision: i64 = policy.etag.parse().unwrap_or(0);
        let mut violations = Vec::new();
        for path in &paths {
            match path.as_str() {
                "default_budget" => {
                    if let Some(budget) = &given.default_budget {
                        check_budget(budget, "contact_policy.default_budget", &mut violations);
                    }
                    policy.default_budget = given.default_budget.clone();
                }
                "budget_exempt_purposes" => {
                    purposes(
                        &given.budget_exempt_purposes,
                        "contact_policy.budget_exempt_purposes",
                        &mut violations,
                    );
                    policy.budget_exempt_purposes = given.budget_exempt_purposes.clone();
                }
                "default_quiet_hours" => {
                    if let Some(window) = &given.default_quiet_hours {
                        check_window(
                            window,
                            "contact_policy.default_quiet_hours",
                            &mut violations,
                        );
                    }
                    policy.default_quiet_hours = given.default_quiet_hours.clone();
                }
                "quiet_hours_bypass_purposes" => {
                    purposes(
                        &given.quiet_hours_bypass_purposes,
                        "contact_policy.quiet_hours_bypass_purposes",
                        &mut violations,
                    );
                    policy.quiet_hours_bypass_purposes = given.quiet_hours_bypass_purposes.clone();
                }
                "unknown_consent_rules" => {
                    for (index, rule) in given.unknown_consent_rules.iter().enumerate() {
                        if !matches!(Purpose::try_from(rule.purpose), Ok(p) if p != Purpose::Unspecified)
                        {
                            violations.push(FieldViolation::new(
                                format!("contact_policy.unknown_consent_rules[{index}].purpose"),
                                "unknown purpose",
                            ));
                        }
                    }
                    policy.unknown_consent_rules = given.unknown_consent_rules.clone();
                }
                other => violations.push(FieldViolation::new(
                    "update_mask",
                    format!("{other:?} is not a field of the contact policy that can be changed"),
                )),
            }
        }
        Error::unless_valid(violations)?;
        let stored = policies::put(db, tenant, &policy, revision).await?;
        self.service.forget_policy(tenant);
        if !stored {
            return Err(Error::Aborted(
                "the contact policy changed concurrently; read it again".to_owned(),
            ));
        }
        Ok(UpdateContactPolicyResponse {
            contact_policy: Some(policies::get(db, tenant).await?),
        })
    }

    pub(super) async fn get_contact_budget_usage(
        &self,
        tenant: &str,
        request: GetContactBudgetUsageRequest,
    ) -> Result<GetContactBudgetUsageResponse, Error> {
        resource_id(&request.profile, "profiles", "profile")?;
        let db = self.service.db();
        let policy = self.service.policy(tenant).await?;
        let recipient = Recipient {
            recipient: Some(
                throughline_proto::distribution::v1::recipient::Recipient::Profile(
                    request.profile.clone(),
                ),
            ),
            ..Recipient::default()
        };
        let audience = recipient::resolve(&self.service.peers, tenant, &recipient).await?;
        let budget = audience
            .budget
            .clone()
            .or_else(|| policy.default_budget.clone())
            .unwrap_or_default();
        let now = DateTime::<Utc>::from_timestamp_micros(now_us()).unwrap_or_default();
        let mut limits = Vec::with_capacity(budget.limits.len());
        for limit in budget.limits {
            let (period_start, end) = period_of(&limit, audience.zone, now);
            let used = budget::used(
                db,
                tenant,
                &audience.budget_holder,
                &limit_key(&limit),
                period_start,
            )
            .await?;
            limits.push(ContactLimitUsage {
                limit: Some(limit),
                used,
                period_end_time: Some(timestamp(end.timestamp_micros())),
            });
        }
        Ok(GetContactBudgetUsageResponse {
            usage: Some(ContactBudgetUsage {
                profile: audience.profile,
                limits,
            }),
        })
    }

    pub(super) async fn list_providers(
        &self,
        tenant: &str,
        request: ListProvidersRequest,
    ) -> Result<ListProvidersResponse, Error> {
        let channel = Channel::try_from(request.channel)
            .map_err(|_| Error::invalid("channel", "unknown channel"))?;
        // The tenant's own messages only: other tenants' volumes are theirs.
        let (queued_by_channel, dead_by_provider) =
            crate::store::messages::queue_stats(self.service.db(), tenant).await?;
        let providers = self
            .service
            .delivery
            .providers
            .iter()
            .filter(|state| {
                channel == Channel::Unspecified || state.provider.channels.contains(&channel)
            })
            .map(|state| {
                let provider = &state.provider;
                let queued = provider
                    .channels
                    .iter()
                    .filter_map(|c| queued_by_channel.get(&(*c as i32)))
                    .sum();
                let dead = dead_by_provider.get(&provider.name).copied().unwrap_or(0);
                Provider {
                    name: format!("providers/{}", provider.name),
                    kind: provider.kind.clone(),
                    channels: provider.channels.iter().map(|c| *c as i32).collect(),
                    priority: provider.priority,
                    rate_limit: provider.rate_limit,
                    health: state.health() as i32,
                    queued_count: queued,
                    dead_letter_count: dead,
                }
            })
            .collect();
        Ok(ListProvidersResponse { providers })
    }
}
