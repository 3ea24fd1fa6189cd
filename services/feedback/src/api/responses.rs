//! Response RPCs: SubmitResponse (idempotent; partial answers kept) and reading responses.

use futures::FutureExt;
use prost::Message;
use throughline_proto::feedback::v1::*;
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::idempotency::{Key, request_hash};
use throughline_runtime::request::{channels, page_size, resource_id};
use throughline_runtime::time::{PageToken, next_page, timestamp_us};
use throughline_runtime::{Error, FieldViolation};

use super::{Api, violations_of};
use crate::grouped::{self, Submission};
use crate::store::responses::{self, ListFilter};
use crate::submit::{Respondent, check_input, prepare, submit};

impl Api {
    pub(super) async fn submit_response(
        &self,
        tenant: &str,
        request: SubmitResponseRequest,
    ) -> Result<SubmitResponseResponse, Error> {
        let Some(input) = request.response.clone() else {
            return Err(Error::invalid("response", "is required"));
        };
        let mut violations = check_input(&input);
        if request.request_id.is_empty() {
            violations.push(FieldViolation::new(
                "request_id",
                "is required: a retried submission must not count twice",
            ));
        }
        let customer = if input.invitation.is_empty() {
            match CustomerKey::parse(input.customer.as_ref(), "response.customer") {
                Ok(customer) => Some(customer),
                Err(found) => {
                    violations.extend(found);
                    None
                }
            }
        } else {
            None
        };
        Error::unless_valid(violations)?;
        let respondent = match customer {
            Some(customer) => Some(Respondent {
                profile: self.resolve(tenant, &customer).await?,
                customer,
            }),
            None => None,
        };
        if input.invitation.is_empty()
            && let Some(written) = self
                .submit_grouped(tenant, &request, input.clone(), respondent.clone())
                .await?
        {
            return Ok(written);
        }
        let service = self.service.clone();
        let owner = tenant.to_owned();
        let key = Key {
            tenant,
            method: grouped::METHOD,
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(&self.service.db, key, &request, move |transaction| {
                async move {
                    let response = submit(&service, transaction, &owner, input, respondent).await?;
                    Ok(SubmitResponseResponse {
                        response: Some(response),
                    })
                }
                .boxed()
            })
            .await
    }

    /// An uninvited submission written together with others arriving at the same time, or
    /// `None` when it must go the usual way: its key was taken (a retry), or it fails before
    /// anything is written, and the usual way replays a stored result before failing it.
    async fn submit_grouped(
        &self,
        tenant: &str,
        request: &SubmitResponseRequest,
        input: Response,
        respondent: Option<Respondent>,
    ) -> Result<Option<SubmitResponseResponse>, Error> {
        let service = &self.service;
        let prepared = match prepare(service, &service.db, tenant, input, respondent).await {
            Ok(prepared) if prepared.only_inserts() => prepared,
            _ => return Ok(None),
        };
        let reply = SubmitResponseResponse {
            response: Some(prepared.stored.response.clone()),
        };
        let written = service
            .submissions()
            .load(Submission {
                tenant: tenant.to_owned(),
                request_id: request.request_id.clone(),
                request_hash: request_hash(request),
                reply: reply.encode_to_vec(),
                prepared,
            })
            .await
            .map_err(|status| Error::Unavailable(status.message().to_owned()))?;
        Ok(written.then_some(reply))
    }

    pub(super) async fn get_response(
        &self,
        tenant: &str,
        request: GetResponseRequest,
    ) -> Result<GetResponseResponse, Error> {
        let id = resource_id(&request.name, "responses", "name")?;
        let found = responses::find(&self.service.db, tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(request.name.clone()))?;
        Ok(GetResponseResponse {
            response: Some(found.response),
        })
    }

    pub(super) async fn list_responses(
        &self,
        tenant: &str,
        request: ListResponsesRequest,
    ) -> Result<ListResponsesResponse, Error> {
        let mut violations = Vec::new();
        let mut filter = ListFilter {
            detractors_only: request.detractors_only,
            include_partial: request.include_partial,
            ..ListFilter::default()
        };
        if !request.survey.is_empty() {
            filter.survey_id = resource_id(&request.survey, "surveys", "survey")
                .map_err(|error| violations_of(error, &mut violations))
                .ok()
                .map(str::to_owned);
        }
        if request.customer.is_some() {
            filter.customer = CustomerKey::parse(request.customer.as_ref(), "customer")
                .map_err(|found| violations.extend(found))
                .ok();
        }
        if let Some(range) = &request.time_range {
            filter.start_us = range.start_time.as_ref().and_then(timestamp_us);
            filter.end_us = range.end_time.as_ref().and_then(timestamp_us);
        }
        filter.channels = channels(&request.channels, "channels")
            .map_err(|error| violations_of(error, &mut violations))
            .unwrap_or_default();
        if !request.touchpoint.is_empty() {
            filter.touchpoint = Some(request.touchpoint.clone());
        }
        if !request.journey.is_empty() {
            filter.journey = resource_id(&request.journey, "journeys", "journey")
                .map_err(|error| violations_of(error, &mut violations))
                .ok()
                .map(|_| request.journey.clone());
        }
        let size = page_size(request.page_size)
            .map_err(|error| violations_of(error, &mut violations))
            .unwrap_or_default();
        let fingerprint = format!("{filter:?}");
        let token =
            PageToken::decode(&request.page_token, &fingerprint).unwrap_or_else(|problem| {
                violations.push(FieldViolation::new("page_token", problem));
                None
            });
        Error::unless_valid(violations)?;
        let mut rows =
            responses::list(&self.service.db, tenant, &filter, token.as_ref(), size + 1).await?;
        let next = next_page(&mut rows, size, |row| PageToken {
            sort_us: row
                .response
                .update_time
                .as_ref()
                .and_then(timestamp_us)
                .unwrap_or_default(),
            id: row.id.clone(),
        });
        Ok(ListResponsesResponse {
            responses: rows.into_iter().map(|row| row.response).collect(),
            next_page_token: next
                .map(|token| token.encode(&fingerprint))
                .unwrap_or_default(),
        })
    }
}
