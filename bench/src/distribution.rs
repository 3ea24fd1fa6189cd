//! The distribution service on PostgreSQL, in this process:
//! - sends accepted per second: closed-loop `Send` calls (explicit SMS address, a service
//!   message), each durably queued with its enforcement, history and budget in one
//!   transaction; delivery workers off, so the figure is the API's alone;
//! - messages delivered per second: the queue those sends left, drained by the delivery
//!   workers into a local HTTP sink provider (real HTTP on loopback);
//! - a provider's rate limit: a queue larger than the limit allows drained at `RATE_LIMIT`
//!   messages per second, measured over a window after the first second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use throughline::Config;
use throughline_distribution::provider::{HttpOptions, ProviderOptions};
use throughline_harness::HttpSink;
use throughline_proto::common::v1::{Channel, ChannelSelector, Purpose, channel_selector};
use throughline_proto::distribution::v1::distribution_service_client::DistributionServiceClient;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::{
    Address, CreateTemplateRequest, Recipient, SendRequest, SmsContent, Template, TemplateVariant,
    address, recipient,
};
use throughline_runtime::config::Sources;
use tokio::sync::oneshot;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel as Connection, Endpoint};

use crate::database::{BenchDatabase, setup_error};
use crate::{BenchError, LoadConfig, run_load};

const SECRET: &str = "throughline-bench-secret-0123456789abcdef";
const TENANT: &str = "bench";
/// The provider rate limit whose accuracy is measured, messages per second.
const RATE_LIMIT: f64 = 2000.0;
/// How long the rate is measured, after a first second that is not counted.
const RATE_WINDOW: Duration = Duration::from_secs(4);

fn server_config(url: &str, sink: Option<(&HttpSink, f64)>) -> Result<Config, BenchError> {
    let env = HashMap::from([
        ("THROUGHLINE__DATABASE__URL".to_owned(), url.to_owned()),
        (
            "THROUGHLINE__DATABASE__MAX_CONNECTIONS".to_owned(),
            "16".to_owned(),
        ),
        (
            "THROUGHLINE__AUTH__HS256_SECRET".to_owned(),
            SECRET.to_owned(),
        ),
        (
            "THROUGHLINE__SERVER__SERVICES".to_owned(),
            "distribution".to_owned(),
        ),
        (
            "THROUGHLINE__SERVER__METRICS_LISTEN_ADDR".to_owned(),
            String::new(),
        ),
        (
            "THROUGHLINE__TELEMETRY__LOG_LEVEL".to_owned(),
            "warn".to_owned(),
        ),
    ]);
    let mut config: Config = Config::load(Sources {
        env: Some(env),
        ..Sources::default()
    })
    .map_err(setup_error)?;
    let distribution = &mut config.distribution;
    distribution.delivery.enabled = sink.is_some();
    if let Some((sink, rate_limit)) = sink {
        distribution.providers = [(
            "sink".to_owned(),
            ProviderOptions {
                kind: "http".into(),
                channels: vec!["sms".into()],
                priority: 0,
                rate_limit,
                smtp: None,
                http: Some(HttpOptions {
                    url: format!("{}/messages", sink.url()),
                    body: Some(
                        r#"{"to": {{ address|tojson }}, "text": {{ content.body|tojson }}}"#.into(),
                    ),
                    idempotency_header: Some("Idempotency-Key".into()),
                    response_id_pointer: Some("/id".into()),
                    ..HttpOptions::default()
                }),
            },
        )]
        .into();
    }
    Ok(config)
}

async fn serve(config: &Config) -> Result<(Endpoint, oneshot::Sender<()>), BenchError> {
    let (address, stop) = crate::stack::serve_in_process(config).await?;
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?;
    Ok((endpoint, stop))
}

fn bearer() -> Result<MetadataValue<Ascii>, BenchError> {
    let scopes = [
        "distribution:read".to_owned(),
        "distribution:write".to_owned(),
        "distribution:send".to_owned(),
    ];
    let token = throughline_runtime::auth::issue_token(
        SECRET,
        "bench",
        TENANT,
        &scopes,
        Duration::from_secs(24 * 3600),
    )
    .map_err(setup_error)?;
    format!("Bearer {token}").parse().map_err(setup_error)
}

fn authorised<T>(message: T, bearer: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}

async fn create_template(
    channel: Connection,
    bearer: &MetadataValue<Ascii>,
) -> Result<(), BenchError> {
    let template = Template {
        display_name: "Code".into(),
        variants: vec![TemplateVariant {
            channel: Channel::Sms as i32,
            locale: String::new(),
            content: Some(Content::Sms(SmsContent {
                body: "Your code is {{ code }}".into(),
                max_segments: 0,
            })),
        }],
        sample_variables: None,
        ..Template::default()
    };
    DistributionServiceClient::new(channel)
        .create_template(authorised(
            CreateTemplateRequest {
                template: Some(template),
                template_id: "code".into(),
                request_id: String::new(),
            },
            bearer,
        ))
        .await
        .map_err(setup_error)?;
    Ok(())
}

/// The send numbered `seq` of a run whose request ids start with `prefix`.
fn send(prefix: &str, seq: u64) -> SendRequest {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(
        "code".to_owned(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(format!(
                "{:06}",
                seq % 1_000_000
            ))),
        },
    );
    SendRequest {
        recipient: Some(Recipient {
            recipient: Some(recipient::Recipient::Address(Address {
                address: Some(address::Address::Phone(format!(
                    "+336{:08}",
                    seq % 100_000_000
                ))),
            })),
            ..Recipient::default()
        }),
        channel: Some(ChannelSelector {
            selector: Some(channel_selector::Selector::Channel(Channel::Sms as i32)),
        }),
        purpose: Purpose::Service as i32,
        template: "templates/code".into(),
        variables: Some(prost_types::Struct { fields }),
        request_id: format!("{prefix}-{seq}"),
        ..SendRequest::default()
    }
}

/// Gathers the service's table statistics, as autovacuum does on a running database.
async fn analyze(url: &str) -> Result<(), BenchError> {
    use sea_orm::{ConnectionTrait, Database};
    let db = Database::connect(url).await.map_err(setup_error)?;
    for table in ["distribution_messages", "distribution_message_history"] {
        db.execute_unprepared(&format!("ANALYZE distribution.{table}"))
            .await
            .map_err(setup_error)?;
    }
    db.close().await.map_err(setup_error)?;
    Ok(())
}

async fn queued(url: &str) -> Result<u64, BenchError> {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(url).await.map_err(setup_error)?;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM distribution.distribution_messages WHERE status IN (1, 2)",
        ))
        .await
        .map_err(setup_error)?
        .ok_or_else(|| setup_error("no row"))?;
    let count: i64 = row.try_get_by_index(0).map_err(setup_error)?;
    db.close().await.map_err(setup_error)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Waits until the sink has received `count` requests; the time it took from `started`.
async fn drained(sink: &HttpSink, count: u64, started: Instant) -> Result<Duration, BenchError> {
    let deadline = started + Duration::from_secs(600);
    while (sink.count() as u64) < count {
        if Instant::now() > deadline {
            return Err(setup_error(format!(
                "only {} of {count} messages delivered in 10 minutes",
                sink.count()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(started.elapsed())
}

/// Runs the three measurements; prints a table.
pub async fn distribution_bench(config: &LoadConfig) -> Result<(), BenchError> {
    let bearer = bearer()?;
    let database = BenchDatabase::postgres("distribution").await?;
    let url = database.url();

    // Accepted sends: the API alone.
    let (endpoint, stop) = serve(&server_config(&url, None)?).await?;
    create_template(endpoint.connect().await?, &bearer).await?;
    // A service that has been running has statistics on its tables; a fresh one plans its
    // first statements on empty tables (and keeps those plans until autovacuum's first
    // ANALYZE, a minute in). Measure the running one.
    fill(&endpoint, &bearer, "seed", 2_000).await?;
    analyze(&url).await?;
    let call_bearer = bearer.clone();
    let outcome = run_load(endpoint, config, move |channel, seq| {
        let request = authorised(send("load", seq), &call_bearer);
        async move {
            DistributionServiceClient::new(channel)
                .send(request)
                .await
                .map(|_| ())
        }
    })
    .await?;
    drop(stop);
    let accepted = outcome.ok as f64 / outcome.elapsed.as_secs_f64();
    let queue = queued(&url).await?;

    // Delivered messages: the queue the sends left, into a local HTTP provider.
    let sink = HttpSink::start().await;
    let started = Instant::now();
    let (_endpoint, stop) = serve(&server_config(&url, Some((&sink, 0.0)))?).await?;
    let took = drained(&sink, queue, started).await?;
    drop(stop);
    let delivered = queue as f64 / took.as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    database.drop_now().await;

    // A rate limit: a queue of `RATE_LIMIT × (window + 2 s)` drained at the limit.
    let database = BenchDatabase::postgres("distribution_rate").await?;
    let url = database.url();
    let (endpoint, stop) = serve(&server_config(&url, None)?).await?;
    create_template(endpoint.connect().await?, &bearer).await?;
    let backlog = (RATE_LIMIT * (RATE_WINDOW.as_secs_f64() + 2.0)) as u64;
    fill(&endpoint, &bearer, "rate", backlog).await?;
    analyze(&url).await?;
    drop(stop);
    let sink = HttpSink::start().await;
    let (_endpoint, stop) = serve(&server_config(&url, Some((&sink, RATE_LIMIT)))?).await?;
    drained(&sink, 1, Instant::now()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sink.count();
    let window_start = Instant::now();
    tokio::time::sleep(RATE_WINDOW).await;
    let measured = (sink.count() - before) as f64 / window_start.elapsed().as_secs_f64();
    drop(stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    database.drop_now().await;

    println!(
        "distribution: PostgreSQL, {} callers over {} connections for accepted sends; \
         delivery to a local HTTP provider on loopback\n",
        config.callers, config.connections
    );
    println!("| measure | figure | p50 ms | p99 ms | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| sends accepted (queued durably, enforced) | {accepted:.0}/s | {:.2} | {:.2} | ≥ 10,000/s |",
        outcome.histogram.value_at_quantile(0.5) as f64 / 1000.0,
        outcome.histogram.value_at_quantile(0.99) as f64 / 1000.0,
    );
    println!("| messages delivered ({queue} queued) | {delivered:.0}/s | | | ≥ 5,000/s |");
    println!(
        "| provider rate limit {RATE_LIMIT:.0}/s held at | {measured:.0}/s ({:+.1} %) | | | within ±5 % |",
        (measured / RATE_LIMIT - 1.0) * 100.0
    );
    if outcome.error_count() > 0 {
        println!("\nfailed sends: {:?}", outcome.errors);
    }
    println!();
    Ok(())
}

/// Queues `count` sends (request ids starting with `prefix`) with a few concurrent callers.
async fn fill(
    endpoint: &Endpoint,
    bearer: &MetadataValue<Ascii>,
    prefix: &'static str,
    count: u64,
) -> Result<(), BenchError> {
    const CALLERS: u64 = 32;
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let mut client = DistributionServiceClient::new(endpoint.connect().await?);
        let bearer = bearer.clone();
        tasks.push(tokio::spawn(async move {
            let mut seq = caller;
            while seq < count {
                client
                    .send(authorised(send(prefix, seq), &bearer))
                    .await
                    .map_err(setup_error)?;
                seq += CALLERS;
            }
            Ok::<(), BenchError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(setup_error)??;
    }
    Ok(())
}
