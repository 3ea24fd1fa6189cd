//! The interaction service's benchmarks.
//!
//! - `interaction-ingest`: streaming ingest (`RecordInteractions`, batches of 1,000, several
//!   streams each with batches in flight) through the full server stack in this process, on
//!   PostgreSQL and on SQLite, in interactions per second. On PostgreSQL the same run first
//!   measures a raw `COPY` of the same rows into the same table as the baseline the issue
//!   compares with. SQLite has no COPY, and its target is absolute; as its ceiling the same run
//!   measures plain multi-row `INSERT`s of the same rows into the same table, each row with
//!   the `interaction.recorded` event the service writes beside it in the same transaction,
//!   through the same driver, connection settings and outbox statements as the service's
//!   writer, in transactions as large as the service's group commits.
//! - `interaction-timeline` / `interaction-timeline-sqlite`: the first page (20) of the
//!   timeline of one customer with many stored interactions (`THROUGHLINE_BENCH_TIMELINE_ROWS`,
//!   one million by default; the issue's target is at ten million), closed loop through the
//!   full stack. The rows are seeded once with set-based SQL into a database (PostgreSQL) or
//!   file (SQLite, in the temporary directory) named after their number, and reused by later
//!   runs. `interaction-timeline-spread` reads the same database's other customers, each call
//!   another one's, so that concurrent reads never share a page.
//!
//! PostgreSQL comes from `THROUGHLINE_BENCH_DATABASE_URL`, else `THROUGHLINE_TEST_DATABASE_URL`,
//! else the local server at 127.0.0.1:5432; an ingest run uses a database of its own, dropped
//! after.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use sea_orm::sqlx::Connection;
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait};
use throughline::Config;
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::common::v1::{Channel, CustomerRef, Direction};
use throughline_proto::event::v1::{Event, InteractionRecorded};
use throughline_proto::interaction::v1::interaction_service_client::InteractionServiceClient;
use throughline_proto::interaction::v1::{
    Interaction, ListInteractionsRequest, RecordInteractionRequest, RecordInteractionsRequest,
};
use throughline_runtime::config::Sources;
use throughline_runtime::events::{Outbox, new_event};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel as GrpcChannel, Endpoint};

use crate::database::{BenchDatabase, server_url, setup_error, with_database};
use crate::{BenchError, LoadConfig, Scenario, Target};

const SECRET: &str = "throughline-bench-secret-0123456789abcdef";
const TENANT: &str = "bench";
const BATCH: usize = 1000;
/// Batches a stream has sent but not yet seen acknowledged.
const IN_FLIGHT: usize = 4;
const CUSTOMERS: usize = 10_000;
const BASE_US: i64 = 1_750_000_000_000_000;
const CHANNELS: [Channel; 6] = [
    Channel::Web,
    Channel::MobileApp,
    Channel::Email,
    Channel::Phone,
    Channel::Chat,
    Channel::Sms,
];
const TYPES: [&str; 4] = ["page_view", "cart.updated", "call.ended", "email.sent"];
const REASONS: [&str; 4] = ["", "billing", "delivery", "returns"];
const COLUMNS: &str = "tenant, id, customer, profile, timeline, timeline_key, channel, \
     direction, interaction_type, occur_us, record_us, thread, touchpoint, reason, step, agent, \
     outcome, source, attributes, content_hash";

/// The interaction service alone on `url`.
fn config(url: &str) -> Result<Config, BenchError> {
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
            "interaction".to_owned(),
        ),
        (
            "THROUGHLINE__SERVER__METRICS_LISTEN_ADDR".to_owned(),
            String::new(),
        ),
        (
            "THROUGHLINE__SERVER__REQUEST_TIMEOUT".to_owned(),
            "10m".to_owned(),
        ),
        (
            "THROUGHLINE__TELEMETRY__LOG_LEVEL".to_owned(),
            "warn".to_owned(),
        ),
    ]);
    Config::load(Sources {
        env: Some(env),
        ..Sources::default()
    })
    .map_err(setup_error)
}

/// The interaction service alone, in this process, on `url`; stopped when the sender drops.
async fn start_server(url: &str) -> Result<(Endpoint, oneshot::Sender<()>), BenchError> {
    let (address, stop) = crate::stack::serve_in_process(&config(url)?).await?;
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?.http2_adaptive_window(true);
    Ok((endpoint, stop))
}

fn bearer() -> Result<MetadataValue<tonic::metadata::Ascii>, BenchError> {
    let scopes = [
        "interaction:read".to_owned(),
        "interaction:write".to_owned(),
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

/// The interaction numbered `i` of a run whose ids start with `prefix`.
struct Row {
    id: String,
    customer: String,
    channel: Channel,
    direction: Direction,
    r#type: &'static str,
    occur_us: i64,
    reason: &'static str,
    attributes: prost_types::Struct,
}

fn row(prefix: &str, i: usize, customer: Option<&str>) -> Row {
    Row {
        id: format!("{prefix}-{i}"),
        customer: customer.map_or_else(
            || format!("profiles/c{}", (i * 7919) % CUSTOMERS),
            str::to_owned,
        ),
        channel: CHANNELS[i % CHANNELS.len()],
        direction: if i.is_multiple_of(3) {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        r#type: TYPES[i % TYPES.len()],
        occur_us: BASE_US + i as i64 * 1000,
        reason: REASONS[i % REASONS.len()],
        attributes: prost_types::Struct {
            fields: [(
                "url".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(format!(
                        "/p/{}",
                        i % 1000
                    ))),
                },
            )]
            .into(),
        },
    }
}

fn request(row: Row) -> RecordInteractionRequest {
    RecordInteractionRequest {
        interaction_id: row.id,
        interaction: Some(Interaction {
            customer: Some(CustomerRef {
                customer: Some(Customer::Profile(row.customer)),
            }),
            channel: row.channel as i32,
            direction: row.direction as i32,
            r#type: row.r#type.to_owned(),
            occur_time: Some(prost_types::Timestamp {
                seconds: row.occur_us / 1_000_000,
                nanos: ((row.occur_us % 1_000_000) * 1000) as i32,
            }),
            reason: row.reason.to_owned(),
            touchpoint: "bench".to_owned(),
            source: "bench".to_owned(),
            attributes: Some(row.attributes),
            ..Interaction::default()
        }),
    }
}

/// A row in COPY's text format, as the service stores it.
fn copy_line(out: &mut String, row: &Row, now_us: i64) {
    let attributes: String =
        row.attributes
            .encode_to_vec()
            .iter()
            .fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            });
    let _ = writeln!(
        out,
        "{TENANT}\t{}\t{c}\t{c}\t{c}\t{}\t{}\t{}\t{}\t{}\t{now_us}\t\tbench\t{}\t\t\t\tbench\t\\\\x{attributes}\t{}",
        row.id,
        throughline_interaction::timeline_key(TENANT, &row.customer),
        row.channel as i32,
        row.direction as i32,
        row.r#type,
        row.occur_us,
        row.reason,
        row.occur_us ^ 0x5bd1_e995,
        c = row.customer,
    );
}

/// Rows COPY writes per statement.
const COPY_CHUNK: usize = 10_000;

/// COPYs rows (from `first`) into the service's table for `duration`; returns rows written.
async fn copy_rows(
    url: &str,
    prefix: &str,
    first: usize,
    rows: Option<usize>,
    duration: Duration,
    customer: Option<&str>,
) -> Result<(usize, Duration), BenchError> {
    let mut connection = PgConnection::connect(url).await.map_err(setup_error)?;
    let start = Instant::now();
    let mut written = 0;
    let now_us = chrono_now_us();
    while rows.map_or(start.elapsed() < duration, |rows| written < rows) {
        let chunk = rows.map_or(COPY_CHUNK, |rows| COPY_CHUNK.min(rows - written));
        let mut text = String::with_capacity(chunk * 200);
        for i in first + written..first + written + chunk {
            copy_line(&mut text, &row(prefix, i, customer), now_us);
        }
        let mut copy = connection
            .copy_in_raw(&format!(
                "COPY interaction.interaction_interactions ({COLUMNS}) FROM STDIN"
            ))
            .await
            .map_err(setup_error)?;
        copy.send(text.as_bytes()).await.map_err(setup_error)?;
        copy.finish().await.map_err(setup_error)?;
        written += chunk;
    }
    Ok((written, start.elapsed()))
}

/// Rows a transaction of the SQLite baseline writes: about what one of the service's group
/// commits stores at this load.
const INSERT_TRANSACTION: usize = 20_000;
/// Rows one statement of the SQLite baseline inserts, as the service's writer does.
const INSERT_STATEMENT: usize = 1_000;

/// Inserts rows, each with its event in the outbox, into the service's tables on SQLite for
/// `duration`, on a connection of the service's writer's own settings; returns rows written and
/// the time taken.
async fn insert_rows_sqlite(
    url: &str,
    prefix: &str,
    duration: Duration,
) -> Result<(usize, Duration), BenchError> {
    let config = config(url)?;
    let pool = throughline_runtime::db::connect(&config.database, "interaction")
        .await
        .map_err(setup_error)?;
    let db = throughline_runtime::db::dedicated_writer(&pool)
        .await
        .map_err(setup_error)?;
    let placeholders = format!("({})", vec!["?"; COLUMNS.split(',').count()].join(", "));
    let outbox = Outbox::new("interaction");
    let start = Instant::now();
    let mut written = 0;
    let now_us = chrono_now_us();
    while start.elapsed() < duration {
        let transaction = db.begin().await.map_err(setup_error)?;
        for first in (written..written + INSERT_TRANSACTION).step_by(INSERT_STATEMENT) {
            let rows: Vec<Row> = (first..first + INSERT_STATEMENT)
                .map(|i| row(prefix, i, None))
                .collect();
            let sql = format!(
                "INSERT INTO interaction_interactions ({COLUMNS}) VALUES {}",
                vec![placeholders.as_str(); rows.len()].join(", ")
            );
            let values = rows.iter().flat_map(|row| insert_values(row, now_us));
            transaction
                .execute_raw(Statement::from_sql_and_values(
                    sea_orm::DbBackend::Sqlite,
                    sql,
                    values,
                ))
                .await
                .map_err(setup_error)?;
            let events: Vec<_> = rows.into_iter().map(recorded_event).collect();
            for statement in outbox
                .append_statements(sea_orm::DbBackend::Sqlite, &events)
                .map_err(setup_error)?
            {
                transaction
                    .execute_raw(statement)
                    .await
                    .map_err(setup_error)?;
            }
        }
        transaction.commit().await.map_err(setup_error)?;
        written += INSERT_TRANSACTION;
    }
    let took = start.elapsed();
    db.close().await.map_err(setup_error)?;
    pool.close().await.map_err(setup_error)?;
    Ok((written, took))
}

/// The `interaction.recorded` event the service writes beside `row`.
fn recorded_event(row: Row) -> Event {
    let request = request(row);
    let interaction = request.interaction.unwrap_or_default();
    let payload = InteractionRecorded {
        interaction: format!("interactions/{}", request.interaction_id),
        profile: match &interaction.customer {
            Some(CustomerRef {
                customer: Some(Customer::Profile(profile)),
            }) => profile.clone(),
            _ => String::new(),
        },
        customer: interaction.customer,
        channel: interaction.channel,
        direction: interaction.direction,
        interaction_type: interaction.r#type,
        occur_time: interaction.occur_time,
        touchpoint: interaction.touchpoint,
        reason: interaction.reason,
        attributes: interaction.attributes,
        ..InteractionRecorded::default()
    };
    new_event(
        "interaction",
        TENANT,
        "interaction.recorded",
        &payload.profile,
        "InteractionRecorded",
        &payload,
    )
}

/// `row`'s values in the order of [`COLUMNS`], as the service stores them.
fn insert_values(row: &Row, now_us: i64) -> [sea_orm::Value; 20] {
    let customer = row.customer.as_str();
    [
        TENANT.into(),
        row.id.as_str().into(),
        customer.into(),
        customer.into(),
        customer.into(),
        throughline_interaction::timeline_key(TENANT, customer).into(),
        (row.channel as i32).into(),
        (row.direction as i32).into(),
        row.r#type.into(),
        row.occur_us.into(),
        now_us.into(),
        "".into(),
        "bench".into(),
        row.reason.into(),
        "".into(),
        "".into(),
        "".into(),
        "bench".into(),
        row.attributes.encode_to_vec().into(),
        (row.occur_us ^ 0x5bd1_e995).into(),
    ]
}

fn chrono_now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Streams batches on `streams` streams for `duration`; returns interactions acknowledged as
/// stored and the time taken until the last acknowledgement. Ids start with `prefix`: the
/// warm-up and the measured run send different interactions, so the measured run stores new
/// ones instead of answering the warm-up's as duplicates.
async fn stream_ingest(
    endpoint: &Endpoint,
    prefix: &'static str,
    streams: usize,
    duration: Duration,
) -> Result<(u64, Duration), BenchError> {
    let stored = Arc::new(AtomicU64::new(0));
    let bearer = bearer()?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for stream in 0..streams {
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| BenchError::Connect {
                endpoint: endpoint.uri().to_string(),
                source,
            })?;
        let (stored, bearer) = (stored.clone(), bearer.clone());
        tasks.push(tokio::spawn(async move {
            let (sender, receiver) = mpsc::channel(IN_FLIGHT);
            let mut call = tonic::Request::new(ReceiverStream::new(receiver));
            call.metadata_mut().insert("authorization", bearer);
            let feeder = tokio::spawn(async move {
                let mut sequence = 0i64;
                while start.elapsed() < duration {
                    sequence += 1;
                    let first = (stream * 1_000_000_000) + (sequence as usize - 1) * BATCH;
                    let batch = RecordInteractionsRequest {
                        sequence,
                        requests: (first..first + BATCH)
                            .map(|i| request(row(prefix, i, None)))
                            .collect(),
                    };
                    if sender.send(batch).await.is_err() {
                        break;
                    }
                }
            });
            let mut acks = InteractionServiceClient::new(channel)
                .max_decoding_message_size(16 << 20)
                .record_interactions(call)
                .await?
                .into_inner();
            while let Some(ack) = acks.message().await? {
                stored.fetch_add(
                    u64::from(ack.stored_count.unsigned_abs()),
                    Ordering::Relaxed,
                );
                if !ack.rejected.is_empty() {
                    return Err(Status::internal("the benchmark's items were rejected"));
                }
            }
            feeder.abort();
            Ok::<(), Status>(())
        }));
    }
    for task in tasks {
        task.await?
            .map_err(|status| BenchError::Setup(status.to_string()))?;
    }
    Ok((stored.load(Ordering::Relaxed), start.elapsed()))
}

/// Runs `interaction-ingest`: COPY baseline and streaming ingest on PostgreSQL, then the
/// INSERT baseline and streaming ingest on SQLite; prints a table.
pub async fn ingest(config: &LoadConfig) -> Result<(), BenchError> {
    let streams = config.connections.max(1);
    let mut lines = Vec::new();
    for database in [
        BenchDatabase::postgres("interaction").await?,
        BenchDatabase::sqlite()?,
    ] {
        let url = database.url();
        let (endpoint, stop) = start_server(&url).await?;
        let (rows, took) = if matches!(database, BenchDatabase::Postgres { .. }) {
            // Warm the table and caches as the ingest's warm-up does.
            copy_rows(&url, "warm", 0, Some(COPY_CHUNK), config.duration, None).await?;
            copy_rows(&url, "copy", 0, None, config.duration, None).await?
        } else {
            insert_rows_sqlite(&url, "insert", config.duration).await?
        };
        let baseline = rows as f64 / took.as_secs_f64();
        stream_ingest(&endpoint, "warm-ingest", streams, config.warmup).await?;
        let (stored, took) = stream_ingest(&endpoint, "ingest", streams, config.duration).await?;
        let rate = stored as f64 / took.as_secs_f64();
        lines.push(format!(
            "| {} | {streams} | {:.0} | {} | {:.0} | {:.2} |",
            database.label(),
            rate,
            database.baseline_label(),
            baseline,
            rate / baseline,
        ));
        drop(stop);
        tokio::time::sleep(Duration::from_millis(200)).await;
        database.drop_now().await;
    }
    println!(
        "interaction-ingest: RecordInteractions, batches of {BATCH}, {IN_FLIGHT} in flight per stream\n"
    );
    println!(
        "| database | streams | interactions/s | baseline (same rows, same table) | baseline rows/s | ratio to baseline |"
    );
    println!("|---|---|---|---|---|---|");
    for line in lines {
        println!("{line}");
    }
    println!();
    Ok(())
}

fn timeline_rows() -> usize {
    std::env::var("THROUGHLINE_BENCH_TIMELINE_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(1_000_000)
}

const HEAVY_CUSTOMER: &str = "profiles/heavy";
/// Rows one seeding statement inserts: a seeding cut short resumes at a statement's boundary,
/// and no transaction grows huge.
const SEED_CHUNK: usize = 1_000_000;

/// The table [`seed_statement`] reads each customer's timeline key from while seeding: the key
/// is a SHA-256 prefix (`throughline_interaction::timeline_key`), which SQLite cannot compute
/// in SQL, so both databases are seeded the same way.
const SEED_KEYS: &str = "bench_seed_timeline_keys";

async fn create_seed_keys(db: &DatabaseConnection) -> Result<(), BenchError> {
    db.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS {SEED_KEYS} (timeline TEXT PRIMARY KEY, timeline_key BIGINT NOT NULL)"
    ))
    .await
    .map_err(setup_error)?;
    let timelines: Vec<String> = std::iter::once(HEAVY_CUSTOMER.to_owned())
        .chain((0..CUSTOMERS).map(|c| format!("profiles/c{c}")))
        .collect();
    for chunk in timelines.chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|timeline| {
                let key = throughline_interaction::timeline_key(TENANT, timeline);
                format!("('{timeline}', {key})")
            })
            .collect();
        db.execute_unprepared(&format!(
            "INSERT INTO {SEED_KEYS} (timeline, timeline_key) VALUES {} ON CONFLICT DO NOTHING",
            values.join(", ")
        ))
        .await
        .map_err(setup_error)?;
    }
    Ok(())
}

/// Rows `first..end` as [`row`] makes them, in one set-based `INSERT … SELECT`: every tenth
/// row belongs to one of the other customers, the rest to the heavy one. Ids are zero-padded
/// so that they arrive in key order; `attributes` is the encoded `Struct`
/// `{url: "/p/<n % 1000>"}` (every length below 128 is one byte).
fn seed_statement(first: usize, end: usize, postgres: bool, now_us: i64) -> String {
    let case = |values: Vec<String>| {
        let arms: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, value)| format!("WHEN {i} THEN {value}"))
            .collect();
        format!("CASE g % {} {} END", values.len(), arms.join(" "))
    };
    let channel = case(CHANNELS.iter().map(|c| (*c as i32).to_string()).collect());
    let r#type = case(TYPES.iter().map(|t| format!("'{t}'")).collect());
    let reason = case(REASONS.iter().map(|r| format!("'{r}'")).collect());
    let (outbound, inbound) = (Direction::Outbound as i32, Direction::Inbound as i32);
    let last = end - 1;
    let (series, id, bytes) = if postgres {
        (
            format!("generate_series({first}::bigint, {last}::bigint) AS s(g)"),
            "lpad(g::text, 10, '0')",
            "convert_to(chr(10) || chr(9 + length(url)) || chr(10) || chr(3) || 'url' || chr(18) \
             || chr(2 + length(url)) || chr(26) || chr(length(url)) || url, 'UTF8')",
        )
    } else {
        (
            format!(
                "(WITH RECURSIVE s(g) AS (SELECT {first} UNION ALL SELECT g + 1 FROM s \
                 WHERE g < {last}) SELECT g FROM s)"
            ),
            "printf('%010d', g)",
            "CAST(char(10, 9 + length(url), 10, 3, 117, 114, 108, 18, 2 + length(url), 26, \
             length(url)) || url AS BLOB)",
        )
    };
    format!(
        "INSERT INTO interaction_interactions ({COLUMNS}) \
         SELECT '{TENANT}', 'seed-' || {id}, c, c, c, \
                (SELECT k.timeline_key FROM {SEED_KEYS} AS k WHERE k.timeline = c), {channel}, \
                CASE WHEN g % 3 = 0 THEN {outbound} ELSE {inbound} END, {type}, \
                {BASE_US} + g * 1000, {now_us}, '', 'bench', {reason}, '', '', '', 'bench', \
                {bytes}, g \
         FROM (SELECT g, '/p/' || (g % 1000) AS url, \
                      CASE WHEN g % 10 = 0 THEN 'profiles/c' || ((g * 7919) % {CUSTOMERS}) \
                           ELSE '{HEAVY_CUSTOMER}' END AS c \
               FROM {series}) AS seed",
        type = r#type,
    )
}

async fn count(db: &DatabaseConnection, sql: &str) -> Result<usize, BenchError> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map_err(setup_error)?
        .ok_or_else(|| setup_error("no row"))?;
    let count: i64 = row.try_get_by_index(0).map_err(setup_error)?;
    Ok(usize::try_from(count).unwrap_or_default())
}

/// Brings the service's table in `url` to `rows` seeded interactions, resuming a seeding cut
/// short; a database already seeded is left as it is.
async fn seed(url: &str, rows: usize) -> Result<(), BenchError> {
    let config = config(url)?;
    throughline::app::migrate_services(&config, &["interaction".to_owned()])
        .await
        .map_err(setup_error)?;
    let db = throughline_runtime::db::connect(&config.database, "interaction")
        .await
        .map_err(setup_error)?;
    let postgres = db.get_database_backend() == sea_orm::DbBackend::Postgres;
    let mut held = count(&db, "SELECT count(*) FROM interaction_interactions").await?;
    if held == rows {
        eprintln!("reusing {rows} seeded interactions");
        return db.close().await.map_err(setup_error);
    }
    if held > rows || !held.is_multiple_of(SEED_CHUNK) {
        // Not a seeding of this size, or one cut short mid-statement: start again.
        db.execute_unprepared("DELETE FROM interaction_interactions")
            .await
            .map_err(setup_error)?;
        held = 0;
    }
    eprintln!("seeding {rows} interactions (once; later runs reuse them)");
    let started = Instant::now();
    let now_us = chrono_now_us();
    create_seed_keys(&db).await?;
    while held < rows {
        let end = (held + SEED_CHUNK).min(rows);
        db.execute_unprepared(&seed_statement(held, end, postgres, now_us))
            .await
            .map_err(setup_error)?;
        held = end;
    }
    db.execute_unprepared(&format!("DROP TABLE {SEED_KEYS}"))
        .await
        .map_err(setup_error)?;
    db.execute_unprepared("ANALYZE interaction_interactions")
        .await
        .map_err(setup_error)?;
    eprintln!(
        "seeded {rows} interactions ({} of one customer) in {:.1} s",
        rows - rows.div_ceil(10),
        started.elapsed().as_secs_f64()
    );
    db.close().await.map_err(setup_error)
}

/// The seeded PostgreSQL database for `rows` interactions, named after its size and kept
/// across runs (seeding ten million rows is minutes of work).
async fn seeded_postgres(rows: usize) -> Result<String, BenchError> {
    let server = server_url();
    let name = format!("throughline_bench_timeline_{rows}");
    let admin = Database::connect(server.as_str())
        .await
        .map_err(|e| setup_error(format!("PostgreSQL for the timeline benchmark: {e}")))?;
    let exists = count(
        &admin,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    )
    .await?
        > 0;
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(setup_error)?;
    }
    admin.close().await.map_err(setup_error)?;
    let url = with_database(&server, &name);
    seed(&url, rows).await?;
    Ok(url)
}

/// The seeded SQLite file for `rows` interactions, kept in the temporary directory.
async fn seeded_sqlite(rows: usize) -> Result<String, BenchError> {
    let path = std::env::temp_dir().join(format!("throughline-bench-timeline-{rows}.db"));
    let url = format!("sqlite://{}", path.display());
    seed(&url, rows).await?;
    Ok(url)
}

async fn start_timeline(postgres: bool) -> Result<Target, BenchError> {
    let rows = timeline_rows();
    let url = if postgres {
        seeded_postgres(rows).await?
    } else {
        seeded_sqlite(rows).await?
    };
    let (endpoint, stop) = start_server(&url).await?;
    Ok(Target::in_process(endpoint, stop))
}

/// The first page of the heavy customer's timeline, or with `spread` of one of the other
/// customers' chosen by the call's sequence number (concurrent callers then read different
/// customers, so no two share a read).
fn timeline_call(
    bearer: MetadataValue<tonic::metadata::Ascii>,
    spread: bool,
) -> impl Fn(GrpcChannel, u64) -> crate::CallFuture + Send + Sync + 'static {
    move |channel, seq| {
        let bearer = bearer.clone();
        let customer = if spread {
            // The seeding gives every tenth row to `profiles/c{(g * 7919) % CUSTOMERS}`, which
            // is always a multiple of ten: those are the customers that have interactions.
            format!("profiles/c{}", 10 * (seq % (CUSTOMERS as u64 / 10)))
        } else {
            HEAVY_CUSTOMER.to_owned()
        };
        Box::pin(async move {
            let mut request = tonic::Request::new(ListInteractionsRequest {
                customer: Some(CustomerRef {
                    customer: Some(Customer::Profile(customer)),
                }),
                page_size: 20,
                ..Default::default()
            });
            request.metadata_mut().insert("authorization", bearer);
            let page = InteractionServiceClient::new(channel)
                .list_interactions(request)
                .await?
                .into_inner();
            if page.interactions.len() == 20 {
                Ok(())
            } else {
                Err(Status::internal("a short timeline page"))
            }
        })
    }
}

/// `interaction-timeline`: a page of 20 of one heavy customer's timeline on PostgreSQL.
pub fn timeline_scenario() -> Scenario {
    timeline(true, false)
}

/// `interaction-timeline-sqlite`: the same on SQLite.
pub fn timeline_sqlite_scenario() -> Scenario {
    timeline(false, false)
}

/// `interaction-timeline-spread`: a page of 20 of the other customers' timelines, each call
/// another customer's, on PostgreSQL.
pub fn timeline_spread_scenario() -> Scenario {
    timeline(true, true)
}

fn timeline(postgres: bool, spread: bool) -> Scenario {
    let bearer = bearer().unwrap_or_else(|_| MetadataValue::from_static(""));
    let name = match (postgres, spread) {
        (true, false) => "interaction-timeline",
        (false, _) => "interaction-timeline-sqlite",
        (true, true) => "interaction-timeline-spread",
    };
    let whose = if spread {
        format!("one of {} customers (another each call)", CUSTOMERS / 10)
    } else {
        "one customer".to_owned()
    };
    Scenario::new(
        name,
        move || start_timeline(postgres),
        timeline_call(bearer, spread),
    )
    .with_description(format!(
        "ListInteractions, page of 20 of {whose} among {} stored interactions on {}",
        timeline_rows(),
        if postgres { "PostgreSQL" } else { "SQLite" }
    ))
}
