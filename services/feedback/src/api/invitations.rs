//! Invitation RPCs: RequestFeedback with the fatigue rule and the contact budget, and reading
//! invitations.

use futures::FutureExt;
use throughline_proto::feedback::v1::*;
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::idempotency::Key;
use throughline_runtime::request::{page_size, resource_id};
use throughline_runtime::time::{PageToken, next_page, timestamp_us};
use throughline_runtime::{Error, FieldViolation};

use super::{Api, violations_of};
use crate::context::{self, is_language};
use crate::invite::{Invite, check_delivery, invite};
use crate::store::invitations::{self, ListFilter};

impl Api {
    pub(super) async fn request_feedback(
        &self,
        tenant: &str,
        request: RequestFeedbackRequest,
    ) -> Result<RequestFeedbackResponse, Error> {
        let mut violations: Vec<FieldViolation> = Vec::new();
        let survey_id = match resource_id(&request.survey, "surveys", "survey") {
            Ok(id) => Some(id.to_owned()),
            Err(Error::InvalidArgument(found)) => {
                violations.extend(found);
                None
            }
            Err(other) => return Err(other),
        };
        let customer = match CustomerKey::parse(request.customer.as_ref(), "customer") {
            Ok(customer) => Some(customer),
            Err(found) => {
                violations.extend(found);
                None
            }
        };
        let context = request.context.clone().unwrap_or_default();
        violations.extend(context::check(&context, "context"));
        if let Some(delivery) = &request.delivery {
            violations.extend(check_delivery(delivery));
        }
        if !request.language.is_empty() && !is_language(&request.language) {
            violations.push(FieldViolation::new(
                "language",
                "a BCP-47 tag such as en or fr-CA",
            ));
        }
        if request.request_id.is_empty() {
            violations.push(FieldViolation::new(
                "request_id",
                "is required: invitations must never repeat",
            ));
        }
        Error::unless_valid(violations)?;
        let (Some(survey_id), Some(customer)) = (survey_id, customer) else {
            return Err(Error::internal(
                "a checked request lacks its survey or customer",
            ));
        };
        let profile = self.resolve(tenant, &customer).await?;
        let checked = Invite {
            survey_id,
            customer,
            profile,
            context,
            delivery: request.delivery.clone(),
            language: request.language.clone(),
            request_id: request.request_id.clone(),
        };
        let service = self.service.clone();
        let owner = tenant.to_owned();
        let key = Key {
            tenant,
            method: "RequestFeedback",
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(&self.service.db, key, &request, move |transaction| {
                async move {
                    let invitation = invite(&service, transaction, &owner, checked).await?;
                    Ok(RequestFeedbackResponse {
                        invitation: Some(invitation),
                    })
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn get_invitation(
        &self,
        tenant: &str,
        request: GetInvitationRequest,
    ) -> Result<GetInvitationResponse, Error> {
        let id = resource_id(&request.name, "invitations", "name")?;
        let found = invitations::find(
            &self.service.db,
            tenant,
            id,
            &self.service.options.survey_base_url,
        )
        .await?
        .ok_or_else(|| Error::NotFound(request.name.clone()))?;
        Ok(GetInvitationResponse {
            invitation: Some(found.invitation),
        })
    }

    pub(super) async fn list_invitations(
        &self,
        tenant: &str,
        request: ListInvitationsRequest,
    ) -> Result<ListInvitationsResponse, Error> {
        let mut violations = Vec::new();
        let mut filter = ListFilter::default();
        if !request.survey.is_empty() {
            match resource_id(&request.survey, "surveys", "survey") {
                Ok(id) => filter.survey_id = Some(id.to_owned()),
                Err(Error::InvalidArgument(found)) => violations.extend(found),
                Err(other) => return Err(other),
            }
        }
        if request.customer.is_some() {
            match CustomerKey::parse(request.customer.as_ref(), "customer") {
                Ok(customer) => filter.customer = Some(customer),
                Err(found) => violations.extend(found),
            }
        }
        for (index, state) in request.states.iter().enumerate() {
            match InvitationState::try_from(*state) {
                Ok(state) if state != InvitationState::Unspecified => {
                    filter.states.push(state as i32);
                }
                _ => violations.push(FieldViolation::new(
                    format!("states[{index}]"),
                    format!("unknown invitation state {state}"),
                )),
            }
        }
        let size =
            page_size(request.page_size).map_err(|error| violations_of(error, &mut violations));
        let fingerprint = format!(
            "{:?}",
            (&filter.survey_id, &filter.customer, &filter.states)
        );
        let token =
            PageToken::decode(&request.page_token, &fingerprint).unwrap_or_else(|problem| {
                violations.push(FieldViolation::new("page_token", problem));
                None
            });
        Error::unless_valid(violations)?;
        let size = size.unwrap_or_default();
        let mut rows = invitations::list(
            &self.service.db,
            tenant,
            &filter,
            token.as_ref(),
            size + 1,
            &self.service.options.survey_base_url,
        )
        .await?;
        let next = next_page(&mut rows, size, |row| PageToken {
            sort_us: row
                .invitation
                .create_time
                .as_ref()
                .and_then(timestamp_us)
                .unwrap_or_default(),
            id: row.id.clone(),
        });
        Ok(ListInvitationsResponse {
            invitations: rows.into_iter().map(|row| row.invitation).collect(),
            next_page_token: next
                .map(|token| token.encode(&fingerprint))
                .unwrap_or_default(),
        })
    }
}
