//! Runs the real `throughline` binary as a child process.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use throughline_harness::{TEST_SECRET, token};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel as Connection;

/// A connection whose calls carry a bearer token of tenant `acme` with `scopes`.
pub type Authorised = InterceptedService<
    Connection,
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
>;

/// Connects to `endpoint` as tenant `acme` with `scopes`.
pub async fn authorised(endpoint: String, scopes: &[&str]) -> Authorised {
    let connection = Connection::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer: MetadataValue<_> = format!("Bearer {}", token("acme", scopes)).parse().unwrap();
    InterceptedService::new(
        connection,
        Box::new(move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        }),
    )
}

pub struct Process {
    pub child: Child,
    pub address: SocketAddr,
    /// The log lines written until it served.
    pub startup_logs: Vec<serde_json::Value>,
    /// Every later log line, as it arrives.
    pub logs: mpsc::Receiver<String>,
    pub data: tempfile::TempDir,
}

pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_throughline"))
}

/// Starts `throughline serve` on an ephemeral port with JSON logs, waits until it serves, and
/// returns the address it logged.
pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Process {
    let data = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/throughline.db", data.path().display());
    let mut child = command()
        .arg("serve")
        .args(args)
        .env_clear()
        .env("THROUGHLINE__SERVER__LISTEN_ADDR", "127.0.0.1:0")
        .env("THROUGHLINE__SERVER__METRICS_LISTEN_ADDR", "")
        .env("THROUGHLINE__DATABASE__URL", database)
        .env("THROUGHLINE__AUTH__HS256_SECRET", TEST_SECRET)
        .env("THROUGHLINE__TELEMETRY__LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, logs) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut startup_logs = Vec::new();
    loop {
        let line = logs
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("throughline did not start: {:?}", child.try_wait()));
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if entry["message"] == "serving gRPC" {
            let address = entry["address"].as_str().unwrap().parse().unwrap();
            return Process {
                child,
                address,
                startup_logs,
                logs,
                data,
            };
        }
        startup_logs.push(entry);
    }
}

impl Process {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `timeout`, without blocking the runtime (the
    /// test's own connections must stay able to answer the server's GOAWAY).
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "process did not exit in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The address a start-up log line with `message` gave.
    pub fn logged_address(&self, message: &str) -> SocketAddr {
        let entry = self
            .startup_logs
            .iter()
            .find(|entry| entry["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in {:?}", self.startup_logs));
        entry["address"].as_str().unwrap().parse().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
