//! A runtime server hosting a deliberately slow profile service, for tests of the stack.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use throughline_proto::profile::v1::profile_service_server::{
    ProfileService, ProfileServiceServer,
};
use throughline_proto::profile::v1::{GetProfileRequest, GetProfileResponse};
use throughline_runtime::auth::{AuthOptions, Authenticator, issue_token};
use throughline_runtime::config::Secret;
use throughline_runtime::server::{GrpcServer, ServeError, ServerOptions};
use tokio::task::JoinHandle;

pub const SECRET: &str = "runtime-stack-test-secret-0123456789abc";

/// Answers GetProfile after `delay`.
pub struct SlowProfiles {
    pub delay: Duration,
}

#[tonic::async_trait]
impl ProfileService for SlowProfiles {
    async fn get_profile(
        &self,
        _request: tonic::Request<GetProfileRequest>,
    ) -> Result<tonic::Response<GetProfileResponse>, tonic::Status> {
        tokio::time::sleep(self.delay).await;
        Ok(tonic::Response::new(GetProfileResponse::default()))
    }
}

pub fn options(max_in_flight: usize) -> ServerOptions {
    ServerOptions {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_listen_addr: None,
        services: vec!["profile".into()],
        request_timeout: Duration::from_secs(30),
        max_in_flight,
        shutdown_grace: Duration::from_secs(10),
    }
}

/// Serves a slow profile service until `shutdown` completes.
pub async fn start(
    options: ServerOptions,
    delay: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (SocketAddr, JoinHandle<Result<(), ServeError>>) {
    let authenticator = Authenticator::new(&AuthOptions {
        hs256_secret: Secret::new(SECRET),
        ..AuthOptions::default()
    })
    .unwrap();
    let mut server = GrpcServer::new(options, Arc::new(authenticator));
    server.add_service(ProfileServiceServer::new(SlowProfiles { delay }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (address, tokio::spawn(server.serve(listener, shutdown)))
}

/// A GetProfile request carrying a token with `profile:read`.
pub fn get_profile() -> tonic::Request<GetProfileRequest> {
    let token = issue_token(
        SECRET,
        "t",
        "acme",
        &["profile:read".into()],
        Duration::from_secs(60),
    )
    .unwrap();
    let mut request = tonic::Request::new(GetProfileRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
