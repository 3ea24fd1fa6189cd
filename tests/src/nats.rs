//! Finds the NATS server (with JetStream) tests run on, in this order:
//! 1. `THROUGHLINE_TEST_NATS_URL`;
//! 2. a server on 127.0.0.1:4222, if it answers with JetStream on;
//! 3. a server started from the system's `nats-server` binary, shared by the test processes
//!    of a run and left running for the next.
//!
//! A machine with none of these fails the NATS tests with a message saying so. Each test gets
//! streams of its own through a unique prefix, and deletes them when it ends.

use std::process::{Command, Stdio};
use std::time::Duration;

use throughline_runtime::events::{JetStream, NatsOptions};
use tokio::sync::OnceCell;

pub const URL_VARIABLE: &str = "THROUGHLINE_TEST_NATS_URL";
const LOCAL_URL: &str = "nats://127.0.0.1:4222";
const FALLBACK_PORT: u16 = 54222;

static SERVER_URL: OnceCell<String> = OnceCell::const_new();

/// The URL of the test NATS server.
pub async fn nats_url() -> String {
    SERVER_URL
        .get_or_init(|| async {
            if let Ok(url) = std::env::var(URL_VARIABLE) {
                return url;
            }
            if answers(LOCAL_URL).await {
                return LOCAL_URL.to_owned();
            }
            match start_private_server().await {
                Ok(url) => url,
                Err(why) => panic!(
                    "NATS tests need a server with JetStream: set {URL_VARIABLE}, run one on \
                     127.0.0.1:4222, or install nats-server ({why})"
                ),
            }
        })
        .await
        .clone()
}

/// Whether a JetStream-enabled server answers at `url`.
async fn answers(url: &str) -> bool {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(1))
        .connect(url);
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(client)) => client.server_info().jetstream,
        _ => false,
    }
}

async fn start_private_server() -> Result<String, String> {
    let binary = crate::postgres::find_binary("nats-server").ok_or("nats-server not found")?;
    let url = format!("nats://127.0.0.1:{FALLBACK_PORT}");
    if answers(&url).await {
        return Ok(url);
    }
    let dir = std::env::temp_dir().join("throughline-test-nats");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // Several test processes may get here at once; a second server on the port exits at once.
    Command::new(binary)
        .args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &FALLBACK_PORT.to_string(),
            "-sd",
        ])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nats-server: {e}"))?;
    for _ in 0..100 {
        if answers(&url).await {
            return Ok(url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the nats-server it started did not answer".to_owned())
}

/// A test's own corner of the NATS server.
#[derive(Debug)]
pub struct TestNats {
    pub options: NatsOptions,
}

impl TestNats {
    pub async fn new() -> Self {
        let options = NatsOptions {
            url: nats_url().await,
            prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
            // What a killed consumer held comes again after this; tests should not wait long.
            ack_wait: Duration::from_secs(1),
            ..NatsOptions::default()
        };
        Self { options }
    }

    /// The environment that makes a suite use this NATS for its events.
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("THROUGHLINE__EVENTS__TRANSPORT", "nats"),
            ("THROUGHLINE__EVENTS__NATS__URL", &self.options.url),
            ("THROUGHLINE__EVENTS__NATS__PREFIX", &self.options.prefix),
            ("THROUGHLINE__EVENTS__NATS__ACK_WAIT", "1s"),
        ]
    }

    pub async fn jetstream(&self) -> JetStream {
        JetStream::connect(&self.options, Duration::from_secs(3600))
            .await
            .unwrap()
    }

    /// Deletes the streams this test created.
    pub async fn cleanup(&self) {
        let client = async_nats::connect(self.options.url.as_str())
            .await
            .unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let prefix = format!("{}-", self.options.prefix);
        let mut names = jetstream.stream_names();
        let mut mine = Vec::new();
        while let Some(Ok(name)) = futures::StreamExt::next(&mut names).await {
            if name.starts_with(&prefix) {
                mine.push(name);
            }
        }
        for name in mine {
            let _ = jetstream.delete_stream(&name).await;
        }
    }
}
