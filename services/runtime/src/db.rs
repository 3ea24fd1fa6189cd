//! Database connections: SQLite (embedded default) or PostgreSQL (production).
//!
//! Each service owns its data. On PostgreSQL every service gets its own schema (named after
//! the service) and a pool whose `search_path` is that schema, so no service can read another's
//! tables by accident. SQLite has no schemas: there the services share one file and one pool,
//! and every table name starts with its service's name (`profile_…`), which is the rule for
//! every table on both databases.

use std::path::Path;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::OnceCell;

use crate::config::{Validate, redact_url_password};

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseOptions {
    /// `sqlite://path/to/file.db` or `postgres://user:password@host:5432/name`.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    pub max_connections: u32,
    pub min_connections: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Apply pending migrations when a service starts (otherwise run `throughline migrate`).
    pub migrate_on_start: bool,
}

fn serialize_redacted_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url_password(url))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl DatabaseOptions {
    pub fn backend(&self) -> Option<Backend> {
        if self.url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if self.url.starts_with("postgres://") || self.url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    fn connect_options(&self, url: &str) -> ConnectOptions {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            .connect_timeout(self.connect_timeout)
            .acquire_timeout(self.acquire_timeout)
            // A ping before every query doubled the round trips of point reads; a connection
            // that sat idle long enough to have been cut (a restart, a failover, a firewall)
            // is still checked before use.
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            // Statements can carry personal data; they are never logged.
            .sqlx_logging(false)
            // PostgreSQL compiles a statement whose estimated cost passes `jit_above_cost`. The
            // services' statements are short indexed reads and writes whose estimates can still
            // be high (a LIMIT over a long index range): a timeline read of 64 customers' pages
            // ran 390–620 ms with JIT and 8 ms without.
            .map_sqlx_postgres_opts(|postgres| postgres.options([("jit", "off")]));
        options
    }
}

impl Validate for DatabaseOptions {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.backend().is_none() {
            problems.push(format!(
                "{prefix}.url: must start with sqlite:// or postgres://"
            ));
        }
        if self.max_connections == 0 {
            problems.push(format!("{prefix}.max_connections: must be at least 1"));
        }
        if self.min_connections > self.max_connections {
            problems.push(format!(
                "{prefix}.min_connections: must not exceed max_connections"
            ));
        }
        problems
    }
}

/// Hands each service its connection; the SQLite pool is opened once and shared.
#[derive(Debug)]
pub struct Databases {
    options: DatabaseOptions,
    shared_sqlite: OnceCell<DatabaseConnection>,
}

impl Databases {
    pub fn new(options: DatabaseOptions) -> Self {
        Self {
            options,
            shared_sqlite: OnceCell::new(),
        }
    }

    pub fn options(&self) -> &DatabaseOptions {
        &self.options
    }

    /// The connection `service` uses: its own database when `own_url` is set, else the shared
    /// one (its own schema there on PostgreSQL).
    pub async fn for_service(
        &self,
        service: &str,
        own_url: Option<&str>,
    ) -> Result<DatabaseConnection, DbErr> {
        match own_url.filter(|url| !url.is_empty()) {
            Some(url) => {
                let options = DatabaseOptions {
                    url: url.to_owned(),
                    ..self.options.clone()
                };
                connect(&options, service).await
            }
            None if self.options.backend() == Some(Backend::Sqlite) => self
                .shared_sqlite
                .get_or_try_init(|| connect_sqlite(&self.options))
                .await
                .cloned(),
            None => connect(&self.options, service).await,
        }
    }
}

/// Opens a pool for `service` on the database `options` names.
pub async fn connect(
    options: &DatabaseOptions,
    service: &str,
) -> Result<DatabaseConnection, DbErr> {
    match options.backend() {
        Some(Backend::Sqlite) => connect_sqlite(options).await,
        Some(Backend::Postgres) => connect_postgres(options, service).await,
        None => Err(DbErr::Custom(
            "unsupported database url scheme (expected sqlite:// or postgres://)".to_owned(),
        )),
    }
}

/// Rows a SQLite connection's worker thread hands over before it waits for the caller to take
/// them. sqlx's default of 50 made a thousand-row `RETURNING` stop twenty times for the caller
/// to be scheduled, holding SQLite's only writer idle meanwhile.
const ROW_BUFFER: usize = 1024;

async fn connect_sqlite(options: &DatabaseOptions) -> Result<DatabaseConnection, DbErr> {
    let path = options
        .url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut connect = options.connect_options(&options.url);
    connect.map_sqlx_sqlite_opts(|sqlite: SqliteConnectOptions| {
        // WAL lets readers run beside the writer; NORMAL sync in WAL mode still survives a
        // process crash (only an OS crash can lose the last transactions); the busy timeout
        // makes writers wait their turn instead of failing with "database is locked".
        // The rest is for bulk writes (measured by the interaction ingest benchmark): with
        // SQLite's 2 MB page cache a large transaction spilled pages and read them back, each
        // statement's rollback journal went to a temporary file, and checkpoints every 4 MB of
        // WAL rewrote the same index pages over and over. A 64 MiB cache (filled only as
        // used), reads through a shared memory map, the statement journal in memory and a
        // checkpoint every 64 MB of WAL keep that work in memory.
        sqlite
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "268435456")
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", "16384")
            .row_buffer_size(ROW_BUFFER)
    });
    Database::connect(connect).await
}

/// The connection a service's single writer task uses (a bulk ingest's group commits). On
/// SQLite, a pool of one connection of its own on the same file, because SQLite drops a
/// connection's whole page cache when another connection wrote since its last transaction: a
/// writer drawing a different pooled connection for each transaction re-read every page it
/// touched. Its transactions still take turns with the pool's writers through SQLite's lock.
/// It checkpoints every 256 MB of WAL rather than 64: a group commit rewrites most leaf pages
/// of the per-customer indexes, and a checkpoint copies each page once however many times it
/// was rewritten, so rarer checkpoints copy far less per row (+8 % on the interaction ingest
/// benchmark); the WAL file is cut back to 64 MB after each. On PostgreSQL, `db` itself.
pub async fn dedicated_writer(db: &DatabaseConnection) -> Result<DatabaseConnection, DbErr> {
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return Ok(db.clone());
    }
    let options = (*db.get_sqlite_connection_pool().connect_options())
        .clone()
        .pragma("wal_autocheckpoint", "65536")
        .pragma("journal_size_limit", "67108864");
    let pool = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    Ok(sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

/// A pool of at most `connections` beside `db` whose PostgreSQL sessions plan a prepared
/// statement once, for any values (`plan_cache_mode = force_generic_plan`); on SQLite, which
/// has no such setting, `db` itself. Opens its connections when first used.
///
/// PostgreSQL plans a prepared statement again on every execution when the plan made for any
/// values is estimated dearer than the ones made for the values given, which is always so when
/// one customer holds most of a table: the timeline's page reads spent half of PostgreSQL's
/// time planning. Only for statements whose best plan is the same whatever the values: a plan
/// made for the average value can be far slower for a skewed one (a two-channel timeline
/// filter of a customer with millions of rows took 7 s instead of a millisecond).
pub fn generic_plan_pool(db: &DatabaseConnection, connections: u32) -> DatabaseConnection {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return db.clone();
    }
    let pool = db.get_postgres_connection_pool();
    // The pool's own options keep the schema search path and the other session settings.
    let options = (*pool.connect_options())
        .clone()
        .options([("plan_cache_mode", "force_generic_plan")]);
    let pool = pool
        .options()
        .clone()
        .max_connections(connections.max(1))
        .min_connections(0)
        .connect_lazy_with(options);
    sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
}

async fn connect_postgres(
    options: &DatabaseOptions,
    service: &str,
) -> Result<DatabaseConnection, DbErr> {
    if !service.chars().all(|c| c.is_ascii_lowercase() || c == '_') || service.is_empty() {
        return Err(DbErr::Custom(format!("invalid schema name {service:?}")));
    }
    // Create the schema over a short-lived connection, then open the service's own pool.
    let mut bootstrap = options.connect_options(&options.url);
    bootstrap.max_connections(1).min_connections(0);
    let admin = Database::connect(bootstrap).await?;
    admin
        .execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{service}\""))
        .await?;
    admin.close().await?;

    let mut connect = options.connect_options(&options.url);
    connect.set_schema_search_path(service.to_owned());
    Database::connect(connect).await
}

/// Applies every pending migration of a service.
pub async fn migrate<M: MigratorTrait>(db: &DatabaseConnection) -> Result<(), DbErr> {
    M::up(db, None).await
}

/// `bytes` as PostgreSQL's text form of a `bytea` (`\x` and hex digits): how binary values
/// travel inside a JSON parameter expanded by `json_populate_recordset`.
pub fn bytea_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 + bytes.len() * 2);
    text.push_str("\\x");
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// A transaction that writes. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
/// a transaction that reads first and writes later cannot be upgraded once another writer has
/// committed, and fails instead of waiting its turn.
pub async fn write_transaction(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, crate::error::Error> {
    use sea_orm::TransactionTrait;
    Ok(db
        .begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..sea_orm::TransactionOptions::default()
        })
        .await?)
}
