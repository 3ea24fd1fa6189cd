//! The gRPC adapter of the orchestration service.

use throughline_proto::orchestration::v1::orchestration_service_server::OrchestrationService;

use crate::Service;

/// Implements `OrchestrationService`; RPCs not written yet fall back to the generated stubs, which
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

impl OrchestrationService for Api {}
