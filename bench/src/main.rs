//! `throughline-bench`: runs the selected scenarios and prints how each compares with the
//! bare tonic echo baseline.

use std::{num::NonZeroUsize, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, ValueEnum};
use throughline_bench::{
    LoadConfig, Report, Scenario, echo::echo_scenario, interaction, profile,
    stack::stack_health_scenario,
};

/// mimalloc: under load the system allocator spent a tenth of the server's time in
/// malloc, free and their consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "throughline-bench",
    about = "Closed-loop gRPC benchmarks of Throughline against a bare tonic echo baseline"
)]
struct Args {
    /// Concurrent closed-loop callers.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// HTTP/2 connections the callers are spread over, round-robin.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured period per scenario, e.g. `10s`, `1m`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unrecorded warm-up before each measured period.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// A call still running after this long is abandoned and counted as an error.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    call_timeout: Duration,
    /// Request payload size for the echo baseline.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Scenarios to run, in order (repeat the flag or separate with commas). Default: all.
    /// Include `echo` to get the ratio column.
    #[arg(long = "scenario", value_enum, value_delimiter = ',')]
    scenarios: Vec<ScenarioName>,
    /// Profiles seeded for the profile-* scenarios (once per size, then reused).
    #[arg(long, default_value_t = 1_000_000)]
    profiles: u64,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioName {
    /// Bare tonic unary echo, server in this process: the baseline.
    Echo,
    /// Throughline's server stack answering health checks, all five services in this process.
    StackHealth,
    /// Streaming ingest of interactions on PostgreSQL (against a raw COPY) and SQLite.
    InteractionIngest,
    /// A page of one customer's timeline among many stored interactions, PostgreSQL.
    InteractionTimeline,
    /// The same on SQLite.
    InteractionTimelineSqlite,
    /// A page of a different customer's timeline each call, PostgreSQL.
    InteractionTimelineSpread,
    /// Events from commit to consumer through the gRPC event log and NATS JetStream,
    /// PostgreSQL.
    Events,
    /// GetProfile on PostgreSQL with `--profiles` seeded profiles.
    ProfileGet,
    /// ResolveIdentity of a known email on PostgreSQL.
    ProfileResolve,
    /// CheckConsent by email on PostgreSQL.
    ProfileCheckConsent,
    /// Sends accepted, messages delivered to a local HTTP provider, and a provider rate limit,
    /// PostgreSQL.
    Distribution,
    /// GetMetrics by channel for one survey over a million seeded responses, PostgreSQL.
    FeedbackMetrics,
    /// SubmitResponse throughput, PostgreSQL.
    FeedbackSubmit,
    /// The journey engine's timers: lateness, node executions per second, memory with a
    /// million waiting instances, PostgreSQL.
    OrchestrationTimers,
}

impl ScenarioName {
    fn build(self, args: &Args) -> Scenario {
        match self {
            Self::Echo => echo_scenario(args.payload_bytes),
            Self::StackHealth => stack_health_scenario(),
            // Measured by its own loop (see `run`); not a closed-loop scenario.
            Self::InteractionIngest => unreachable!("interaction-ingest runs on its own"),
            Self::Events => unreachable!("events runs on its own"),
            Self::Distribution => unreachable!("distribution runs on its own"),
            Self::FeedbackMetrics => unreachable!("feedback-metrics runs on its own"),
            Self::FeedbackSubmit => unreachable!("feedback-submit runs on its own"),
            Self::OrchestrationTimers => unreachable!("orchestration-timers runs on its own"),
            Self::InteractionTimeline => interaction::timeline_scenario(),
            Self::InteractionTimelineSqlite => interaction::timeline_sqlite_scenario(),
            Self::InteractionTimelineSpread => interaction::timeline_spread_scenario(),
            Self::ProfileGet => profile::profile_get_scenario(args.profiles),
            Self::ProfileResolve => profile::profile_resolve_scenario(args.profiles),
            Self::ProfileCheckConsent => profile::profile_check_consent_scenario(args.profiles),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);

    // One multi-thread runtime, one worker per core, shared by the load generator and any
    // in-process server. Separate runtimes would have to split the cores (on a 2-core machine
    // one worker each, so neither side can use the other's idle time) or oversubscribe them
    // and leave the balancing to the OS scheduler; a single work-stealing pool balances
    // client and server work itself. Servers run as child processes bring their own runtime
    // and compete with the generator for the same cores, as any server on this box would.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("throughline-bench: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    match runtime.block_on(run(&args, cores)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("throughline-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, cores: usize) -> Result<(), throughline_bench::BenchError> {
    let config = LoadConfig {
        callers: args.callers,
        connections: args.connections,
        warmup: args.warmup,
        duration: args.duration,
        call_timeout: args.call_timeout,
    };
    let selected = if args.scenarios.is_empty() {
        ScenarioName::value_variants().to_vec()
    } else {
        args.scenarios.clone()
    };

    let mut results = Vec::with_capacity(selected.len());
    for name in selected {
        if name == ScenarioName::InteractionIngest {
            eprintln!(
                "running interaction-ingest ({} streams, {} measured per database)",
                config.connections,
                humantime::format_duration(config.duration)
            );
            interaction::ingest(&config).await?;
            continue;
        }
        if name == ScenarioName::Events {
            eprintln!(
                "running events (gRPC and NATS, {} per measurement)",
                humantime::format_duration(config.duration)
            );
            throughline_bench::events::events_bench(&config).await?;
            continue;
        }
        if name == ScenarioName::Distribution {
            eprintln!(
                "running distribution (sends, deliveries, a rate limit; {} measured)",
                humantime::format_duration(config.duration)
            );
            throughline_bench::distribution::distribution_bench(&config).await?;
            continue;
        }
        if name == ScenarioName::FeedbackMetrics {
            eprintln!("running feedback-metrics (seeds a million responses first)");
            throughline_bench::feedback::metrics_bench().await?;
            continue;
        }
        if name == ScenarioName::FeedbackSubmit {
            eprintln!(
                "running feedback-submit ({} callers over {} connections, {} measured)",
                config.callers,
                config.connections,
                humantime::format_duration(config.duration)
            );
            throughline_bench::feedback::submit_bench(&config).await?;
            continue;
        }
        if name == ScenarioName::OrchestrationTimers {
            eprintln!("running orchestration-timers (seeds 1.2 million instances)");
            throughline_bench::orchestration::timers_bench().await?;
            continue;
        }
        let scenario = name.build(args);
        eprintln!(
            "running {} ({} callers over {} connections, {} warm-up + {} measured)",
            scenario.name(),
            config.callers,
            config.connections,
            humantime::format_duration(config.warmup),
            humantime::format_duration(config.duration),
        );
        results.push(scenario.run(&config).await?);
    }

    let report = Report::new(cores, &config, results);
    println!("{report}");
    if let Some(path) = &args.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_documented_load() {
        let args = Args::try_parse_from(["throughline-bench"]).unwrap();
        assert_eq!((args.callers, args.connections), (64, 4));
        assert_eq!(args.warmup, Duration::from_secs(2));
        assert_eq!(args.duration, Duration::from_secs(10));
        assert_eq!(args.payload_bytes, 64);
        assert!(args.scenarios.is_empty());
        assert!(args.json.is_none());
    }

    #[test]
    fn flags_override_the_defaults() {
        let args = Args::try_parse_from([
            "throughline-bench",
            "--duration",
            "5s",
            "--warmup",
            "500ms",
            "--scenario",
            "echo",
            "--json",
            "out.json",
        ])
        .unwrap();
        assert_eq!(args.duration, Duration::from_secs(5));
        assert_eq!(args.warmup, Duration::from_millis(500));
        assert_eq!(args.scenarios, [ScenarioName::Echo]);
        assert_eq!(args.json, Some(PathBuf::from("out.json")));
        assert!(Args::try_parse_from(["throughline-bench", "--scenario", "nope"]).is_err());
    }
}
