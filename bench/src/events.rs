//! `events`: events from a producer's commit to a consumer's effect, through each transport,
//! on PostgreSQL. The producer (the profile service's outbox) and the consumer (a consumer of
//! the orchestration service, claiming each event and moving its cursor in its own
//! transaction) run in this process beside the server that serves the event log or relays
//! it to NATS JetStream.
//!
//! Two measurements per transport:
//! - throughput: writers commit transactions of `WRITE_BATCH` events as fast as they can for
//!   the measured period; the figure is events committed divided by the time until the
//!   consumer has applied the last of them;
//! - latency at `PACED_RATE` events/s: the time from each transaction's commit to the
//!   consumer's handler seeing its events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use hdrhistogram::Histogram;
use sea_orm::{DatabaseConnection, TransactionTrait};
use throughline::Config;
use throughline_proto::event::v1::Event;
use throughline_proto::event::v1::event_log_service_client::EventLogServiceClient;
use throughline_runtime::config::Sources;
use throughline_runtime::events::{Consumer, Handler, JetStream, Outbox};
use tokio::sync::oneshot;

use crate::database::{BenchDatabase, setup_error};
use crate::{BenchError, LoadConfig};

const SECRET: &str = "bench-secret-bench-secret-bench-secret!";
/// Events per producer transaction in the throughput run.
const WRITE_BATCH: usize = 100;
/// Concurrent producer transactions in the throughput run.
const WRITERS: usize = 4;
/// The paced rate of the latency run, in events per second, and its transactions.
const PACED_RATE: u64 = 5_000;
const PACED_BATCH: u64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Grpc,
    Nats,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Self::Grpc => "gRPC event log",
            Self::Nats => "NATS JetStream",
        }
    }
}

/// When each event was committed and when the consumer saw it.
#[derive(Default)]
struct Timings {
    committed: Mutex<HashMap<String, Instant>>,
    seen: Mutex<Vec<(String, Instant)>>,
}

impl Timings {
    fn commit(&self, events: &[Event], at: Instant) {
        if let Ok(mut committed) = self.committed.lock() {
            for event in events {
                committed.insert(event.id.clone(), at);
            }
        }
    }

    fn seen_count(&self) -> usize {
        self.seen.lock().map_or(0, |seen| seen.len())
    }

    fn last_seen(&self) -> Option<Instant> {
        self.seen
            .lock()
            .ok()
            .and_then(|seen| seen.iter().map(|(_, at)| *at).max())
    }

    fn latencies(&self) -> Result<Histogram<u64>, BenchError> {
        let mut histogram = Histogram::<u64>::new(3).map_err(setup_error)?;
        let committed = self.committed.lock().map_err(setup_error)?;
        let seen = self.seen.lock().map_err(setup_error)?;
        for (id, at) in seen.iter() {
            if let Some(commit) = committed.get(id) {
                let micros = at.saturating_duration_since(*commit).as_micros();
                histogram
                    .record(u64::try_from(micros).unwrap_or(u64::MAX))
                    .map_err(setup_error)?;
            }
        }
        Ok(histogram)
    }
}

/// The consumer's effect: note when it saw the event.
fn recording_handler(timings: Arc<Timings>) -> Handler {
    Arc::new(move |_, event| {
        let timings = timings.clone();
        let id = event.id.clone();
        async move {
            let now = Instant::now();
            if let Ok(mut seen) = timings.seen.lock() {
                seen.push((id, now));
            }
            Ok(())
        }
        .boxed()
    })
}

fn config(url: &str, transport: Transport, prefix: &str) -> Result<Config, BenchError> {
    let mut env: HashMap<String, String> = [
        ("THROUGHLINE__DATABASE__URL", url),
        ("THROUGHLINE__DATABASE__MAX_CONNECTIONS", "16"),
        ("THROUGHLINE__AUTH__HS256_SECRET", SECRET),
        ("THROUGHLINE__SERVER__SERVICES", "profile,orchestration"),
        ("THROUGHLINE__SERVER__METRICS_LISTEN_ADDR", ""),
        ("THROUGHLINE__SERVER__REQUEST_TIMEOUT", "10m"),
        ("THROUGHLINE__TELEMETRY__LOG_LEVEL", "warn"),
        ("THROUGHLINE__EVENTS__NATS__PREFIX", prefix),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    if transport == Transport::Nats {
        env.insert("THROUGHLINE__EVENTS__TRANSPORT".into(), "nats".into());
        if let Ok(url) = std::env::var("THROUGHLINE_BENCH_NATS_URL") {
            env.insert("THROUGHLINE__EVENTS__NATS__URL".into(), url);
        }
    }
    Config::load(Sources {
        env: Some(env),
        ..Sources::default()
    })
    .map_err(setup_error)
}

/// One transport's run on a fresh database: the server, the producer's and the consumer's
/// connections, the running consumer.
struct Run {
    producer: DatabaseConnection,
    timings: Arc<Timings>,
    _consumer: tokio::task::JoinHandle<()>,
    _server: oneshot::Sender<()>,
}

async fn start(url: &str, transport: Transport) -> Result<Run, BenchError> {
    let prefix = format!("bench-{}", std::process::id());
    let config = config(url, transport, &prefix)?;
    let (address, stop) = crate::stack::serve_in_process(&config).await?;

    let producer = throughline_runtime::db::connect(&config.database, "profile")
        .await
        .map_err(setup_error)?;
    let consumer_db = throughline_runtime::db::connect(&config.database, "orchestration")
        .await
        .map_err(setup_error)?;
    let timings = Arc::new(Timings::default());
    let consumer = Consumer::new("orchestration", "bench", consumer_db);
    let handler = recording_handler(timings.clone());
    let task = match transport {
        Transport::Grpc => {
            let token = throughline_runtime::auth::issue_token(
                SECRET,
                "bench",
                "bench",
                &["events:read".to_owned()],
                Duration::from_secs(3600),
            )
            .map_err(setup_error)?;
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
                .http2_adaptive_window(true)
                .connect()
                .await?;
            let bearer: tonic::metadata::MetadataValue<_> =
                format!("Bearer {token}").parse().map_err(setup_error)?;
            let client = EventLogServiceClient::with_interceptor(
                channel,
                move |mut request: tonic::Request<()>| {
                    request
                        .metadata_mut()
                        .insert("authorization", bearer.clone());
                    Ok(request)
                },
            );
            tokio::spawn(async move { consumer.run(client, "profile", &[], handler).await })
        }
        Transport::Nats => {
            let jetstream = JetStream::connect(&config.events.nats, config.events.retention)
                .await
                .map_err(setup_error)?;
            tokio::spawn(
                async move { consumer.run_nats(&jetstream, "profile", &[], handler).await },
            )
        }
    };
    Ok(Run {
        producer,
        timings,
        _consumer: task,
        _server: stop,
    })
}

fn events(prefix: &str, start: u64, count: u64) -> Vec<Event> {
    (start..start + count)
        .map(|index| Event {
            id: format!("{prefix}-{index}"),
            source: "profile".into(),
            spec_version: "1.0".into(),
            r#type: "profile.updated".into(),
            subject: format!("profiles/p{}", index % 10_000),
            tenant: "bench".into(),
            ..Event::default()
        })
        .collect()
}

/// Commits `batch` in one producer transaction and notes when.
async fn commit(
    producer: &DatabaseConnection,
    timings: &Timings,
    batch: &[Event],
) -> Result<(), BenchError> {
    let transaction = producer.begin().await.map_err(setup_error)?;
    Outbox::new("profile")
        .append_all(&transaction, batch)
        .await
        .map_err(setup_error)?;
    transaction.commit().await.map_err(setup_error)?;
    timings.commit(batch, Instant::now());
    Ok(())
}

/// Waits until the consumer has seen `count` events, or `patience` passes.
async fn drain(run: &Run, count: usize, patience: Duration) -> Result<(), BenchError> {
    let deadline = Instant::now() + patience;
    while run.timings.seen_count() < count {
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!(
                "the consumer saw {} of {count} events",
                run.timings.seen_count()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Events per second from the first commit to the consumer's last effect.
async fn throughput(run: &Run, label: &str, period: Duration) -> Result<f64, BenchError> {
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let producer = run.producer.clone();
        let timings = run.timings.clone();
        let prefix = format!("{label}-w{writer}");
        writers.push(tokio::spawn(async move {
            let mut written = 0_u64;
            while started.elapsed() < period {
                let batch = events(&prefix, written, WRITE_BATCH as u64);
                commit(&producer, &timings, &batch).await?;
                written += WRITE_BATCH as u64;
            }
            Ok::<u64, BenchError>(written)
        }));
    }
    let mut total = 0;
    for writer in writers {
        total += writer.await.map_err(setup_error)??;
    }
    drain(run, total as usize, Duration::from_secs(120)).await?;
    let last = run.timings.last_seen().unwrap_or_else(Instant::now);
    Ok(total as f64 / last.duration_since(started).as_secs_f64())
}

/// Commit-to-consumer latency at `PACED_RATE`.
async fn paced_latency(run: &Run, period: Duration) -> Result<Histogram<u64>, BenchError> {
    // Only the paced events count.
    if let Ok(mut seen) = run.timings.seen.lock() {
        seen.clear();
    }
    let mut tick =
        tokio::time::interval(Duration::from_micros(1_000_000 * PACED_BATCH / PACED_RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut written = 0;
    while started.elapsed() < period {
        tick.tick().await;
        commit(
            &run.producer,
            &run.timings,
            &events("paced", written, PACED_BATCH),
        )
        .await?;
        written += PACED_BATCH;
    }
    drain(run, written as usize, Duration::from_secs(60)).await?;
    run.timings.latencies()
}

/// Runs `events` for both transports; prints a table.
pub async fn events_bench(config: &LoadConfig) -> Result<(), BenchError> {
    let mut lines = Vec::new();
    for transport in [Transport::Grpc, Transport::Nats] {
        let database = BenchDatabase::postgres("events").await?;
        let run = start(&database.url(), transport).await?;
        // Warm up: connections, the stream and the durable consumer exist before measuring.
        commit(
            &run.producer,
            &run.timings,
            &events("warm", 0, WRITE_BATCH as u64),
        )
        .await?;
        drain(&run, WRITE_BATCH, Duration::from_secs(30)).await?;
        if let Ok(mut seen) = run.timings.seen.lock() {
            seen.clear();
        }
        let rate = throughput(&run, "load", config.duration).await?;
        let latency = paced_latency(&run, config.duration).await?;
        lines.push(format!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} |",
            transport.label(),
            rate,
            latency.value_at_quantile(0.5) as f64 / 1000.0,
            latency.value_at_quantile(0.99) as f64 / 1000.0,
            latency.max() as f64 / 1000.0,
        ));
        drop(run);
        tokio::time::sleep(Duration::from_millis(300)).await;
        database.drop_now().await;
    }
    println!(
        "events: PostgreSQL outbox → transport → consumer (claim + cursor in its own transaction); \
         throughput with {WRITERS} writers of {WRITE_BATCH}-event transactions, latency at \
         {PACED_RATE} events/s in {PACED_BATCH}-event transactions\n"
    );
    println!(
        "| transport | events/s commit → consumer | p50 ms at {PACED_RATE}/s | p99 ms at {PACED_RATE}/s | max ms |"
    );
    println!("|---|---|---|---|---|");
    for line in lines {
        println!("{line}");
    }
    println!();
    Ok(())
}
