//! `orchestration-timers`: the journey engine on PostgreSQL, in this process, against
//! instances seeded straight into its tables, each waiting at a one-hour wait whose end leads
//! to a branch and an exit (three node executions per instance):
//! - lateness: `TIMERS` instances whose waits fall due spread over one minute; how late each
//!   wait was left after its due time (p50, p99, max);
//! - throughput: `TIMERS` instances all due at once; node executions per second until every
//!   one has ended;
//! - memory: `PARKED` instances waiting a day; the process's resident memory while the engine
//!   polls them (they live in the database, not in memory).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prost::Message;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use throughline::Config;
use throughline_proto::orchestration::v1::{
    ApiTrigger, BranchCase, BranchNode, ExitNode, JourneyDefinition, Node, Trigger, WaitNode, node,
    trigger, wait_node,
};
use throughline_runtime::config::Sources;
use throughline_runtime::time::now_us;

use crate::BenchError;
use crate::database::{BenchDatabase, setup_error};

const TENANT: &str = "bench";
const JOURNEY: &str = "timers";
/// Instances of the lateness and throughput measures.
const TIMERS: i64 = 100_000;
/// Instances of the memory measure.
const PARKED: i64 = 1_000_000;
/// The lateness measure's waits fall due over this span, starting this long after seeding.
const SPREAD_US: i64 = 60_000_000;
const LEAD_US: i64 = 20_000_000;

fn server_config(url: &str) -> Result<Config, BenchError> {
    let env = HashMap::from([
        ("THROUGHLINE__DATABASE__URL".to_owned(), url.to_owned()),
        (
            "THROUGHLINE__DATABASE__MAX_CONNECTIONS".to_owned(),
            "16".to_owned(),
        ),
        (
            "THROUGHLINE__AUTH__HS256_SECRET".to_owned(),
            "throughline-bench-secret-0123456789abcdef".to_owned(),
        ),
        (
            "THROUGHLINE__SERVER__SERVICES".to_owned(),
            "orchestration".to_owned(),
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
    Config::load(Sources {
        env: Some(env),
        ..Sources::default()
    })
    .map_err(setup_error)
}

/// wait one hour → branch on `vars.n` → one of two exits.
fn definition() -> JourneyDefinition {
    let node = |id: &str, kind: node::Kind, next: &str| Node {
        id: id.into(),
        kind: Some(kind),
        next: next.into(),
        ..Node::default()
    };
    let exit = |id: &str| node(id, node::Kind::Exit(ExitNode { reason: id.into() }), "");
    JourneyDefinition {
        trigger: Some(Trigger {
            kind: Some(trigger::Kind::Api(ApiTrigger {})),
        }),
        start_node: "sleep".into(),
        nodes: vec![
            node(
                "sleep",
                node::Kind::Wait(WaitNode {
                    until: Some(wait_node::Until::Duration(prost_types::Duration {
                        seconds: 3600,
                        nanos: 0,
                    })),
                }),
                "branch",
            ),
            node(
                "branch",
                node::Kind::Branch(BranchNode {
                    cases: vec![BranchCase {
                        condition: "vars.n > 5".into(),
                        next: "high".into(),
                        name: "high".into(),
                    }],
                    default_next: "low".into(),
                }),
                "",
            ),
            exit("high"),
            exit("low"),
        ],
        ..JourneyDefinition::default()
    }
}

async fn execute(db: &DatabaseConnection, sql: &str) -> Result<(), BenchError> {
    db.execute_unprepared(sql).await.map_err(setup_error)?;
    Ok(())
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> Result<f64, BenchError> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .map_err(setup_error)?
        .ok_or_else(|| setup_error("no row"))?;
    row.try_get_by_index::<f64>(0).map_err(setup_error)
}

/// The published journey, as PublishJourney leaves it.
async fn publish(db: &DatabaseConnection) -> Result<(), BenchError> {
    let bytes: String = definition()
        .encode_to_vec()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let now = now_us();
    execute(
        db,
        &format!(
            "INSERT INTO orchestration_journeys (tenant, id, display_name, description, state, \
             draft, published_version, draft_changed, trigger_key, revision, create_us, update_us) \
             VALUES ('{TENANT}', '{JOURNEY}', 'Timers', '', 2, '\\x{bytes}', 1, 0, '', 1, {now}, {now})"
        ),
    )
    .await?;
    execute(
        db,
        &format!(
            "INSERT INTO orchestration_journey_versions (tenant, journey, version, definition, \
             publish_us, publisher) VALUES ('{TENANT}', '{JOURNEY}', 1, '\\x{bytes}', {now}, 'bench')"
        ),
    )
    .await
}

/// `count` instances named `{prefix}{g}` waiting at `sleep`, the g-th due at `wake(g)` (an SQL
/// expression over `g`), each with its open step.
async fn seed(
    db: &DatabaseConnection,
    prefix: &str,
    count: i64,
    wake: &str,
) -> Result<(), BenchError> {
    const BATCH: i64 = 100_000;
    let now = now_us();
    let mut first = 0;
    while first < count {
        let last = (first + BATCH).min(count) - 1;
        execute(
            db,
            &format!(
                "INSERT INTO orchestration_instances (tenant, id, journey, version, customer_ref, \
                 profile, customer, state, node, wake_us, lease_until_us, attempt, holdout, \
                 split_arms, variables, trigger, trigger_event_id, trigger_event_type, \
                 exit_reason, converted, goal_until_us, step_count, start_us, update_us, end_us) \
                 SELECT '{TENANT}', '{prefix}' || g, '{JOURNEY}', 1, 'profiles/p' || g, \
                 'profiles/p' || g, 'profiles/p' || g, 2, 'sleep', {wake}, 0, 0, 0, '{{}}', \
                 '{{\"n\": ' || (g % 10) || '}}', '{{}}', '', '', '', 0, 0, 1, {now}, {now}, NULL \
                 FROM generate_series({first}, {last}) g"
            ),
        )
        .await?;
        execute(
            db,
            &format!(
                "INSERT INTO orchestration_steps (tenant, instance, seq, node_id, enter_us, \
                 leave_us, outcome, effect, attempts) \
                 SELECT '{TENANT}', '{prefix}' || g, 0, 'sleep', {now}, NULL, '', '', 0 \
                 FROM generate_series({first}, {last}) g"
            ),
        )
        .await?;
        first = last + 1;
    }
    execute(db, "VACUUM ANALYZE orchestration_instances").await?;
    execute(db, "VACUUM ANALYZE orchestration_steps").await
}

/// Waits until no instance named `{prefix}…` is active; returns when the last one ended.
async fn drained(db: &DatabaseConnection, prefix: &str) -> Result<(), BenchError> {
    loop {
        let active = scalar(
            db,
            &format!(
                "SELECT COUNT(*)::float8 FROM orchestration_instances \
                 WHERE id LIKE '{prefix}%' AND state IN (1, 2)"
            ),
        )
        .await?;
        if active == 0.0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

pub async fn timers_bench() -> Result<(), BenchError> {
    let database = BenchDatabase::postgres("orchestration_timers").await?;
    let url = database.url();
    // Migrate with the engine idle, then seed, then serve.
    let config = server_config(&url)?;
    let (_, stop) = crate::stack::serve_in_process(&config).await?;
    let mut options = sea_orm::ConnectOptions::new(url.clone());
    options
        .max_connections(2)
        .sqlx_logging(false)
        .set_schema_search_path("orchestration".to_owned());
    let db = Database::connect(options).await.map_err(setup_error)?;
    publish(&db).await?;

    // Lateness: waits due over one minute, starting LEAD after seeding began.
    let due_from = now_us() + LEAD_US;
    seed(
        &db,
        "late-",
        TIMERS,
        &format!("{due_from} + CAST(g AS BIGINT) * {SPREAD_US} / {TIMERS}"),
    )
    .await?;
    drained(&db, "late-").await?;
    let lateness = |quantile: &str| {
        format!(
            "SELECT ({quantile})::float8 / 1000.0 FROM orchestration_steps s \
             WHERE s.tenant = '{TENANT}' AND s.instance LIKE 'late-%' AND s.seq = 0"
        )
    };
    let late_of = format!(
        "s.leave_us - ({due_from} + substr(s.instance, 6)::bigint * {SPREAD_US} / {TIMERS})"
    );
    let p50 = scalar(
        &db,
        &lateness(&format!(
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY {late_of})"
        )),
    )
    .await?;
    let p99 = scalar(
        &db,
        &lateness(&format!(
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY {late_of})"
        )),
    )
    .await?;
    let max = scalar(&db, &lateness(&format!("MAX({late_of})"))).await?;

    // Throughput: all due at once.
    let seeded_at = now_us();
    seed(&db, "burst-", TIMERS, &seeded_at.to_string()).await?;
    let started = Instant::now();
    drained(&db, "burst-").await?;
    let elapsed = started.elapsed().as_secs_f64();
    let executions = scalar(
        &db,
        "SELECT COUNT(*)::float8 FROM orchestration_steps WHERE instance LIKE 'burst-%'",
    )
    .await?;

    // Memory with a million instances parked a day away.
    let parked_until = now_us() + 24 * 3_600_000_000;
    seed(&db, "parked-", PARKED, &parked_until.to_string()).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let resident = resident_mib();

    drop(stop);
    db.close().await.map_err(setup_error)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    database.drop_now().await;

    println!(
        "orchestration-timers: PostgreSQL, engine in this process (batch 500, 64 at a time), \
         wait → branch → exit\n"
    );
    println!("| measure | figure | target |");
    println!("|---|---|---|");
    println!(
        "| lateness of {TIMERS} waits due over one minute | p50 {p50:.0} ms, p99 {p99:.0} ms, \
         max {max:.0} ms | p99 ≤ 1 s |"
    );
    println!(
        "| node executions, {TIMERS} instances due at once | {:.0}/s ({executions:.0} in \
         {elapsed:.1} s) | ≥ 5,000/s |",
        executions / elapsed
    );
    println!(
        "| resident memory with {PARKED} waiting instances (bench process, server inside) | \
         {resident:.0} MiB | ≤ 200 MB |"
    );
    println!();
    Ok(())
}
