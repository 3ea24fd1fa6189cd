//! Clients for calling another service at its configured endpoint.

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::telemetry::TraceContextInterceptor;

/// A channel whose calls continue the caller's trace.
pub type TracedChannel = InterceptedService<Channel, TraceContextInterceptor>;

/// A lazily connected channel to `endpoint` (`http://host:port`): the called service may
/// start after the caller, and calls fail with UNAVAILABLE until it is up.
pub fn channel(endpoint: &str) -> Result<TracedChannel, tonic::transport::Error> {
    let channel = Endpoint::from_shared(endpoint.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .connect_lazy();
    Ok(InterceptedService::new(channel, TraceContextInterceptor))
}
