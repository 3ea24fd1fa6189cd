//! The PostgreSQL server benchmarks run on, and databases made for one measurement.

use sea_orm::{ConnectionTrait, Database};

use crate::BenchError;

/// Loopback needs no TLS; and with sqlx 0.9.0, whose sockets lack TCP_NODELAY (sqlx#4335, fixed
/// upstream but not yet released), TLS records split across writes wait for delayed ACKs.
const LOCAL_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/// A setup failure, with what went wrong.
pub fn setup_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// The maintenance URL of the benchmark server: `THROUGHLINE_BENCH_DATABASE_URL`, else the
/// tests' `THROUGHLINE_TEST_DATABASE_URL`, else the local server.
pub fn server_url() -> String {
    std::env::var("THROUGHLINE_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("THROUGHLINE_TEST_DATABASE_URL"))
        .unwrap_or_else(|_| LOCAL_URL.to_owned())
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let start = base.find("://").map_or(0, |i| i + 3);
    let end = base[start..].find('/').map_or(base.len(), |i| start + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..end]),
        None => format!("{}/{name}", &base[..end]),
    }
}

/// Reads every table and index of `schema` into the operating system's page cache, so that a
/// scenario over a large seeded population measures a warm database (as a production server
/// keeps its working set in memory) rather than how fast this machine's disk refills a cache
/// that idle time emptied (the kernel here reclaims cold pages proactively). Uses
/// `pg_prewarm`'s `read` mode where the extension can be created, else a sequential scan of
/// each table (which leaves the indexes cold, and says so).
pub async fn warm(db: &impl ConnectionTrait, schema: &str) -> Result<(), BenchError> {
    let relations = |kinds: &str| {
        format!(
            "SELECT c.oid::regclass::text FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = '{schema}' AND c.relkind IN ({kinds})"
        )
    };
    if db
        .execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        .await
        .is_ok()
    {
        let sql = format!(
            "SELECT pg_prewarm(oid, 'read') FROM ({}) AS r(name) \
               JOIN pg_class ON pg_class.oid = r.name::regclass",
            relations("'r', 'i'")
        );
        db.execute_unprepared(&sql).await.map_err(setup_error)?;
        return Ok(());
    }
    eprintln!("pg_prewarm is not available: warming {schema}'s tables only");
    let backend = db.get_database_backend();
    let tables = db
        .query_all_raw(sea_orm::Statement::from_string(backend, relations("'r'")))
        .await
        .map_err(setup_error)?;
    for table in tables {
        let name: String = table.try_get_by_index(0).map_err(setup_error)?;
        db.execute_unprepared(&format!("SELECT count(*) FROM {name}"))
            .await
            .map_err(setup_error)?;
    }
    Ok(())
}

/// A database for one measurement; PostgreSQL databases are dropped with [`drop_now`].
///
/// [`drop_now`]: BenchDatabase::drop_now
#[derive(Debug)]
pub enum BenchDatabase {
    Sqlite(tempfile::TempDir),
    Postgres { server: String, name: String },
}

impl BenchDatabase {
    /// A fresh PostgreSQL database named after `label` and this process.
    pub async fn postgres(label: &str) -> Result<Self, BenchError> {
        let server = server_url();
        let name = format!("throughline_bench_{label}_{}", std::process::id());
        let admin = Database::connect(server.as_str())
            .await
            .map_err(setup_error)?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .map_err(setup_error)?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(setup_error)?;
        admin.close().await.map_err(setup_error)?;
        Ok(Self::Postgres { server, name })
    }

    pub fn sqlite() -> Result<Self, BenchError> {
        Ok(Self::Sqlite(tempfile::tempdir()?))
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite://{}/throughline.db", dir.path().display()),
            Self::Postgres { server, name } => with_database(server, name),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            Self::Postgres { .. } => "PostgreSQL",
        }
    }

    /// The raw load the interaction ingest is compared with on this database.
    pub fn baseline_label(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "multi-row INSERT, with the events",
            Self::Postgres { .. } => "COPY",
        }
    }

    pub async fn drop_now(self) {
        if let Self::Postgres { server, name } = self
            && let Ok(admin) = Database::connect(server.as_str()).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            let _ = admin.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://u:p@db:5432/main?sslmode=disable", "b"),
            "postgres://u:p@db:5432/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://db", "b"), "postgres://db/b");
    }
}
