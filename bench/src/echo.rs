//! The baseline: a bare tonic unary echo with no Throughline code on either side.

use prost::bytes::Bytes;
use tonic::{Request, Response, Status, transport::Server};

use crate::{BenchError, InProcessServer, Scenario, Target, report::BASELINE_SCENARIO};

/// Generated code for `proto/echo.proto`.
#[allow(
    clippy::all,
    clippy::pedantic,
    unused_qualifications,
    missing_docs,
    rustdoc::all
)]
pub mod pb {
    tonic::include_proto!("throughline.bench.v1");
}

use pb::{
    EchoRequest, EchoResponse,
    echo_service_client::EchoServiceClient,
    echo_service_server::{EchoService, EchoServiceServer},
};

/// Returns the request payload unchanged; nothing else, so it measures tonic alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            payload: request.into_inner().payload,
        }))
    }
}

/// Starts the echo service on an ephemeral loopback port in the current runtime.
pub async fn start_echo_server() -> std::io::Result<InProcessServer> {
    InProcessServer::spawn(|incoming, shutdown| {
        Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .serve_with_incoming_shutdown(incoming, shutdown)
    })
    .await
}

/// The baseline scenario: in-process echo server, `payload_bytes` each way per call.
pub fn echo_scenario(payload_bytes: usize) -> Scenario {
    let payload = Bytes::from(vec![b'x'; payload_bytes]);
    Scenario::new(
        BASELINE_SCENARIO,
        || async {
            let server = start_echo_server().await?;
            let endpoint = server.endpoint()?;
            Ok::<_, BenchError>(Target::in_process(endpoint, server))
        },
        move |channel, _seq| {
            let payload = payload.clone();
            async move {
                let sent = payload.len();
                let response = EchoServiceClient::new(channel)
                    .echo(EchoRequest { payload })
                    .await?;
                // A cheap check that the baseline did the work it claims to.
                let received = response.get_ref().payload.len();
                if received == sent {
                    Ok(())
                } else {
                    Err(Status::data_loss(format!(
                        "echo returned {received} bytes for {sent}"
                    )))
                }
            }
        },
    )
    .with_description(format!(
        "bare tonic unary echo, {payload_bytes}-byte payload, server in this process"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use tonic::transport::Endpoint;

    use super::*;
    use crate::{LoadConfig, run_load};

    fn short_run() -> LoadConfig {
        LoadConfig {
            callers: 4,
            connections: 2,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(300),
            call_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn echo_scenario_completes_calls_without_errors() {
        let result = echo_scenario(64).run(&short_run()).await.unwrap();
        assert_eq!(result.name, BASELINE_SCENARIO);
        assert_eq!(result.errors, 0, "{:?}", result.errors_by_code);
        assert!(result.requests > 0);
        assert!(result.latency.p50_us <= result.latency.p99_us);
        assert!(result.latency.p99_us <= result.latency.max_us);
        assert_eq!((result.callers, result.connections), (4, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_are_counted_by_grpc_code() {
        let server = start_echo_server().await.unwrap();
        let outcome = run_load(
            server.endpoint().unwrap(),
            &short_run(),
            |channel, seq| async move {
                if seq % 2 == 1 {
                    return Err(Status::unavailable("odd"));
                }
                EchoServiceClient::new(channel)
                    .echo(EchoRequest::default())
                    .await
                    .map(|_| ())
            },
        )
        .await
        .unwrap();
        assert!(outcome.ok > 0);
        assert_eq!(outcome.errors.keys().collect::<Vec<_>>(), ["Unavailable"]);
        assert!(outcome.errors["Unavailable"] > 0);
        assert_eq!(outcome.histogram.len(), outcome.ok);
    }

    #[tokio::test]
    async fn refused_connections_fail_the_run() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(2));
        let result = run_load(endpoint, &short_run(), |_channel, _seq| async { Ok(()) }).await;
        assert!(
            matches!(result, Err(BenchError::Connect { .. })),
            "{result:?}"
        );
    }
}
