//! A fresh, empty database for each test.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tempfile::TempDir;

use crate::postgres;

/// A database that exists for one test and is removed after it.
#[derive(Debug)]
pub enum TestDatabase {
    Sqlite {
        dir: TempDir,
        url: String,
    },
    Postgres {
        /// The server's maintenance URL, used to drop the database afterwards.
        server_url: String,
        name: String,
        url: String,
    },
}

impl TestDatabase {
    /// An SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/throughline.db", dir.path().display());
        Self::Sqlite { dir, url }
    }

    /// A new database on the test PostgreSQL server (see [`postgres::server_url`]).
    pub async fn postgres() -> Self {
        let server_url = postgres::server_url().await;
        let name = format!("throughline_test_{}", uuid::Uuid::new_v4().simple());
        postgres::create_database(&server_url, &name).await;
        let url = postgres::database_url(&server_url, &name);
        Self::Postgres {
            server_url,
            name,
            url,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres {
            server_url, name, ..
        } = self
        {
            postgres::drop_database_blocking(server_url, name);
        }
        // An SQLite database goes with its TempDir.
    }
}

/// The single integer `sql` answers on `db` (a count, a sum cast to BIGINT, a pragma).
pub async fn query_integer(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
}
