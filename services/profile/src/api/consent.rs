//! SetConsent, CheckConsent, ListConsentHistory.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use throughline_proto::common::v1::ConsentStatus;
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::profile::v1::*;
use tonic::{Request, Status};

use super::{Api, caller, work};
use crate::consent;
use crate::error::{Error, Result, Violations};
use crate::identity;
use crate::store::{self, PROFILES};
use crate::validate;

impl Api {
    pub(super) async fn set_consent_(
        &self,
        request: Request<SetConsentRequest>,
    ) -> Result<SetConsentResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        let id = store::parse_name(&request.profile, PROFILES, "profile");
        if id.is_err() {
            violations.add("profile", "must be a profile name `profiles/{id}`");
        }
        match &request.consent {
            None => violations.add("consent", "required"),
            Some(decision) => consent::validate(decision, "consent", &mut violations),
        }
        violations.into_result()?;
        let id = id?.to_owned();
        let decision = request.consent.clone().unwrap_or_default();
        let tenant = caller.tenant.clone();
        let subject = caller.subject.clone();
        self.write(
            &caller,
            "SetConsent",
            &request.request_id,
            &request,
            work!(|tx| {
                let (tenant, subject, id, decision) = (
                    tenant.clone(),
                    subject.clone(),
                    id.clone(),
                    decision.clone(),
                );
                async move {
                    store::require_active(tx, &tenant, &id).await?;
                    let row = consent::record(tx, &tenant, &id, &decision, &subject).await?;
                    Ok(SetConsentResponse {
                        consent: Some(store::consent_proto(&row)),
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn check_consent_(
        &self,
        request: Request<CheckConsentRequest>,
    ) -> Result<CheckConsentResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        if !consent::is_contact_channel(request.channel) {
            violations.add(
                "channel",
                "one of EMAIL, SMS, PUSH, WHATSAPP, PHONE, MAIL, IN_APP",
            );
        }
        if !validate::valid_purpose(request.purpose) {
            violations.add("purpose", "MARKETING, SERVICE or SURVEY");
        }
        let db = &self.service.db;
        let customer = request.customer.and_then(|c| c.customer);
        let profile_id = match customer {
            None => {
                violations.add("customer", "required: a profile or an identifier");
                violations.into_result()?;
                return Err(Error::invalid("customer", "required").into());
            }
            Some(Customer::Profile(name)) => {
                let id = store::parse_name(&name, PROFILES, "customer.profile");
                if id.is_err() {
                    violations.add("customer.profile", "must be a profile name `profiles/{id}`");
                }
                violations.into_result()?;
                Some(self.follow(&caller.tenant, id?).await?)
            }
            Some(Customer::Identifier(identifier)) => {
                let key = identity::normalise(&identifier, "customer.identifier", &mut violations);
                violations.into_result()?;
                let Some(key) = key else {
                    return Err(Error::invalid("customer.identifier", "invalid").into());
                };
                // The fast path: identifier, profile and newest decision in one (shared) query.
                let query = store::ConsentQuery {
                    key,
                    channel: request.channel,
                    purpose: request.purpose,
                };
                let found = self.service.hot.consent(&caller.tenant, query).await?;
                return Ok(match found {
                    None => CheckConsentResponse {
                        status: ConsentStatus::Unknown as i32,
                        consent: None,
                        profile: String::new(),
                    },
                    Some((holder, current)) => CheckConsentResponse {
                        status: current
                            .as_ref()
                            .map_or(ConsentStatus::Unknown as i32, |r| r.status),
                        consent: current.as_ref().map(store::consent_proto),
                        profile: store::profile_name(&holder),
                    },
                });
            }
        };
        let Some(profile_id) = profile_id else {
            return Ok(CheckConsentResponse {
                status: ConsentStatus::Unknown as i32,
                consent: None,
                profile: String::new(),
            });
        };
        let current = consent::current(
            db,
            &caller.tenant,
            &profile_id,
            request.channel,
            request.purpose,
        )
        .await?;
        Ok(CheckConsentResponse {
            status: current
                .as_ref()
                .map_or(ConsentStatus::Unknown as i32, |r| r.status),
            consent: current.as_ref().map(store::consent_proto),
            profile: store::profile_name(&profile_id),
        })
    }

    /// The profile a name stands for today: a merged profile's consent lives on the profile
    /// it was merged into.
    async fn follow(&self, tenant: &str, id: &str) -> Result<String> {
        let db = &self.service.db;
        let mut row = store::require_profile(db, tenant, id, false).await?;
        for _ in 0..16 {
            match &row.merged_into {
                Some(next) => row = store::require_profile(db, tenant, next, false).await?,
                None => break,
            }
        }
        Ok(row.id)
    }

    pub(super) async fn consent_history(
        &self,
        request: Request<ListConsentHistoryRequest>,
    ) -> Result<ListConsentHistoryResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = store::parse_name(&request.profile, PROFILES, "profile")?;
        let page_size = validate::page_size(request.page_size, 100, 1000)?;
        let before: Option<i64> = if request.page_token.is_empty() {
            None
        } else {
            Some(
                request
                    .page_token
                    .parse()
                    .map_err(|_| Error::invalid("page_token", "not a token of this listing"))?,
            )
        };
        let mut violations = Violations::default();
        if request.channel != 0 && !consent::is_contact_channel(request.channel) {
            violations.add("channel", "a contact channel, or unset for all");
        }
        if request.purpose != 0 && !validate::valid_purpose(request.purpose) {
            violations.add("purpose", "a purpose, or unset for all");
        }
        violations.into_result()?;
        let db = &self.service.db;
        store::require_profile(db, &caller.tenant, id, false).await?;
        let mut query = store::consent::Entity::find()
            .filter(store::consent::Column::Tenant.eq(&caller.tenant))
            .filter(store::consent::Column::ProfileId.eq(id));
        if request.channel != 0 {
            query = query.filter(store::consent::Column::Channel.eq(request.channel));
        }
        if request.purpose != 0 {
            query = query.filter(store::consent::Column::Purpose.eq(request.purpose));
        }
        if let Some(before) = before {
            query = query.filter(store::consent::Column::Id.lt(before));
        }
        let rows = query
            .order_by_desc(store::consent::Column::Id)
            .limit(page_size + 1)
            .all(db)
            .await
            .map_err(Error::from)?;
        let more = rows.len() as u64 > page_size;
        let page: Vec<_> = rows.into_iter().take(page_size as usize).collect();
        Ok(ListConsentHistoryResponse {
            next_page_token: match (more, page.last()) {
                (true, Some(last)) => last.id.to_string(),
                _ => String::new(),
            },
            consents: page.iter().map(store::consent_proto).collect(),
        })
    }
}
