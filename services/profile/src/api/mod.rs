//! The gRPC adapter of the profile service: each handler checks its request, runs the rules
//! in one transaction (idempotent by `request_id` where the contract offers one) and answers.

mod consent;
mod identity;
mod privacy;
mod profiles;
mod segments;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use prost::Message;
use sea_orm::{DatabaseTransaction, TransactionTrait};
use throughline_proto::profile::v1::profile_service_server::ProfileService;
use throughline_proto::profile::v1::*;
use throughline_runtime::auth::Principal;
use throughline_runtime::idempotency::{Idempotency, Key};
use tonic::{Request, Response, Status};

use crate::Service;
use crate::error::{Base, Error, Result};

/// How often a write that lost a race with a concurrent writer is tried again.
const ATTEMPTS: u32 = 8;

/// Implements `ProfileService`.
#[derive(Debug, Clone)]
pub struct Api {
    service: Service,
    idempotency: Idempotency,
}

impl Api {
    pub fn new(service: Service) -> Self {
        Self {
            service,
            idempotency: Idempotency::new(crate::NAME),
        }
    }
}

/// Who calls, for the handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: String,
    pub subject: String,
}

pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    let principal: &Principal = throughline_runtime::auth::principal(request)?;
    Ok(Caller {
        tenant: principal.tenant.clone(),
        subject: principal.subject.clone(),
    })
}

/// The work of one write: called with a fresh transaction on every attempt.
pub type Work<Res> =
    Arc<dyn for<'t> Fn(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Res>> + Send + Sync>;

impl Api {
    /// Runs `work` in a transaction, retried while it loses races with concurrent writers;
    /// with a `request_id`, its first result is stored and replayed (AIP-155).
    pub async fn write<Req, Res>(
        &self,
        caller: &Caller,
        method: &str,
        request_id: &str,
        request: &Req,
        work: Work<Res>,
    ) -> Result<Res, Status>
    where
        Req: Message,
        Res: Message + Default + 'static,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = if request_id.is_empty() {
                self.once(work.clone()).await
            } else {
                self.idempotent(caller, method, request_id, request, work.clone())
                    .await
            };
            match result {
                Err(error) if error.is_retryable() && attempt < ATTEMPTS => {
                    // Jitter spreads the retries of writers that collided.
                    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 20;
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5 + jitter))
                        .await;
                }
                other => return other.map_err(Status::from),
            }
        }
    }

    async fn once<Res>(&self, work: Work<Res>) -> Result<Res> {
        let transaction = self.service.db.begin().await?;
        let response = work(&transaction).await?;
        transaction.commit().await?;
        Ok(response)
    }

    async fn idempotent<Req, Res>(
        &self,
        caller: &Caller,
        method: &str,
        request_id: &str,
        request: &Req,
        work: Work<Res>,
    ) -> Result<Res>
    where
        Req: Message,
        Res: Message + Default + 'static,
    {
        // The runtime's idempotency speaks the base error; the detailed one (with ErrorInfo
        // metadata) is kept aside and answered instead.
        let detailed: Arc<Mutex<Option<Error>>> = Arc::default();
        let slot = detailed.clone();
        let key = Key {
            tenant: &caller.tenant,
            method,
            request_id,
        };
        let result = self
            .idempotency
            .run(&self.service.db, key, request, move |transaction| {
                let work = work.clone();
                let slot = slot.clone();
                async move {
                    work(transaction).await.map_err(|error| match error {
                        Error::Base(base) => base,
                        other => {
                            let base = Base::Aborted(other.to_string());
                            if let Ok(mut slot) = slot.lock() {
                                *slot = Some(other);
                            }
                            base
                        }
                    })
                }
                .boxed()
            })
            .await;
        result.map_err(|base| {
            detailed
                .lock()
                .ok()
                .and_then(|mut slot| slot.take())
                .unwrap_or(Error::Base(base))
        })
    }
}

/// Shorthand for the boxed work of a write.
macro_rules! work {
    (|$tx:ident| $body:expr) => {
        std::sync::Arc::new(move |$tx: &sea_orm::DatabaseTransaction| {
            let fut = $body;
            futures::FutureExt::boxed(fut)
        })
    };
}
pub(crate) use work;

fn ok<T>(value: T) -> Result<Response<T>, Status> {
    Ok(Response::new(value))
}

#[tonic::async_trait]
impl ProfileService for Api {
    async fn create_profile(
        &self,
        r: Request<CreateProfileRequest>,
    ) -> Result<Response<CreateProfileResponse>, Status> {
        ok(self.create(r).await?)
    }
    async fn get_profile(
        &self,
        r: Request<GetProfileRequest>,
    ) -> Result<Response<GetProfileResponse>, Status> {
        ok(self.get(r).await?)
    }
    async fn update_profile(
        &self,
        r: Request<UpdateProfileRequest>,
    ) -> Result<Response<UpdateProfileResponse>, Status> {
        ok(self.update(r).await?)
    }
    async fn delete_profile(
        &self,
        r: Request<DeleteProfileRequest>,
    ) -> Result<Response<DeleteProfileResponse>, Status> {
        ok(self.delete(r).await?)
    }
    async fn list_profiles(
        &self,
        r: Request<ListProfilesRequest>,
    ) -> Result<Response<ListProfilesResponse>, Status> {
        ok(self.list(r).await?)
    }
    async fn upsert_profile(
        &self,
        r: Request<UpsertProfileRequest>,
    ) -> Result<Response<UpsertProfileResponse>, Status> {
        ok(self.upsert(r).await?)
    }
    async fn add_identifier(
        &self,
        r: Request<AddIdentifierRequest>,
    ) -> Result<Response<AddIdentifierResponse>, Status> {
        ok(self.add_identifier_(r).await?)
    }
    async fn remove_identifier(
        &self,
        r: Request<RemoveIdentifierRequest>,
    ) -> Result<Response<RemoveIdentifierResponse>, Status> {
        ok(self.remove_identifier_(r).await?)
    }
    async fn resolve_identity(
        &self,
        r: Request<ResolveIdentityRequest>,
    ) -> Result<Response<ResolveIdentityResponse>, Status> {
        ok(self.resolve(r).await?)
    }
    async fn merge_profiles(
        &self,
        r: Request<MergeProfilesRequest>,
    ) -> Result<Response<MergeProfilesResponse>, Status> {
        ok(self.merge(r).await?)
    }
    async fn unmerge_profiles(
        &self,
        r: Request<UnmergeProfilesRequest>,
    ) -> Result<Response<UnmergeProfilesResponse>, Status> {
        ok(self.unmerge(r).await?)
    }
    async fn get_merge_event(
        &self,
        r: Request<GetMergeEventRequest>,
    ) -> Result<Response<GetMergeEventResponse>, Status> {
        ok(self.get_merge(r).await?)
    }
    async fn list_merge_events(
        &self,
        r: Request<ListMergeEventsRequest>,
    ) -> Result<Response<ListMergeEventsResponse>, Status> {
        ok(self.list_merges(r).await?)
    }
    async fn set_consent(
        &self,
        r: Request<SetConsentRequest>,
    ) -> Result<Response<SetConsentResponse>, Status> {
        ok(self.set_consent_(r).await?)
    }
    async fn check_consent(
        &self,
        r: Request<CheckConsentRequest>,
    ) -> Result<Response<CheckConsentResponse>, Status> {
        ok(self.check_consent_(r).await?)
    }
    async fn list_consent_history(
        &self,
        r: Request<ListConsentHistoryRequest>,
    ) -> Result<Response<ListConsentHistoryResponse>, Status> {
        ok(self.consent_history(r).await?)
    }
    async fn create_segment(
        &self,
        r: Request<CreateSegmentRequest>,
    ) -> Result<Response<CreateSegmentResponse>, Status> {
        ok(self.create_segment_(r).await?)
    }
    async fn get_segment(
        &self,
        r: Request<GetSegmentRequest>,
    ) -> Result<Response<GetSegmentResponse>, Status> {
        ok(self.get_segment_(r).await?)
    }
    async fn list_segments(
        &self,
        r: Request<ListSegmentsRequest>,
    ) -> Result<Response<ListSegmentsResponse>, Status> {
        ok(self.list_segments_(r).await?)
    }
    async fn update_segment(
        &self,
        r: Request<UpdateSegmentRequest>,
    ) -> Result<Response<UpdateSegmentResponse>, Status> {
        ok(self.update_segment_(r).await?)
    }
    async fn delete_segment(
        &self,
        r: Request<DeleteSegmentRequest>,
    ) -> Result<Response<DeleteSegmentResponse>, Status> {
        ok(self.delete_segment_(r).await?)
    }
    async fn list_segment_members(
        &self,
        r: Request<ListSegmentMembersRequest>,
    ) -> Result<Response<ListSegmentMembersResponse>, Status> {
        ok(self.segment_members(r).await?)
    }
    async fn check_segment_membership(
        &self,
        r: Request<CheckSegmentMembershipRequest>,
    ) -> Result<Response<CheckSegmentMembershipResponse>, Status> {
        ok(self.segment_membership(r).await?)
    }
    async fn export_profile(
        &self,
        r: Request<ExportProfileRequest>,
    ) -> Result<Response<ExportProfileResponse>, Status> {
        ok(self.export(r).await?)
    }
    async fn erase_profile(
        &self,
        r: Request<EraseProfileRequest>,
    ) -> Result<Response<EraseProfileResponse>, Status> {
        ok(self.erase(r).await?)
    }
}
