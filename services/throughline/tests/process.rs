//! The binary as an operator meets it: start, health, configuration errors, tokens, SIGTERM.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use throughline_harness::{Credentials, TEST_SECRET, raw_call, reached_the_service};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn channel(endpoint: String) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn serves_health_then_exits_zero_on_sigterm() {
    let mut process = common::spawn(&["--services", "profile,distribution"], &[]);
    let mut health = HealthClient::new(channel(process.endpoint()).await);
    for service in [
        "throughline.profile.v1.ProfileService",
        "throughline.distribution.v1.DistributionService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
    // The client stays connected: the server must still drain and exit promptly.
    process.signal("TERM");
    let status = process.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_malformed_value_stops_start_up_and_names_its_key() {
    let output = common::command()
        .arg("serve")
        .env_clear()
        .env("THROUGHLINE__AUTH__HS256_SECRET", TEST_SECRET)
        .env("THROUGHLINE__SERVER__MAX_IN_FLIGHT", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.max_in_flight"), "{stderr}");

    let output = common::command()
        .args(["serve", "--services", "profile,billing"])
        .env_clear()
        .env("THROUGHLINE__AUTH__HS256_SECRET", TEST_SECRET)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.services[1]: unknown service \"billing\""),
        "{stderr}"
    );
}

#[test]
fn serving_without_any_credential_configured_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let output = common::command()
        .arg("serve")
        .env_clear()
        .env("THROUGHLINE__SERVER__LISTEN_ADDR", "127.0.0.1:0")
        .env("THROUGHLINE__SERVER__METRICS_LISTEN_ADDR", "")
        .env(
            "THROUGHLINE__DATABASE__URL",
            format!("sqlite://{}/t.db", data.path().display()),
        )
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("auth: no credentials configured"),
        "{stderr}"
    );
}

#[test]
fn config_print_shows_the_effective_values_with_secrets_redacted() {
    let output = common::command()
        .args(["config", "print"])
        .env_clear()
        .env("THROUGHLINE__AUTH__HS256_SECRET", TEST_SECRET)
        .env(
            "THROUGHLINE__DATABASE__URL",
            "postgres://app:hunter2@db:5432/throughline",
        )
        .env("THROUGHLINE__SERVER__MAX_IN_FLIGHT", "77")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("max_in_flight = 77"), "{stdout}");
    assert!(
        stdout.contains("postgres://app:[redacted]@db:5432/throughline"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(!stdout.contains(TEST_SECRET), "{stdout}");
}

#[tokio::test]
async fn an_issued_token_is_accepted_within_its_scopes() {
    let output = common::command()
        .args([
            "token",
            "issue",
            "--tenant",
            "acme",
            "--scope",
            "interaction:read",
        ])
        .env_clear()
        .env("THROUGHLINE__AUTH__HS256_SECRET", TEST_SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let process = common::spawn(&["--services", "interaction"], &[]);
    let channel = channel(process.endpoint()).await;
    let read = "/throughline.interaction.v1.InteractionService/ListInteractions";
    let write = "/throughline.interaction.v1.InteractionService/RecordInteraction";
    assert!(reached_the_service(
        raw_call(channel.clone(), read, Credentials::Bearer(&token))
            .await
            .code()
    ));
    assert_eq!(
        raw_call(channel.clone(), write, Credentials::Bearer(&token))
            .await
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        raw_call(channel, read, Credentials::None).await.code(),
        Code::Unauthenticated
    );
}

/// A plain HTTP/1.1 GET, enough for a Prometheus scrape.
fn http_get(address: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test]
async fn metrics_count_every_call_by_method_and_status() {
    let process = common::spawn(
        &["--services", "profile"],
        &[("THROUGHLINE__SERVER__METRICS_LISTEN_ADDR", "127.0.0.1:0")],
    );
    let metrics = process.logged_address("serving metrics");
    let channel = channel(process.endpoint()).await;
    let path = "/throughline.profile.v1.ProfileService/GetProfile";
    for _ in 0..3 {
        raw_call(channel.clone(), path, Credentials::None).await;
    }
    let scrape = http_get(metrics, "/metrics");
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    let counted = scrape.lines().find(|line| {
        line.starts_with("rpc_server_duration_seconds_count{")
            && line.contains("rpc_method=\"GetProfile\"")
            && line.contains("rpc_grpc_status_code=\"16\"")
    });
    assert_eq!(
        counted.and_then(|line| line.rsplit(' ').next()),
        Some("3"),
        "{scrape}"
    );
}

#[test]
fn migrate_applies_the_migrations_and_exits() {
    let data = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/t.db", data.path().display());
    for _ in 0..2 {
        let output = common::command()
            .args(["migrate", "--services", "profile,feedback"])
            .env_clear()
            .env("THROUGHLINE__DATABASE__URL", &database)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let stderr = String::from_utf8_lossy(
        &common::command()
            .args(["migrate", "--services", "profile"])
            .env_clear()
            .env("THROUGHLINE__DATABASE__URL", &database)
            .env("THROUGHLINE__TELEMETRY__LOG_FORMAT", "json")
            .output()
            .unwrap()
            .stderr,
    )
    .to_string();
    assert!(stderr.contains("migrations applied"), "{stderr}");
    assert!(data.path().join("t.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_prints_committed_events() {
    use std::io::{BufRead, BufReader};

    use sea_orm::TransactionTrait;
    use throughline_proto::event::v1::Event;
    use throughline_runtime::db::{DatabaseOptions, connect};
    use throughline_runtime::events::Outbox;

    let process = common::spawn(&["--services", "profile"], &[]);
    // The test writes to the process's own SQLite file, as the profile service would.
    let options = DatabaseOptions {
        url: format!("sqlite://{}/throughline.db", process.data.path().display()),
        max_connections: 1,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        acquire_timeout: Duration::from_secs(5),
        migrate_on_start: false,
    };
    let db = connect(&options, "profile").await.unwrap();
    let transaction = db.begin().await.unwrap();
    for id in ["tail-1", "tail-2"] {
        let event = Event {
            id: id.into(),
            source: "profile".into(),
            spec_version: "1.0".into(),
            r#type: "profile.created".into(),
            subject: "profiles/p9".into(),
            tenant: "acme".into(),
            ..Event::default()
        };
        Outbox::new("profile")
            .append(&transaction, &event)
            .await
            .unwrap();
    }
    transaction.commit().await.unwrap();

    let mut tail = common::command()
        .args([
            "events",
            "tail",
            "--source",
            "profile",
            "--endpoint",
            &process.endpoint(),
        ])
        .env_clear()
        .env(
            "THROUGHLINE_TOKEN",
            throughline_harness::token("acme", &["events:read"]),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(2)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(20), lines)
        .await
        .expect("events tail printed nothing")
        .unwrap();
    let _ = tail.kill();
    let _ = tail.wait();
    for (line, id) in lines.iter().zip(["tail-1", "tail-2"]) {
        let columns: Vec<_> = line.split('\t').collect();
        assert_eq!(columns.len(), 6, "{line}");
        assert_eq!(
            &columns[2..],
            ["acme", "profile.created", "profiles/p9", id],
            "{line}"
        );
    }
}
