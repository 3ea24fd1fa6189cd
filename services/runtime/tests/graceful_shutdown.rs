//! SIGTERM during a slow call: the call finishes, then the server returns cleanly.
//! (One test in its own binary: it signals its own process.)
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use throughline_proto::profile::v1::profile_service_server::{
    ProfileService, ProfileServiceServer,
};
use throughline_proto::profile::v1::{GetProfileRequest, GetProfileResponse};
use throughline_runtime::auth::{AuthOptions, Authenticator, issue_token};
use throughline_runtime::config::Secret;
use throughline_runtime::server::{GrpcServer, ServerOptions};

const SECRET: &str = "graceful-shutdown-test-secret-0123456789";
const SLOW: Duration = Duration::from_millis(1500);

struct SlowProfiles;

#[tonic::async_trait]
impl ProfileService for SlowProfiles {
    async fn get_profile(
        &self,
        _request: tonic::Request<GetProfileRequest>,
    ) -> Result<tonic::Response<GetProfileResponse>, tonic::Status> {
        tokio::time::sleep(SLOW).await;
        Ok(tonic::Response::new(GetProfileResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_call_finish_then_stops() {
    let authenticator = Authenticator::new(&AuthOptions {
        hs256_secret: Secret::new(SECRET),
        ..AuthOptions::default()
    })
    .unwrap();
    let options = ServerOptions {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_listen_addr: None,
        services: vec!["profile".into()],
        request_timeout: Duration::from_secs(30),
        max_in_flight: 16,
        shutdown_grace: Duration::from_secs(10),
    };
    let mut server = GrpcServer::new(options, Arc::new(authenticator));
    server.add_service(ProfileServiceServer::new(SlowProfiles));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = tokio::spawn(server.serve(listener, throughline_runtime::shutdown::signal()));

    let token = issue_token(
        SECRET,
        "t",
        "acme",
        &["profile:read".into()],
        Duration::from_secs(60),
    )
    .unwrap();
    let mut client = ProfileServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    let mut request = tonic::Request::new(GetProfileRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let started = Instant::now();
    let call = tokio::spawn(async move { client.get_profile(request).await });

    // Let the call get in flight, then deliver SIGTERM to this very process.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let answer = call.await.unwrap();
    assert!(answer.is_ok(), "the call in flight was cut: {answer:?}");
    assert!(started.elapsed() >= SLOW);
    let stopped = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the server did not stop after draining")
        .unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");

    // And it no longer accepts connections.
    assert!(
        ProfileServiceClient::connect(format!("http://{address}"))
            .await
            .is_err()
    );
}
