//! A scenario is a name, a setup that yields a [`Target`] to load, and a call closure.
//! Scenarios are type-erased so a run can hold a list of different ones; the extra box per
//! call is paid by the baseline as well, so it cancels out of the ratios.

use std::{
    future::Future,
    io,
    net::{Ipv4Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};
use tokio_stream::{StreamExt, adapters::Map, wrappers::TcpListenerStream};
use tonic::{
    Status,
    transport::{Channel, Endpoint},
};

use crate::{BenchError, LoadConfig, ScenarioResult, memory, run_load};

/// The boxed future a type-erased call closure returns.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;
type CallFn = Arc<dyn Fn(Channel, u64) -> CallFuture + Send + Sync>;
type SetupFuture = Pin<Box<dyn Future<Output = Result<Target, BenchError>> + Send>>;
type SetupFn = Box<dyn FnOnce() -> SetupFuture + Send>;

/// Whose peak resident memory the report attributes to a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemorySource {
    /// The server runs inside the benchmark process; the figure includes the load generator.
    CurrentProcess,
    /// The server is this child process.
    Process(u32),
    /// Nothing local to measure.
    Unmeasured,
}

/// What a scenario's setup hands to the load generator: where to connect, whose memory to
/// read, and a guard that keeps the server alive until the measurement has been taken.
pub struct Target {
    endpoint: Endpoint,
    memory: MemorySource,
    _guard: Box<dyn Send>,
}

impl Target {
    /// A server running in this process; `guard` stops it when dropped.
    pub fn in_process(endpoint: Endpoint, guard: impl Send + 'static) -> Self {
        Self {
            endpoint,
            memory: MemorySource::CurrentProcess,
            _guard: Box::new(guard),
        }
    }

    /// A server running as child process `pid`; `guard` (e.g. a child handle that kills on
    /// drop) must keep it alive, because its peak RSS is read after the load stops.
    pub fn child_process(endpoint: Endpoint, pid: u32, guard: impl Send + 'static) -> Self {
        Self {
            endpoint,
            memory: MemorySource::Process(pid),
            _guard: Box::new(guard),
        }
    }

    /// A server this harness neither owns nor measures.
    pub fn external(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            memory: MemorySource::Unmeasured,
            _guard: Box::new(()),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn memory(&self) -> MemorySource {
        self.memory
    }

    /// Peak RSS of the measured process, `None` if there is none or it cannot be read.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        match self.memory {
            MemorySource::CurrentProcess => memory::current_peak_rss_bytes().ok(),
            MemorySource::Process(pid) => memory::peak_rss_bytes(pid).ok(),
            MemorySource::Unmeasured => None,
        }
    }
}

/// A named benchmark: setup, then closed-loop calls against what it set up.
pub struct Scenario {
    name: String,
    description: String,
    setup: SetupFn,
    call: CallFn,
}

impl Scenario {
    /// `setup` runs once, inside the benchmark's runtime, before the warm-up; `call` runs for
    /// every request with one of the run's channels and a run-unique sequence number.
    pub fn new<S, SF, C, CF>(name: impl Into<String>, setup: S, call: C) -> Self
    where
        S: FnOnce() -> SF + Send + 'static,
        SF: Future<Output = Result<Target, BenchError>> + Send + 'static,
        C: Fn(Channel, u64) -> CF + Send + Sync + 'static,
        CF: Future<Output = Result<(), Status>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: String::new(),
            setup: Box::new(move || Box::pin(setup()) as SetupFuture),
            call: Arc::new(move |channel, seq| Box::pin(call(channel, seq)) as CallFuture),
        }
    }

    /// A one-line explanation printed under the report table.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Sets up the target, applies the load, reads peak memory, then tears the target down.
    pub async fn run(self, config: &LoadConfig) -> Result<ScenarioResult, BenchError> {
        let Self {
            name,
            description,
            setup,
            call,
        } = self;
        let target = setup().await?;
        if target.memory() == MemorySource::CurrentProcess
            && let Err(e) = memory::reset_current_peak_rss()
        {
            eprintln!(
                "{name}: cannot reset peak RSS ({e}); its figure may include earlier scenarios"
            );
        }
        let outcome = run_load(target.endpoint().clone(), config, move |channel, seq| {
            call(channel, seq)
        })
        .await;
        // Read before the guard drops: a child process's figures vanish when it exits.
        let peak_rss = target.peak_rss_bytes();
        drop(target);
        Ok(ScenarioResult::new(
            name,
            description,
            config,
            &outcome?,
            peak_rss,
        ))
    }
}

/// The accepted-connection stream handed to an in-process tonic server.
pub type Incoming = Map<TcpListenerStream, fn(io::Result<TcpStream>) -> io::Result<TcpStream>>;

/// Resolves when the owning [`InProcessServer`] is dropped; pass it to
/// `serve_with_incoming_shutdown`.
#[derive(Debug)]
pub struct ShutdownSignal(oneshot::Receiver<()>);

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A dropped sender means the same as a sent signal: stop.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A tonic server on a spawned task in this runtime, bound to an ephemeral loopback port.
/// Dropping it signals a graceful shutdown.
#[derive(Debug)]
pub struct InProcessServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    _task: JoinHandle<()>,
}

impl InProcessServer {
    /// Binds 127.0.0.1:0 and spawns `serve(incoming, shutdown)`. The listener is bound before
    /// the server starts and handed over, so there is no window for another process to take
    /// the port.
    pub async fn spawn<F, Fut>(serve: F) -> io::Result<Self>
    where
        F: FnOnce(Incoming, ShutdownSignal) -> Fut,
        Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        // tonic ignores its own tcp_nodelay setting for a caller-supplied stream, and Nagle's
        // algorithm would add delayed-ACK stalls to small responses.
        let incoming: Incoming = TcpListenerStream::new(listener).map(set_nodelay as fn(_) -> _);
        let (tx, rx) = oneshot::channel();
        let server = serve(incoming, ShutdownSignal(rx));
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                eprintln!("in-process server on {addr} stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            _task: task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A plaintext HTTP/2 endpoint for this server.
    pub fn endpoint(&self) -> Result<Endpoint, BenchError> {
        Ok(Endpoint::from_shared(format!("http://{}", self.addr))?)
    }
}

fn set_nodelay(stream: io::Result<TcpStream>) -> io::Result<TcpStream> {
    let stream = stream?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // An error means the server already stopped, which is what we want anyway.
            let _ = tx.send(());
        }
    }
}
