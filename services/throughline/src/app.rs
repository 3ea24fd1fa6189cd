//! Starting a process: connect each selected service to its database, migrate, and serve.

use std::sync::Arc;

use throughline_runtime::auth::Authenticator;
use throughline_runtime::config::ConfigError;
use throughline_runtime::db::{Databases, migrate};
use throughline_runtime::server::{GrpcServer, ServeError};
use tokio::net::TcpListener;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database of the {service} service: {source}")]
    Database {
        service: String,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
}

fn database_error(service: &str) -> impl FnOnce(sea_orm::DbErr) -> Error + '_ {
    move |source| Error::Database {
        service: service.to_owned(),
        source,
    }
}

/// Applies the pending migrations of every service in `services`.
pub async fn migrate_services(config: &Config, services: &[String]) -> Result<(), Error> {
    let databases = Databases::new(config.database.clone());
    for service in services {
        let db = databases
            .for_service(service, config.database_url_override(service))
            .await
            .map_err(database_error(service))?;
        migrate_one(service, &db).await?;
        tracing::info!(service = %service, "migrations applied");
    }
    Ok(())
}

async fn migrate_one(service: &str, db: &sea_orm::DatabaseConnection) -> Result<(), Error> {
    let result = match service {
        throughline_profile::NAME => migrate::<throughline_profile::Migrator>(db).await,
        throughline_interaction::NAME => migrate::<throughline_interaction::Migrator>(db).await,
        throughline_feedback::NAME => migrate::<throughline_feedback::Migrator>(db).await,
        throughline_orchestration::NAME => migrate::<throughline_orchestration::Migrator>(db).await,
        throughline_distribution::NAME => migrate::<throughline_distribution::Migrator>(db).await,
        other => {
            return Err(ConfigError::invalid(
                "server.services",
                format!("unknown service {other}"),
            )
            .into());
        }
    };
    result.map_err(database_error(service))
}

/// Builds the gRPC server hosting the services `config.server.services` selects.
pub async fn build_server(config: &Config) -> Result<GrpcServer, Error> {
    let authenticator = Arc::new(Authenticator::new(&config.auth)?);
    let mut server = GrpcServer::new(config.server.clone(), authenticator);
    let databases = Databases::new(config.database.clone());
    for service in &config.server.services {
        let db = databases
            .for_service(service, config.database_url_override(service))
            .await
            .map_err(database_error(service))?;
        if config.database.migrate_on_start {
            migrate_one(service, &db).await?;
        }
        match service.as_str() {
            throughline_profile::NAME => {
                server.add_service(
                    throughline_profile::Service::new(db, config.profile.clone()).grpc(),
                );
            }
            throughline_interaction::NAME => {
                server.add_service(
                    throughline_interaction::Service::new(db, config.interaction.clone()).grpc(),
                );
            }
            throughline_feedback::NAME => {
                server.add_service(
                    throughline_feedback::Service::new(db, config.feedback.clone()).grpc(),
                );
            }
            throughline_orchestration::NAME => {
                server.add_service(
                    throughline_orchestration::Service::new(db, config.orchestration.clone())
                        .grpc(),
                );
            }
            throughline_distribution::NAME => {
                server.add_service(
                    throughline_distribution::Service::new(db, config.distribution.clone()).grpc(),
                );
            }
            other => {
                return Err(ConfigError::invalid(
                    "server.services",
                    format!("unknown service {other}"),
                )
                .into());
            }
        }
        tracing::info!(service = %service, "service ready");
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
