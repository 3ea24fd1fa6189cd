//! SIGTERM during a slow call: the call finishes, then the server returns cleanly.
//! (One test in its own binary: it signals its own process.)
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;

const SLOW: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_call_finish_then_stops() {
    let (address, serving) = common::start(
        common::options(16),
        SLOW,
        throughline_runtime::shutdown::signal(),
    )
    .await;
    let mut client = ProfileServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    let started = Instant::now();
    let call = tokio::spawn(async move { client.get_profile(common::get_profile()).await });

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
