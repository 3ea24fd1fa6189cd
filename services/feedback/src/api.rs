//! The gRPC adapter of the feedback service.

use throughline_proto::feedback::v1::feedback_service_server::FeedbackService;

use crate::Service;

/// Implements `FeedbackService`; RPCs not written yet fall back to the generated stubs, which
/// answer UNIMPLEMENTED.
#[derive(Debug, Clone)]
pub struct Api {
    #[allow(dead_code)] // Read by the handlers that the service's issue adds.
    service: Service,
}

impl Api {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

impl FeedbackService for Api {}
