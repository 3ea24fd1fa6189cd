//! Starting a process: connect each selected service to its database, migrate, and serve.

use std::sync::Arc;

use throughline_runtime::auth::Authenticator;
use throughline_runtime::config::ConfigError;
use throughline_runtime::db::Databases;
use throughline_runtime::peers::{Peers, ServiceCredential};
use throughline_runtime::server::{GrpcServer, ServeError};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::services::{self, ServiceEntry};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database of the {service} service: {source}")]
    Database {
        service: &'static str,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The entries of `names`; configuration validation has already refused unknown names.
fn selected(names: &[String]) -> Result<Vec<&'static ServiceEntry>, Error> {
    names
        .iter()
        .map(|name| {
            services::find(name).ok_or_else(|| {
                ConfigError::invalid("server.services", format!("unknown service {name}")).into()
            })
        })
        .collect()
}

async fn connect(
    databases: &Databases,
    config: &Config,
    entry: &ServiceEntry,
    migrate: bool,
) -> Result<sea_orm::DatabaseConnection, Error> {
    let database_error = |source| Error::Database {
        service: entry.name,
        source,
    };
    let db = databases
        .for_service(entry.name, (entry.database_url)(config))
        .await
        .map_err(database_error)?;
    if migrate {
        (entry.migrate)(&db).await.map_err(database_error)?;
        tracing::info!(service = entry.name, "migrations applied");
    }
    Ok(db)
}

/// Applies the pending migrations of every service in `names`.
pub async fn migrate_services(config: &Config, names: &[String]) -> Result<(), Error> {
    let databases = Databases::new(config.database.clone());
    for entry in selected(names)? {
        connect(&databases, config, entry, true).await?;
    }
    Ok(())
}

/// Builds the gRPC server hosting the services `config.server.services` selects.
pub async fn build_server(config: &Config) -> Result<GrpcServer, Error> {
    let authenticator = Arc::new(Authenticator::new(&config.auth)?);
    let mut server = GrpcServer::new(config.server.clone(), authenticator);
    server.set_events_options(config.events.clone());
    server.set_peers(Peers::new(
        config.endpoints.by_service(),
        config.server.services.clone(),
        ServiceCredential::from_options(&config.auth),
    ));
    let databases = Databases::new(config.database.clone());
    for entry in selected(&config.server.services)? {
        let db = connect(&databases, config, entry, config.database.migrate_on_start).await?;
        // Every service produces events; its log is served beside its API.
        server.add_producer(entry.name, db.clone());
        (entry.register)(&mut server, db, config);
        tracing::info!(service = entry.name, "service ready");
    }
    Ok(server)
}

/// Serves until `shutdown` completes and calls in flight have drained.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let server = build_server(config).await?;
    tracing::info!(
        address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        services = ?server.service_names(),
        "serving gRPC"
    );
    server.serve(listener, shutdown).await?;
    Ok(())
}
