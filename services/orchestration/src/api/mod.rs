//! The gRPC adapter of the orchestration service: checks requests, scopes every query to the
//! caller's tenant, and maps the store's answers to the contract.

mod instances;
mod journeys;
mod stats;

use throughline_proto::orchestration::v1::orchestration_service_server::OrchestrationService;
use throughline_proto::orchestration::v1::*;
use throughline_runtime::auth::{Principal, principal};
use throughline_runtime::{Error, FieldViolation};
use tonic::{Request, Response, Status};

use crate::Service;

/// Implements `OrchestrationService`.
#[derive(Debug, Clone)]
pub struct Api {
    service: Service,
}

impl Api {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// Moves the field violations of `error` into `violations`, so that one answer names every bad
/// field; other errors are kept as they are.
fn collect(error: Error, violations: &mut Vec<FieldViolation>) -> Error {
    match error {
        Error::InvalidArgument(found) => {
            violations.extend(found);
            Error::InvalidArgument(Vec::new())
        }
        other => other,
    }
}

/// The service's RPCs: each passes the caller (its tenant filters every query; its subject is
/// recorded as a version's publisher) and the request to the handler of the same name on `Api`.
macro_rules! rpcs {
    ($($method:ident($request:ty) -> $response:ty;)*) => {
        #[tonic::async_trait]
        impl OrchestrationService for Api {
            $(
                async fn $method(
                    &self,
                    request: Request<$request>,
                ) -> Result<Response<$response>, Status> {
                    let caller: Principal = principal(&request)?.clone();
                    Ok(Response::new(
                        Api::$method(self, &caller, request.into_inner()).await?,
                    ))
                }
            )*
        }
    };
}

rpcs! {
    create_journey(CreateJourneyRequest) -> CreateJourneyResponse;
    get_journey(GetJourneyRequest) -> GetJourneyResponse;
    list_journeys(ListJourneysRequest) -> ListJourneysResponse;
    update_journey(UpdateJourneyRequest) -> UpdateJourneyResponse;
    delete_journey(DeleteJourneyRequest) -> DeleteJourneyResponse;
    publish_journey(PublishJourneyRequest) -> PublishJourneyResponse;
    pause_journey(PauseJourneyRequest) -> PauseJourneyResponse;
    resume_journey(ResumeJourneyRequest) -> ResumeJourneyResponse;
    archive_journey(ArchiveJourneyRequest) -> ArchiveJourneyResponse;
    get_journey_version(GetJourneyVersionRequest) -> GetJourneyVersionResponse;
    list_journey_versions(ListJourneyVersionsRequest) -> ListJourneyVersionsResponse;
    start_journey(StartJourneyRequest) -> StartJourneyResponse;
    get_journey_instance(GetJourneyInstanceRequest) -> GetJourneyInstanceResponse;
    list_journey_instances(ListJourneyInstancesRequest) -> ListJourneyInstancesResponse;
    cancel_journey_instance(CancelJourneyInstanceRequest) -> CancelJourneyInstanceResponse;
    migrate_journey_instances(MigrateJourneyInstancesRequest) -> MigrateJourneyInstancesResponse;
    get_journey_stats(GetJourneyStatsRequest) -> GetJourneyStatsResponse;
}
