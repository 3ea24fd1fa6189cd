//! Services started in-process on an ephemeral port, exactly as `throughline serve` starts them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use throughline::Config;
use throughline_runtime::config::Sources;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::TestDatabase;

/// The HS256 secret every test suite trusts.
pub const TEST_SECRET: &str = "throughline-test-secret-0123456789abcdef";

/// A running set of services; stopped (gracefully) when dropped or by [`TestSuite::stop`].
#[derive(Debug)]
pub struct TestSuite {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), throughline::app::Error>>>,
}

impl TestSuite {
    /// Starts `services` on `db` with the default configuration plus `env`
    /// (`THROUGHLINE__…` variables).
    pub async fn start_with(services: &[&str], db: &TestDatabase, env: &[(&str, &str)]) -> Self {
        Self::start_config(Self::config(services, db, env)).await
    }

    /// The configuration a suite of `services` on `db` runs with, for tests to adjust.
    pub fn config(services: &[&str], db: &TestDatabase, env: &[(&str, &str)]) -> Config {
        let mut variables: HashMap<String, String> = HashMap::from([
            ("THROUGHLINE__DATABASE__URL".into(), db.url().into()),
            // Several suites share one PostgreSQL server; keep each one's pools small.
            ("THROUGHLINE__DATABASE__MAX_CONNECTIONS".into(), "4".into()),
            ("THROUGHLINE__AUTH__HS256_SECRET".into(), TEST_SECRET.into()),
            ("THROUGHLINE__SERVER__SERVICES".into(), services.join(",")),
            (
                "THROUGHLINE__SERVER__METRICS_LISTEN_ADDR".into(),
                String::new(),
            ),
        ]);
        for (key, value) in env {
            variables.insert((*key).to_owned(), (*value).to_owned());
        }
        Config::load(Sources {
            env: Some(variables),
            ..Sources::default()
        })
        .unwrap_or_else(|e| panic!("test configuration: {e}"))
    }

    pub async fn start(services: &[&str], db: &TestDatabase) -> Self {
        Self::start_with(services, db, &[]).await
    }

    /// Starts a suite from a complete configuration; the listener is bound first and handed
    /// to the server, so there is no race for the port.
    pub async fn start_config(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        // Build synchronously first so a start-up failure fails the test where it happened.
        let server = throughline::app::build_server(&config)
            .await
            .unwrap_or_else(|e| panic!("suite failed to start: {e}"));
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .map_err(throughline::app::Error::from)
        });
        Self {
            address,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A new connection to the suite.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap()
    }

    /// Typed clients of every service, calling as the holder of `token`.
    pub async fn clients(&self, token: &str) -> crate::Clients {
        crate::Clients::new(self.channel().await, token)
    }

    /// Stops the suite like SIGTERM would and waits for calls in flight to drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestSuite {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A token of `tenant` with `scopes`, signed with [`TEST_SECRET`].
pub fn token(tenant: &str, scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    throughline_runtime::auth::issue_token(
        TEST_SECRET,
        "test",
        tenant,
        &scopes,
        Duration::from_secs(600),
    )
    .unwrap()
}

/// Adds `authorization: Bearer <token>` to a request.
pub fn bearer<T>(mut request: tonic::Request<T>, token: &str) -> tonic::Request<T> {
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}
