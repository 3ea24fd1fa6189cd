//! The gRPC adapter of the distribution service.

use throughline_proto::distribution::v1::distribution_service_server::DistributionService;

use crate::Service;

/// Implements `DistributionService`; RPCs not written yet fall back to the generated stubs, which
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

impl DistributionService for Api {}
