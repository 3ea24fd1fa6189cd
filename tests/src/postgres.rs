//! Finds the PostgreSQL server tests run on, in this order:
//! 1. `THROUGHLINE_TEST_DATABASE_URL`;
//! 2. a server on 127.0.0.1:5432 (user `postgres`, trust or password-less auth), if it answers;
//! 3. a cluster started from the system's `initdb`/`pg_ctl` in a temporary directory, shared by
//!    the test processes of a run and left running for the next.
//!
//! A machine with none of these fails the PostgreSQL tests with a message saying so: they
//! are never skipped silently.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use tokio::sync::OnceCell;

pub const URL_VARIABLE: &str = "THROUGHLINE_TEST_DATABASE_URL";
const LOCAL_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const FALLBACK_PORT: u16 = 55432;

static SERVER_URL: OnceCell<String> = OnceCell::const_new();

/// The maintenance URL of the test server.
pub async fn server_url() -> String {
    SERVER_URL
        .get_or_init(|| async {
            if let Ok(url) = std::env::var(URL_VARIABLE) {
                return url;
            }
            if answers(LOCAL_URL).await {
                return LOCAL_URL.to_owned();
            }
            match start_private_cluster().await {
                Ok(url) => url,
                Err(why) => panic!(
                    "PostgreSQL tests need a server: set {URL_VARIABLE}, run one on \
                     127.0.0.1:5432, or install initdb/pg_ctl ({why})"
                ),
            }
        })
        .await
        .clone()
}

async fn answers(url: &str) -> bool {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(Duration::from_secs(2))
        .max_connections(1)
        .sqlx_logging(false);
    match Database::connect(options).await {
        Ok(connection) => {
            let _ = connection.close().await;
            true
        }
        Err(_) => false,
    }
}

/// `server_url` with its database name replaced by `name`.
pub fn database_url(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |index| authority_start + index);
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

async fn admin_connection(server_url: &str) -> sea_orm::DatabaseConnection {
    let mut options = sea_orm::ConnectOptions::new(server_url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"))
}

pub async fn create_database(server_url: &str, name: &str) {
    let admin = admin_connection(server_url).await;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let _ = admin.close().await;
}

/// Drops a test database from a `Drop` impl, which may run inside or outside a runtime.
pub fn drop_database_blocking(server_url: &str, name: &str) {
    let server_url = server_url.to_owned();
    let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            let admin = admin_connection(&server_url).await;
            let result = admin.execute_unprepared(&statement).await;
            let _ = admin.close().await;
            result.ok()
        })
    })
    .join();
    if !matches!(dropped, Ok(Some(_))) {
        eprintln!("warning: could not drop test database {name}");
    }
}

pub(crate) fn find_binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| {
            versions
                .filter_map(Result::ok)
                .map(|version| version.path().join("bin").join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(debian)
        .find(|path| path.is_file())
}

async fn start_private_cluster() -> Result<String, String> {
    let initdb = find_binary("initdb").ok_or("initdb not found")?;
    let pg_ctl = find_binary("pg_ctl").ok_or("pg_ctl not found")?;
    let dir = std::env::temp_dir().join("throughline-test-postgres");
    let data = dir.join("data");
    let url = format!("postgres://postgres@127.0.0.1:{FALLBACK_PORT}/postgres");
    if answers(&url).await {
        return Ok(url);
    }
    // Several test processes may get here at once: the one that creates the lock directory
    // starts the cluster, the others wait for it to answer.
    let lock = dir.join("starting");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if std::fs::create_dir(&lock).is_ok() {
        let started = init_and_start(&initdb, &pg_ctl, &data, &dir);
        let _ = std::fs::remove_dir(&lock);
        started?;
    }
    for _ in 0..100 {
        if answers(&url).await {
            return Ok(url);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("the cluster in {} did not start", dir.display()))
}

fn init_and_start(initdb: &Path, pg_ctl: &Path, data: &Path, dir: &Path) -> Result<(), String> {
    if !data.join("PG_VERSION").exists() {
        let status = Command::new(initdb)
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(data)
            .status()
            .map_err(|e| format!("initdb: {e}"))?;
        if !status.success() {
            return Err("initdb failed (it refuses to run as root)".to_owned());
        }
    }
    let status = Command::new(pg_ctl)
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .arg("-o")
        .arg(format!(
            "-p {FALLBACK_PORT} -k {} -c listen_addresses=127.0.0.1",
            dir.display()
        ))
        .arg("-w")
        .arg("start")
        .status()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("pg_ctl start failed".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u:p@db:5432/main?sslmode=disable", "t2"),
            "postgres://u:p@db:5432/t2?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://db:5432", "t3"),
            "postgres://db:5432/t3"
        );
    }
}
