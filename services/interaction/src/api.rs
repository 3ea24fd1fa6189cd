//! The gRPC adapter of the interaction service.

use throughline_proto::interaction::v1::interaction_service_server::InteractionService;

use crate::Service;

/// Implements `InteractionService`; RPCs not written yet fall back to the generated stubs, which
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

impl InteractionService for Api {}
