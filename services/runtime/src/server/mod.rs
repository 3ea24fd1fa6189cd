//! The one gRPC server every process runs, whatever services it hosts.
//!
//! Layers, outermost first, and why in this order:
//! 1. `ObserveLayer`: request id, server span, RED metrics. Outermost so that every call is
//!    counted and traced, including the ones the layers below refuse.
//! 2. `DeadlineLayer`: `server.request_timeout`, answered with DEADLINE_EXCEEDED (a caller's
//!    shorter `grpc-timeout` is enforced by tonic around this stack). Above admission so time
//!    spent anywhere below counts against the deadline.
//! 3. `AdmissionLayer`: a global in-flight limit that refuses at once (load shedding). Before
//!    auth, because verifying a signature is work an overloaded server should not start.
//! 4. `AuthLayer`: authentication and the scope the RPC declares. Innermost, next to the
//!    handlers, so nothing reaches a service without a checked `Principal`.

mod admission;
mod deadline;
mod metrics_http;
mod observe;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Request, Response};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::Service;

use crate::auth::{AuthLayer, Authenticator};
use crate::config::Validate;
use crate::events::{EventLog, EventsOptions, FollowOptions, Subscription, event_log_server};
use crate::peers::Peers;
use tokio_util::sync::CancellationToken;

pub use admission::AdmissionLayer;
pub use deadline::DeadlineLayer;
pub use metrics_http::serve_metrics;
pub use observe::{ObserveLayer, REQUEST_ID_HEADER};

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// Address of the gRPC port.
    pub listen_addr: SocketAddr,
    /// Address of the HTTP port serving Prometheus `/metrics`; none to disable it.
    #[serde(default, deserialize_with = "crate::config::empty_as_none")]
    pub metrics_listen_addr: Option<SocketAddr>,
    /// Which services this process runs.
    pub services: Vec<String>,
    /// The longest a call may run; a caller's shorter `grpc-timeout` is honoured too.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Calls in flight beyond which new calls are refused with UNAVAILABLE.
    pub max_in_flight: usize,
    /// After SIGTERM, how long calls in flight may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Validate for ServerOptions {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.request_timeout.is_zero() {
            problems.push(format!("{prefix}.request_timeout: must be more than zero"));
        }
        if self.max_in_flight == 0 {
            problems.push(format!("{prefix}.max_in_flight: must be at least 1"));
        }
        if self.services.is_empty() {
            problems.push(format!("{prefix}.services: name at least one service"));
        }
        problems
    }
}

/// Collects the services a process hosts, then serves them behind the shared stack.
pub struct GrpcServer {
    options: ServerOptions,
    authenticator: Arc<Authenticator>,
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    producers: Vec<(String, DatabaseConnection)>,
    subscriptions: Vec<Subscription>,
    peers: Peers,
    events: EventsOptions,
    workers: Vec<Worker>,
}

/// A background task of a service (a delivery worker, a scheduler): started when the server
/// serves, told to stop by its token when the server shuts down, and awaited for at most the
/// shutdown grace.
pub type Worker = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("services", &self.service_names)
            .finish()
    }
}

impl GrpcServer {
    pub fn new(options: ServerOptions, authenticator: Arc<Authenticator>) -> Self {
        Self {
            options,
            authenticator,
            routes: RoutesBuilder::default(),
            service_names: Vec::new(),
            producers: Vec::new(),
            subscriptions: Vec::new(),
            peers: Peers::default(),
            events: EventsOptions::default(),
            workers: Vec::new(),
        }
    }

    /// Runs `worker` while the process serves.
    pub fn add_worker(&mut self, worker: Worker) -> &mut Self {
        self.workers.push(worker);
        self
    }

    /// How the event logs this process serves are followed and pruned.
    pub fn set_events_options(&mut self, options: EventsOptions) -> &mut Self {
        self.events = options;
        self
    }

    /// Where the other services are; learns this process's own address when it serves.
    pub fn set_peers(&mut self, peers: Peers) -> &mut Self {
        self.peers = peers;
        self
    }

    /// Where the other services are, for services that call them.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Consumes another service's events while the process serves.
    pub fn add_subscription(&mut self, subscription: Subscription) -> &mut Self {
        self.subscriptions.push(subscription);
        self
    }

    /// Serves the event log of `service`, whose outbox is in `db`.
    pub fn add_producer(&mut self, service: &str, db: DatabaseConnection) -> &mut Self {
        self.producers.push((service.to_owned(), db));
        self
    }

    /// Hosts a generated tonic server; its health status and reflection entry follow.
    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// The full names of the hosted services.
    pub fn service_names(&self) -> &[&'static str] {
        &self.service_names
    }

    /// Serves on `listener` until `shutdown` completes, then drains calls in flight for at
    /// most `shutdown_grace`.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        // Every process serves the event log of the services it hosts, prunes it and, with
        // the NATS transport, relays it.
        let producers = std::mem::take(&mut self.producers);
        self.peers
            .set_own_address(listener.local_addr().map_err(ServeError::Listener)?);
        let background = crate::events::start_background(
            &producers,
            std::mem::take(&mut self.subscriptions),
            &self.peers,
            &self.events,
        )
        .await?;
        let follow = FollowOptions {
            poll_interval: self.events.poll_interval,
            ..FollowOptions::default()
        };
        let stopping = CancellationToken::new();
        self.add_service(event_log_server(
            EventLog::new(producers, follow).stopping_with(stopping.clone()),
        ));
        let workers: Vec<_> = std::mem::take(&mut self.workers)
            .into_iter()
            .map(|worker| tokio::spawn(worker(stopping.child_token())))
            .collect();
        let grace = self.options.shutdown_grace;
        let stop_workers = stopping.clone();
        // Streams that never end by themselves (event subscriptions, this process's own
        // consumers) and workers stop first, so draining waits only for ordinary calls.
        let shutdown = async move {
            shutdown.await;
            stopping.cancel();
            drop(background);
        };
        let served = self.serve_routes(listener, shutdown).await;
        stop_workers.cancel();
        // Workers finish what they hold (a delivery worker records the outcomes of messages in
        // flight) within the grace; past it they are dropped and their leases run out.
        if tokio::time::timeout(grace, futures::future::join_all(workers))
            .await
            .is_err()
        {
            tracing::warn!(?grace, "workers still busy when the shutdown grace ended");
        }
        served
    }

    async fn serve_routes(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        for name in &self.service_names {
            health_reporter
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        health_reporter
            .set_service_status("", ServingStatus::Serving)
            .await;

        let mut routes = self.routes;
        routes
            .add_service(health_service)
            .add_service(reflection(&self.service_names).build_v1()?)
            .add_service(reflection(&self.service_names).build_v1alpha()?);

        let stack = tower::ServiceBuilder::new()
            .layer(ObserveLayer)
            .layer(DeadlineLayer::new(self.options.request_timeout))
            .layer(AdmissionLayer::new(self.options.max_in_flight))
            .layer(AuthLayer::new(self.authenticator))
            .into_inner();

        let signalled = Arc::new(Notify::new());
        let names = self.service_names;
        let on_shutdown = {
            let signalled = signalled.clone();
            async move {
                shutdown.await;
                mark_not_serving(&health_reporter, &names).await;
                tracing::info!("shutting down: draining calls in flight");
                signalled.notify_one();
            }
        };
        // Without TCP_NODELAY the last small frame of a response can wait for the client's
        // delayed ACK (tens of milliseconds).
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let serving = tonic::transport::Server::builder()
            .layer(stack)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, on_shutdown);
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => Ok(result?),
            () = signalled.notified() => {
                match tokio::time::timeout(self.options.shutdown_grace, serving).await {
                    Ok(result) => Ok(result?),
                    Err(_) => {
                        tracing::warn!(
                            grace = ?self.options.shutdown_grace,
                            "calls still in flight when the shutdown grace ended"
                        );
                        Ok(())
                    }
                }
            }
        }
    }
}

/// Tells Kubernetes and load balancers to stop sending new calls before the listener closes.
async fn mark_not_serving(reporter: &HealthReporter, names: &[&'static str]) {
    for name in names {
        reporter
            .set_service_status(*name, ServingStatus::NotServing)
            .await;
    }
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
}

/// Reflection lists exactly what this process serves, so grpcurl and buf curl see the truth.
fn reflection(service_names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(throughline_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection");
    for name in service_names {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Why a server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the embedded descriptor set is invalid: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
    #[error("events: {0}")]
    Events(#[from] crate::error::Error),
}
