//! Throughline's own server stack (observe → deadline → admission → auth → routes), all five
//! services in one process on SQLite, answering `grpc.health.v1.Health/Check`. Health skips
//! authentication, so against the echo baseline this measures what the shared stack (with
//! telemetry on) costs a call before any service logic runs.

use std::collections::HashMap;

use throughline::Config;
use throughline_runtime::config::Sources;
use tokio::sync::oneshot;
use tonic::Status;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::{BenchError, Scenario, Target};

const CHECKED_SERVICE: &str = "throughline.profile.v1.ProfileService";

static TELEMETRY: std::sync::OnceLock<throughline_runtime::telemetry::TelemetryGuard> =
    std::sync::OnceLock::new();

async fn start_suite() -> Result<Target, BenchError> {
    let data = tempfile::tempdir()?;
    let env = HashMap::from([
        (
            "THROUGHLINE__DATABASE__URL".to_owned(),
            format!("sqlite://{}/throughline.db", data.path().display()),
        ),
        (
            "THROUGHLINE__AUTH__HS256_SECRET".to_owned(),
            "throughline-bench-secret-0123456789abcdef".to_owned(),
        ),
        (
            "THROUGHLINE__SERVER__METRICS_LISTEN_ADDR".to_owned(),
            String::new(),
        ),
        (
            "THROUGHLINE__TELEMETRY__LOG_LEVEL".to_owned(),
            "warn".to_owned(),
        ),
    ]);
    let config = Config::load(Sources {
        env: Some(env),
        ..Sources::default()
    })
    .map_err(|e| BenchError::Setup(e.to_string()))?;
    // Telemetry as `throughline serve` installs it (info-level spans, RED metrics into the
    // OpenTelemetry SDK), so the figure includes what observing each call costs. Installed
    // once per process; the guard lives as long as the process.
    if TELEMETRY.get().is_none() {
        let guard = throughline_runtime::telemetry::init(&config.telemetry)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let _ = TELEMETRY.set(guard);
    }
    let (address, stop) = serve_in_process(&config).await?;
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?;
    // Dropping the guard stops the server, then removes its database.
    Ok(Target::in_process(endpoint, (stop, data)))
}

/// Serves `config` in this process on an ephemeral loopback port, until the returned sender
/// is dropped.
pub async fn serve_in_process(
    config: &Config,
) -> Result<(std::net::SocketAddr, oneshot::Sender<()>), BenchError> {
    let server = throughline::app::build_server(config)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    Ok((address, stop))
}

pub fn stack_health_scenario() -> Scenario {
    Scenario::new("stack-health", start_suite, |channel, _seq| async move {
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: CHECKED_SERVICE.to_owned(),
            })
            .await?;
        if response.get_ref().status == ServingStatus::Serving as i32 {
            Ok(())
        } else {
            Err(Status::unavailable("service not serving"))
        }
    })
    .with_description(
        "Throughline's tower stack and router, all five services on SQLite, in this process: \
         grpc.health.v1.Health/Check (no auth on health)",
    )
}
