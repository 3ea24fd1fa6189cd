//! The gRPC adapter of the feedback service: checks requests, scopes every query to the
//! caller's tenant, and maps the store's answers to the contract.

mod follow_ups;
mod invitations;
mod metrics;
mod responses;
mod surveys;
mod themes;

use throughline_proto::feedback::v1::feedback_service_server::FeedbackService;
use throughline_proto::feedback::v1::*;
use throughline_runtime::auth::principal;
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::{Error, FieldViolation};
use tonic::{Request, Response, Status};

use crate::Service;

/// Implements `FeedbackService`.
#[derive(Debug, Clone)]
pub struct Api {
    service: Service,
}

impl Api {
    pub fn new(service: Service) -> Self {
        Self { service }
    }

    /// The profile `customer` resolves to, when the profile service knows it.
    async fn resolve(&self, tenant: &str, customer: &CustomerKey) -> Result<Option<String>, Error> {
        Ok(self
            .service
            .resolver
            .resolve(tenant, std::slice::from_ref(customer))
            .await?
            .into_iter()
            .next()
            .flatten())
    }
}

/// Moves the field violations of `error` into `violations`, so that one answer names every bad
/// field; other errors are kept as they are (and are never expected from a check).
fn violations_of(error: Error, violations: &mut Vec<FieldViolation>) -> Error {
    match error {
        Error::InvalidArgument(found) => {
            violations.extend(found);
            Error::InvalidArgument(Vec::new())
        }
        other => other,
    }
}

/// The service's RPCs: each passes the caller's tenant (every query filters by it) and the
/// request to the handler of the same name on `Api`.
macro_rules! rpcs {
    ($($method:ident($request:ty) -> $response:ty;)*) => {
        #[tonic::async_trait]
        impl FeedbackService for Api {
            $(
                async fn $method(
                    &self,
                    request: Request<$request>,
                ) -> Result<Response<$response>, Status> {
                    let tenant = principal(&request)?.tenant.clone();
                    Ok(Response::new(
                        Api::$method(self, &tenant, request.into_inner()).await?,
                    ))
                }
            )*
        }
    };
}

rpcs! {
    create_survey(CreateSurveyRequest) -> CreateSurveyResponse;
    get_survey(GetSurveyRequest) -> GetSurveyResponse;
    list_surveys(ListSurveysRequest) -> ListSurveysResponse;
    update_survey(UpdateSurveyRequest) -> UpdateSurveyResponse;
    delete_survey(DeleteSurveyRequest) -> DeleteSurveyResponse;
    publish_survey(PublishSurveyRequest) -> PublishSurveyResponse;
    archive_survey(ArchiveSurveyRequest) -> ArchiveSurveyResponse;
    request_feedback(RequestFeedbackRequest) -> RequestFeedbackResponse;
    get_invitation(GetInvitationRequest) -> GetInvitationResponse;
    list_invitations(ListInvitationsRequest) -> ListInvitationsResponse;
    submit_response(SubmitResponseRequest) -> SubmitResponseResponse;
    get_response(GetResponseRequest) -> GetResponseResponse;
    list_responses(ListResponsesRequest) -> ListResponsesResponse;
    get_metrics(GetMetricsRequest) -> GetMetricsResponse;
    get_driver_analysis(GetDriverAnalysisRequest) -> GetDriverAnalysisResponse;
    get_themes(GetThemesRequest) -> GetThemesResponse;
    get_follow_up(GetFollowUpRequest) -> GetFollowUpResponse;
    list_follow_ups(ListFollowUpsRequest) -> ListFollowUpsResponse;
    update_follow_up(UpdateFollowUpRequest) -> UpdateFollowUpResponse;
}
