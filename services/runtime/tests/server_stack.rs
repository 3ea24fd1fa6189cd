//! The layers of the shared server stack, each doing its one job: deadlines, load shedding,
//! request ids.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use throughline_runtime::server::REQUEST_ID_HEADER;
use tonic::Code;
use tonic::transport::Channel;

async fn client(address: std::net::SocketAddr) -> ProfileServiceClient<Channel> {
    ProfileServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_gets_deadline_exceeded() {
    let mut options = common::options(16);
    options.request_timeout = Duration::from_millis(600);
    let (address, _serving) =
        common::start(options, Duration::from_secs(5), std::future::pending()).await;
    let mut client = client(address).await;

    // The caller's deadline, sent as the header only so that the server, not the client,
    // is what enforces it.
    let mut request = common::get_profile();
    request
        .metadata_mut()
        .insert("grpc-timeout", "200m".parse().unwrap());
    let started = Instant::now();
    let status = client.get_profile(request).await.unwrap_err();
    // tonic enforces a caller's grpc-timeout itself, before this stack, and answers CANCELLED.
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(550), "{elapsed:?}");

    // Without one, the server's own request timeout applies, answered by the deadline layer.
    let started = Instant::now();
    let status = client.get_profile(common::get_profile()).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_in_flight_limit_are_refused_at_once() {
    let (address, _serving) = common::start(
        common::options(2),
        Duration::from_millis(800),
        std::future::pending(),
    )
    .await;
    let mut first = client(address).await;
    let mut second = client(address).await;
    let in_flight = [
        tokio::spawn(async move { first.get_profile(common::get_profile()).await }),
        tokio::spawn(async move { second.get_profile(common::get_profile()).await }),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let refused = client(address)
        .await
        .get_profile(common::get_profile())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    // Refused without waiting for a slot: the calls holding them run 800 ms.
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );

    for call in in_flight {
        assert!(call.await.unwrap().is_ok());
    }
    // With capacity back, calls are admitted again.
    assert!(
        client(address)
            .await
            .get_profile(common::get_profile())
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id() {
    let (address, _serving) =
        common::start(common::options(16), Duration::ZERO, std::future::pending()).await;
    let mut client = client(address).await;

    let answer = client.get_profile(common::get_profile()).await.unwrap();
    let generated = answer
        .metadata()
        .get(REQUEST_ID_HEADER)
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(generated).unwrap().get_version_num(),
        7
    );

    let mut request = common::get_profile();
    request
        .metadata_mut()
        .insert(REQUEST_ID_HEADER, "crm-sync-42".parse().unwrap());
    let answer = client.get_profile(request).await.unwrap();
    assert_eq!(
        answer.metadata().get(REQUEST_ID_HEADER).unwrap(),
        "crm-sync-42"
    );

    // One that is too long, or not plain, is replaced rather than logged.
    let mut request = common::get_profile();
    request
        .metadata_mut()
        .insert(REQUEST_ID_HEADER, "x".repeat(200).parse().unwrap());
    let answer = client.get_profile(request).await.unwrap();
    let replaced = answer
        .metadata()
        .get(REQUEST_ID_HEADER)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced}");

    // Refusals carry one too.
    let refused = client
        .get_profile(throughline_proto::profile::v1::GetProfileRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.metadata().get(REQUEST_ID_HEADER).is_some());
}
