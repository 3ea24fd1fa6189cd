//! The closed-loop load generator: each caller issues its next call only when the previous
//! one has returned, so throughput is what the server sustains at a fixed concurrency.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tonic::{
    Code, Status,
    transport::{Channel, Endpoint},
};

use crate::BenchError;

/// The highest latency the histograms track, in microseconds; anything slower is clamped
/// to it. Well above any sane call timeout, so clamping means something is badly wrong.
const MAX_TRACKED_MICROS: u64 = 60 * 1_000_000;
/// Three significant figures: 0.1% relative error, the usual hdrhistogram trade-off.
const SIGNIFICANT_FIGURES: u8 = 3;
/// Error key for calls the load generator abandoned, distinct from the server's own
/// `DeadlineExceeded` so a hung server is not mistaken for one that answers with an error.
pub const CLIENT_TIMEOUT: &str = "ClientTimeout";

/// How much load to apply and for how long.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent closed-loop callers.
    pub callers: usize,
    /// HTTP/2 connections the callers share round-robin. One connection serialises framing
    /// through a single task and tops out well below what the server can do.
    pub connections: usize,
    /// Calls made in this period are not recorded; it fills connection windows, allocator
    /// pools and caches.
    pub warmup: Duration,
    /// The measured period.
    pub duration: Duration,
    /// A call still running after this long is abandoned and counted as [`CLIENT_TIMEOUT`],
    /// which bounds the run even if the server stops answering.
    pub call_timeout: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            callers: 64,
            connections: 4,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            call_timeout: Duration::from_secs(5),
        }
    }
}

impl LoadConfig {
    fn validate(&self) -> Result<(), BenchError> {
        if self.callers == 0 {
            return Err(BenchError::Config("callers must be at least 1".into()));
        }
        if self.connections == 0 {
            return Err(BenchError::Config("connections must be at least 1".into()));
        }
        if self.duration.is_zero() {
            return Err(BenchError::Config("duration must be positive".into()));
        }
        if self.call_timeout.is_zero() {
            return Err(BenchError::Config("call timeout must be positive".into()));
        }
        Ok(())
    }
}

/// What the measured period produced, before it is reduced to a report row.
#[derive(Debug)]
pub struct LoadOutcome {
    /// Latencies of successful calls, in microseconds.
    pub histogram: Histogram<u64>,
    /// Successful calls.
    pub ok: u64,
    /// Failed calls by gRPC code name (`Code`'s `Debug` form, e.g. `Unavailable`), plus
    /// [`CLIENT_TIMEOUT`].
    pub errors: BTreeMap<String, u64>,
    /// From the end of warm-up until the last in-flight call returned; calls that straddle
    /// the end are counted, so the tail is counted in the time too.
    pub elapsed: Duration,
}

impl LoadOutcome {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A histogram with the harness's bounds: 1 µs to 60 s at three significant figures.
pub fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, SIGNIFICANT_FIGURES)
        .map_err(|e| BenchError::Histogram(e.to_string()))
}

/// Opens `connections` separate HTTP/2 connections to `endpoint`. Each `connect` builds its
/// own channel, and so its own connection; cloning one channel would share a single one.
pub async fn connect(endpoint: &Endpoint, connections: usize) -> Result<Vec<Channel>, BenchError> {
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| BenchError::Connect {
                endpoint: endpoint.uri().to_string(),
                source,
            })?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Runs `call` in `config.callers` closed loops against `endpoint` and returns the measured
/// period's latencies and errors.
///
/// `seq` is unique across all callers of one run (caller `i` of `n` gets `i`, `i + n`,
/// `i + 2n`, ...), so a scenario can derive distinct keys from it without shared state.
pub async fn run_load<F, Fut>(
    endpoint: Endpoint,
    config: &LoadConfig,
    call: F,
) -> Result<LoadOutcome, BenchError>
where
    F: Fn(Channel, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    config.validate()?;
    let channels = connect(&endpoint, config.connections).await?;
    let call = Arc::new(call);

    let start = Instant::now();
    let measure_from = start + config.warmup;
    let stop_at = measure_from + config.duration;
    let callers = config.callers as u64;

    let mut tasks = JoinSet::new();
    for (id, channel) in (0..callers).zip(channels.iter().cycle()) {
        let caller = Caller {
            first_seq: id,
            seq_step: callers,
            channel: channel.clone(),
            measure_from,
            stop_at,
            call_timeout: config.call_timeout,
        };
        tasks.spawn(caller.run(Arc::clone(&call)));
    }

    let mut histogram = new_histogram()?;
    let mut ok = 0;
    let mut errors = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let stats = joined??;
        histogram
            .add(&stats.histogram)
            .map_err(|e| BenchError::Histogram(e.to_string()))?;
        ok += stats.ok;
        for (code, count) in stats.errors {
            *errors.entry(code).or_insert(0) += count;
        }
    }
    let elapsed = Instant::now().saturating_duration_since(measure_from);

    Ok(LoadOutcome {
        histogram,
        ok,
        errors,
        elapsed,
    })
}

struct Caller {
    first_seq: u64,
    seq_step: u64,
    channel: Channel,
    measure_from: Instant,
    stop_at: Instant,
    call_timeout: Duration,
}

struct CallerStats {
    histogram: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Caller {
    async fn run<F, Fut>(self, call: Arc<F>) -> Result<CallerStats, BenchError>
    where
        F: Fn(Channel, u64) -> Fut,
        Fut: Future<Output = Result<(), Status>>,
    {
        // Per-caller histograms merged at the end: no shared state on the hot path.
        let mut stats = CallerStats {
            histogram: new_histogram()?,
            ok: 0,
            errors: BTreeMap::new(),
        };
        let mut seq = self.first_seq;
        loop {
            let started = Instant::now();
            if started >= self.stop_at {
                break;
            }
            let result =
                tokio::time::timeout(self.call_timeout, call(self.channel.clone(), seq)).await;
            let finished = Instant::now();
            seq = seq.wrapping_add(self.seq_step);
            // A call that fails before awaiting anything (a client-side check, a rejected
            // request) would otherwise spin this task without ever yielding, starving the
            // other callers and an in-process server of the worker thread.
            tokio::task::consume_budget().await;
            if started < self.measure_from {
                continue;
            }
            match result {
                Ok(Ok(())) => {
                    stats.ok += 1;
                    stats
                        .histogram
                        .saturating_record(micros(finished.duration_since(started)));
                }
                Ok(Err(status)) => *stats.errors.entry(code_name(status.code())).or_insert(0) += 1,
                Err(_) => *stats.errors.entry(CLIENT_TIMEOUT.to_owned()).or_insert(0) += 1,
            }
        }
        Ok(stats)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn code_name(code: Code) -> String {
    format!("{code:?}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rejects_empty_configurations() {
        let zero_callers = LoadConfig {
            callers: 0,
            ..LoadConfig::default()
        };
        assert!(zero_callers.validate().is_err());
        let zero_connections = LoadConfig {
            connections: 0,
            ..LoadConfig::default()
        };
        assert!(zero_connections.validate().is_err());
        assert!(LoadConfig::default().validate().is_ok());
    }

    #[test]
    fn code_names_are_stable_identifiers() {
        assert_eq!(code_name(Code::Unavailable), "Unavailable");
        assert_eq!(code_name(Code::ResourceExhausted), "ResourceExhausted");
    }
}
