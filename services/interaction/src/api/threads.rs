//! Thread RPCs. Create, resolve and reopen take an AIP-155 `request_id`: the first result is
//! replayed to retries (24 hours), the same key with a different request is INVALID_ARGUMENT.

use futures::FutureExt;
use throughline_proto::interaction::v1::{
    CreateThreadRequest, CreateThreadResponse, GetThreadRequest, GetThreadResponse,
    ListThreadsRequest, ListThreadsResponse, ReopenThreadRequest, ReopenThreadResponse,
    ResolveThreadRequest, ResolveThreadResponse, ThreadState, UpdateThreadRequest,
    UpdateThreadResponse,
};
use throughline_runtime::idempotency::Key;
use throughline_runtime::{Error, FieldViolation};

use super::{Api, customer_key, page_size, resource_id};
use crate::customer::is_resource_id;
use crate::store::threads::{self, Changes, NewThread};
use crate::time::PageToken;
use crate::validate::{attributes, text};

fn display_name(value: &str, field: &str) -> Option<FieldViolation> {
    if value.trim().is_empty() {
        return Some(FieldViolation::new(field, "required"));
    }
    text(field, value).map(|v| v.runtime(""))
}

impl Api {
    pub(super) async fn create_thread(
        &self,
        tenant: String,
        request: CreateThreadRequest,
    ) -> Result<CreateThreadResponse, Error> {
        let Some(thread) = request.thread.as_ref() else {
            return Err(Error::invalid("thread", "required"));
        };
        let customer = customer_key(thread.customer.as_ref(), "thread.customer")?;
        let mut violations = Vec::new();
        violations.extend(display_name(&thread.display_name, "thread.display_name"));
        for (field, value) in [
            ("thread.reason", &thread.reason),
            ("thread.current_step", &thread.current_step),
        ] {
            violations.extend(text(field, value).map(|v| v.runtime("")));
        }
        let attributes = match attributes("thread.attributes", thread.attributes.as_ref()) {
            Ok(bytes) => bytes,
            Err(violation) => {
                violations.push(violation.runtime(""));
                None
            }
        };
        if !request.thread_id.is_empty() && !is_resource_id(&request.thread_id) {
            violations.push(FieldViolation::new(
                "thread_id",
                "1 to 128 letters, digits, '-', '_' or '.'",
            ));
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let resolved = self
            .service
            .resolver
            .resolve(&tenant, std::slice::from_ref(&customer))
            .await?
            .into_iter()
            .next()
            .flatten();
        let timeline = self.timeline(&tenant, &customer).await?;
        let id = if request.thread_id.is_empty() {
            uuid::Uuid::now_v7().simple().to_string()
        } else {
            request.thread_id.clone()
        };
        let new_thread = NewThread {
            id,
            customer,
            profile: resolved.unwrap_or_default(),
            timeline,
            display_name: thread.display_name.clone(),
            reason: thread.reason.clone(),
            current_step: thread.current_step.clone(),
            attributes,
        };
        let owner = tenant.clone();
        self.idempotent(
            &tenant,
            "CreateThread",
            &request.request_id,
            &request,
            move |transaction| {
                async move {
                    let thread = threads::create(transaction, &owner, new_thread).await?;
                    Ok(CreateThreadResponse {
                        thread: Some(thread),
                    })
                }
                .boxed()
            },
        )
        .await
    }

    /// Runs `work` in a transaction, once per `request_id` when one is given.
    async fn idempotent<Req, Res, F>(
        &self,
        tenant: &str,
        method: &str,
        request_id: &str,
        request: &Req,
        work: F,
    ) -> Result<Res, Error>
    where
        Req: prost::Message,
        Res: prost::Message + Default,
        F: for<'t> FnOnce(
            &'t sea_orm::DatabaseTransaction,
        ) -> futures::future::BoxFuture<'t, Result<Res, Error>>,
    {
        let db = &self.service.db;
        if request_id.is_empty() {
            let transaction = crate::store::write_transaction(db).await?;
            let response = work(&transaction).await?;
            transaction.commit().await?;
            return Ok(response);
        }
        let key = Key {
            tenant,
            method,
            request_id,
        };
        self.service.idempotency.run(db, key, request, work).await
    }

    pub(super) async fn get_thread(
        &self,
        tenant: &str,
        request: GetThreadRequest,
    ) -> Result<GetThreadResponse, Error> {
        let id = resource_id(&request.name, "threads", "name")?;
        match threads::get(&self.service.db, tenant, id).await? {
            Some(thread) => Ok(GetThreadResponse {
                thread: Some(thread),
            }),
            None => Err(threads::not_found(id)),
        }
    }
}

impl Api {
    pub(super) async fn update_thread(
        &self,
        tenant: &str,
        request: UpdateThreadRequest,
    ) -> Result<UpdateThreadResponse, Error> {
        let Some(thread) = request.thread else {
            return Err(Error::invalid("thread", "required"));
        };
        let id = resource_id(&thread.name, "threads", "thread.name")?;
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "required: the fields to update",
            ));
        }
        let mut changes = Changes::default();
        let mut violations = Vec::new();
        let all = paths.iter().any(|path| path == "*");
        for (index, path) in paths.iter().enumerate() {
            match path.as_str() {
                "*" | "display_name" | "reason" | "current_step" | "attributes" => {}
                _ => violations.push(FieldViolation::new(
                    format!("update_mask.paths[{index}]"),
                    "not updatable: display_name, reason, current_step or attributes",
                )),
            }
        }
        let masked = |field: &str| all || paths.iter().any(|path| path == field);
        if masked("display_name") {
            violations.extend(display_name(&thread.display_name, "thread.display_name"));
            changes.display_name = Some(thread.display_name.clone());
        }
        if masked("reason") {
            violations.extend(text("thread.reason", &thread.reason).map(|v| v.runtime("")));
            changes.reason = Some(thread.reason.clone());
        }
        if masked("current_step") {
            violations
                .extend(text("thread.current_step", &thread.current_step).map(|v| v.runtime("")));
            changes.current_step = Some(thread.current_step.clone());
        }
        if masked("attributes") {
            match attributes("thread.attributes", thread.attributes.as_ref()) {
                Ok(bytes) => changes.attributes = Some(bytes),
                Err(violation) => violations.push(violation.runtime("")),
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let updated = threads::update(&self.service.db, tenant, id, changes, &thread.etag).await?;
        Ok(UpdateThreadResponse {
            thread: Some(updated),
        })
    }

    pub(super) async fn resolve_thread(
        &self,
        tenant: String,
        request: ResolveThreadRequest,
    ) -> Result<ResolveThreadResponse, Error> {
        let id = resource_id(&request.name, "threads", "name")?.to_owned();
        if let Some(violation) = text("resolution", &request.resolution) {
            return Err(Error::InvalidArgument(vec![violation.runtime("")]));
        }
        let (owner, resolution) = (tenant.clone(), request.resolution.clone());
        self.idempotent(
            &tenant,
            "ResolveThread",
            &request.request_id,
            &request,
            move |transaction| {
                async move {
                    let thread = threads::resolve(transaction, &owner, &id, &resolution).await?;
                    Ok(ResolveThreadResponse {
                        thread: Some(thread),
                    })
                }
                .boxed()
            },
        )
        .await
    }

    pub(super) async fn reopen_thread(
        &self,
        tenant: String,
        request: ReopenThreadRequest,
    ) -> Result<ReopenThreadResponse, Error> {
        let id = resource_id(&request.name, "threads", "name")?.to_owned();
        let owner = tenant.clone();
        self.idempotent(
            &tenant,
            "ReopenThread",
            &request.request_id,
            &request,
            move |transaction| {
                async move {
                    let thread = threads::reopen(transaction, &owner, &id).await?;
                    Ok(ReopenThreadResponse {
                        thread: Some(thread),
                    })
                }
                .boxed()
            },
        )
        .await
    }

    pub(super) async fn list_threads(
        &self,
        tenant: &str,
        request: ListThreadsRequest,
    ) -> Result<ListThreadsResponse, Error> {
        let customer = customer_key(request.customer.as_ref(), "customer")?;
        for (index, state) in request.states.iter().enumerate() {
            if !matches!(ThreadState::try_from(*state), Ok(s) if s != ThreadState::Unspecified) {
                return Err(Error::invalid(
                    format!("states[{index}]"),
                    "unknown thread state",
                ));
            }
        }
        let page_size = page_size(request.page_size)?;
        let timeline = self.timeline(tenant, &customer).await?;
        let filters = format!("{timeline}|{:?}", request.states);
        let after = PageToken::decode(&request.page_token, &filters)
            .map_err(|message| Error::invalid("page_token", message))?;
        let (threads, next) = threads::list(
            &self.service.db,
            tenant,
            &timeline,
            &request.states,
            after.as_ref(),
            page_size,
        )
        .await?;
        Ok(ListThreadsResponse {
            threads,
            next_page_token: next.map(|t| t.encode(&filters)).unwrap_or_default(),
        })
    }
}
