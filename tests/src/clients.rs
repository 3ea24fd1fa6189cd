//! Typed clients of every service, authenticated as one caller.

use throughline_proto::distribution::v1::distribution_service_client::DistributionServiceClient;
use throughline_proto::event::v1::event_log_service_client::EventLogServiceClient;
use throughline_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use throughline_proto::interaction::v1::interaction_service_client::InteractionServiceClient;
use throughline_proto::orchestration::v1::orchestration_service_client::OrchestrationServiceClient;
use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Adds the caller's bearer token to every request.
#[derive(Debug, Clone)]
pub struct BearerToken(MetadataValue<Ascii>);

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Authenticated = InterceptedService<Channel, BearerToken>;

/// One client per service over one connection, all carrying the same token.
#[derive(Debug, Clone)]
pub struct Clients {
    pub profile: ProfileServiceClient<Authenticated>,
    pub interaction: InteractionServiceClient<Authenticated>,
    pub feedback: FeedbackServiceClient<Authenticated>,
    pub orchestration: OrchestrationServiceClient<Authenticated>,
    pub distribution: DistributionServiceClient<Authenticated>,
    pub events: EventLogServiceClient<Authenticated>,
}

impl Clients {
    pub fn new(channel: Channel, token: &str) -> Self {
        let bearer = BearerToken(format!("Bearer {token}").parse().unwrap());
        let authenticated = || InterceptedService::new(channel.clone(), bearer.clone());
        Self {
            profile: ProfileServiceClient::new(authenticated()),
            interaction: InteractionServiceClient::new(authenticated()),
            feedback: FeedbackServiceClient::new(authenticated()),
            orchestration: OrchestrationServiceClient::new(authenticated()),
            distribution: DistributionServiceClient::new(authenticated()),
            events: EventLogServiceClient::new(authenticated()),
        }
    }
}
