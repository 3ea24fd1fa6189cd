//! `throughline`: serve any subset of the services, migrate them, inspect the configuration,
//! issue development tokens, apply journeys kept as YAML.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod events;
mod journeys;

use clap::{Args, Parser, Subcommand};
use throughline::app;
use throughline::config::Config;
use throughline_runtime::config::{ConfigError, Sources, Value};
use throughline_runtime::{auth, server, shutdown, telemetry};
use tokio::net::TcpListener;

/// mimalloc: under load the system allocator spent a tenth of the server's time in
/// malloc, free and their consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "throughline",
    version,
    about = "Throughline: a composable customer-experience platform"
)]
struct Cli {
    /// A TOML or YAML configuration file (over the embedded defaults, under THROUGHLINE__* env).
    #[arg(long, global = true, env = "THROUGHLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run services (by default all five, in one process).
    Serve(ServeArgs),
    /// Apply pending database migrations, then exit.
    Migrate(ServicesArg),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Inspect the services' event logs.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Journeys kept as YAML files.
    #[command(subcommand)]
    Journeys(JourneysCommand),
}

#[derive(Subcommand)]
enum JourneysCommand {
    /// Create or update each journey of the files and publish it when its draft changed;
    /// applying the same files again changes nothing.
    Apply {
        /// A YAML file of journeys, or a directory of them; repeat for more.
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// The server hosting the orchestration service.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// A bearer token with orchestration:write and orchestration:admin (to publish).
        #[arg(long, env = "THROUGHLINE_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print a service's events as they are committed (one tab-separated line each:
    /// cursor, time, tenant, type, subject, id), from the start or a cursor.
    Tail {
        /// The server hosting the source, e.g. http://127.0.0.1:50051.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// The producing service: profile, interaction, feedback, orchestration, distribution.
        #[arg(long)]
        source: String,
        /// Only events of this type; repeat for more.
        #[arg(long = "type")]
        types: Vec<String>,
        /// Start after this cursor (printed in each line's first column).
        #[arg(long, default_value = "")]
        from: String,
        /// A bearer token with events:read.
        #[arg(long, env = "THROUGHLINE_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Args)]
struct ServicesArg {
    /// Comma-separated services: profile, interaction, feedback, orchestration, distribution.
    #[arg(long, value_delimiter = ',')]
    services: Option<Vec<String>>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    services: ServicesArg,
    /// The gRPC address, e.g. 0.0.0.0:50051.
    #[arg(long)]
    listen: Option<String>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets redacted.
    Print,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Sign an HS256 token with `auth.hs256_secret`, for development and tests.
    Issue {
        #[arg(long)]
        tenant: String,
        /// A scope to grant, such as profile:read; repeat for more, `profile:*` or `*` for all.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long, default_value = "developer")]
        subject: String,
        /// How long the token is valid, e.g. 1h or 30m.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

fn load_config(cli: &Cli, overrides: Vec<(String, Value)>) -> Result<Config, ConfigError> {
    Config::load(Sources {
        file: cli.config.clone(),
        overrides,
        ..Sources::default()
    })
}

fn service_overrides(services: &ServicesArg) -> Vec<(String, Value)> {
    services
        .services
        .iter()
        .map(|list| ("server.services".to_owned(), Value::from(list.clone())))
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = match &cli.command {
        Command::Serve(args) => {
            let mut overrides = service_overrides(&args.services);
            if let Some(listen) = &args.listen {
                overrides.push(("server.listen_addr".to_owned(), Value::from(listen.clone())));
            }
            overrides
        }
        Command::Migrate(services) => service_overrides(services),
        Command::Config(_) | Command::Token(_) | Command::Events(_) | Command::Journeys(_) => {
            Vec::new()
        }
    };
    let config = match load_config(&cli, overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Config(ConfigCommand::Print) => match config.to_redacted_toml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(error),
        },
        Command::Token(TokenCommand::Issue {
            tenant,
            scopes,
            subject,
            ttl,
        }) => {
            if config.auth.hs256_secret.is_empty() {
                eprintln!("error: auth.hs256_secret is not set; tokens are signed with it");
                return ExitCode::from(2);
            }
            match auth::issue_token(
                config.auth.hs256_secret.expose(),
                &subject,
                &tenant,
                &scopes,
                ttl,
            ) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(error) => fail(error),
            }
        }
        Command::Events(EventsCommand::Tail {
            endpoint,
            source,
            types,
            from,
            token,
        }) => run_async(events::tail(endpoint, token, source, types, from)),
        Command::Journeys(JourneysCommand::Apply {
            files,
            endpoint,
            token,
        }) => run_async(journeys::apply(endpoint, token, files)),
        Command::Serve(_) => run_async(serve(config)),
        Command::Migrate(_) => run_async(migrate(config)),
    }
}

fn run_async<F>(future: F) -> ExitCode
where
    F: Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    // The runtime is sized by the CPUs the process may really use (cgroup quota included):
    // Tokio's default reads std::thread::available_parallelism, which honours the quota.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(error),
    };
    match runtime.block_on(future) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = telemetry::init(&config.telemetry)?;
    let listener = TcpListener::bind(config.server.listen_addr)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on server.listen_addr {}: {e}",
                config.server.listen_addr
            )
        })?;
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(address) = config.server.metrics_listen_addr {
        let metrics_listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on server.metrics_listen_addr {address}: {e}"))?;
        let bound = metrics_listener.local_addr()?;
        tracing::info!(address = %bound, "serving metrics");
        let registry = telemetry.prometheus();
        tokio::spawn(async move {
            let stopped = async {
                let _ = metrics_stopped.await;
            };
            if let Err(error) = server::serve_metrics(metrics_listener, registry, stopped).await {
                tracing::error!(error = %error, "metrics endpoint failed");
            }
        });
    }
    let result = app::serve(&config, listener, shutdown::signal()).await;
    let _ = stop_metrics.send(());
    if let Err(error) = &result {
        tracing::error!(error = %error, "server stopped");
    } else {
        tracing::info!("stopped");
    }
    telemetry.shutdown().await;
    Ok(result?)
}

async fn migrate(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = telemetry::init(&config.telemetry)?;
    let result = app::migrate_services(&config, &config.server.services).await;
    telemetry.shutdown().await;
    Ok(result?)
}
