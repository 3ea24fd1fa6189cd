//! The gRPC adapter of the profile service.

use throughline_proto::profile::v1::profile_service_server::ProfileService;

use crate::Service;

/// Implements `ProfileService`; RPCs not written yet fall back to the generated stubs, which
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

impl ProfileService for Api {}
