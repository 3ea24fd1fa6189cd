//! The one table of the services this binary can run: how to migrate each, where its own
//! database may be configured, and how to add it to the server.

use futures::future::BoxFuture;
use sea_orm::{DatabaseConnection, DbErr};
use throughline_runtime::db::migrate;
use throughline_runtime::events::{Consumer, Subscription};
use throughline_runtime::server::GrpcServer;

use crate::config::Config;
use crate::profile_resolver::ProfileResolver;

/// One service as the binary sees it.
pub struct ServiceEntry {
    pub name: &'static str,
    /// Applies the service's pending migrations.
    pub migrate: for<'a> fn(&'a DatabaseConnection) -> BoxFuture<'a, Result<(), DbErr>>,
    /// The service's own `database_url`, when configured.
    pub database_url: fn(&Config) -> Option<&str>,
    /// Adds the service's gRPC server, built on `db` with its options from `config`, and the
    /// subscriptions to other services' events it keeps.
    pub register: fn(&mut GrpcServer, DatabaseConnection, &Config),
}

/// Every service, in start order.
pub const SERVICES: [ServiceEntry; 5] = [
    ServiceEntry {
        name: throughline_profile::NAME,
        migrate: |db| Box::pin(migrate::<throughline_profile::Migrator>(db)),
        database_url: |config| config.profile.database_url.as_deref(),
        register: |server, db, config| {
            server
                .add_service(throughline_profile::Service::new(db, config.profile.clone()).grpc());
        },
    },
    ServiceEntry {
        name: throughline_interaction::NAME,
        migrate: |db| Box::pin(migrate::<throughline_interaction::Migrator>(db)),
        database_url: |config| config.interaction.database_url.as_deref(),
        register: |server, db, config| {
            // Merges, unmerges and erasures reshape timelines.
            server.add_subscription(Subscription {
                consumer: Consumer::new(
                    throughline_interaction::NAME,
                    throughline_interaction::PROFILE_EVENTS_CONSUMER,
                    db.clone(),
                ),
                source: throughline_interaction::PROFILE_EVENTS_SOURCE.to_owned(),
                event_types: throughline_interaction::profile_event_types(),
                handler: throughline_interaction::profile_events_handler(),
            });
            let resolver = ProfileResolver::new(server.peers().clone());
            server.add_service(
                throughline_interaction::Service::new(db, config.interaction.clone())
                    .with_resolver(std::sync::Arc::new(resolver))
                    .grpc(),
            );
        },
    },
    ServiceEntry {
        name: throughline_feedback::NAME,
        migrate: |db| Box::pin(migrate::<throughline_feedback::Migrator>(db)),
        database_url: |config| config.feedback.database_url.as_deref(),
        register: |server, db, config| {
            let service = throughline_feedback::Service::new(db.clone(), config.feedback.clone())
                .with_peers(server.peers().clone())
                .with_resolver(std::sync::Arc::new(ProfileResolver::new(
                    server.peers().clone(),
                )));
            // Merges, unmerges and erasures reach responses; segment changes feed the segment
            // breakdown of metrics.
            server.add_subscription(Subscription {
                consumer: Consumer::new(
                    throughline_feedback::NAME,
                    throughline_feedback::PROFILE_EVENTS_CONSUMER,
                    db.clone(),
                ),
                source: throughline_feedback::PROFILE_EVENTS_SOURCE.to_owned(),
                event_types: throughline_feedback::PROFILE_EVENT_TYPES
                    .map(str::to_owned)
                    .to_vec(),
                handler: throughline_feedback::profile_events_handler(),
            });
            // SMS replies of a bare number answer NPS invitations.
            server.add_subscription(Subscription {
                consumer: Consumer::new(
                    throughline_feedback::NAME,
                    throughline_feedback::REPLIES_CONSUMER,
                    db,
                ),
                source: throughline_feedback::REPLIES_SOURCE.to_owned(),
                event_types: throughline_feedback::REPLY_EVENT_TYPES
                    .map(str::to_owned)
                    .to_vec(),
                handler: throughline_feedback::replies_handler(service.clone()),
            });
            server.add_worker(service.counts_worker());
            server.add_service(service.grpc());
        },
    },
    ServiceEntry {
        name: throughline_orchestration::NAME,
        migrate: |db| Box::pin(migrate::<throughline_orchestration::Migrator>(db)),
        database_url: |config| config.orchestration.database_url.as_deref(),
        register: |server, db, config| {
            let service =
                throughline_orchestration::Service::new(db.clone(), config.orchestration.clone())
                    .with_peers(server.peers().clone())
                    .with_resolver(std::sync::Arc::new(ProfileResolver::new(
                        server.peers().clone(),
                    )));
            // Every other service's events start journeys, end waits, count goals and exits;
            // they are staged in the service's inbox and applied by its engine.
            for source in throughline_orchestration::EVENT_SOURCES {
                server.add_subscription(Subscription {
                    consumer: Consumer::new(
                        throughline_orchestration::NAME,
                        throughline_orchestration::EVENTS_CONSUMER,
                        db.clone(),
                    ),
                    source: source.to_owned(),
                    event_types: Vec::new(),
                    handler: throughline_orchestration::events_handler(),
                });
            }
            if let Some(worker) = service.engine_worker() {
                server.add_worker(worker);
            }
            server.add_service(service.grpc());
        },
    },
    ServiceEntry {
        name: throughline_distribution::NAME,
        migrate: |db| Box::pin(migrate::<throughline_distribution::Migrator>(db)),
        database_url: |config| config.distribution.database_url.as_deref(),
        register: |server, db, config| {
            // Every service's events, its own included, fan out to webhook subscriptions.
            for subscription in throughline_distribution::webhook_subscriptions(db.clone()) {
                server.add_subscription(subscription);
            }
            let service = throughline_distribution::Service::new(db, config.distribution.clone())
                .with_peers(server.peers().clone());
            for worker in [
                service.delivery_worker(),
                service.inbound_endpoint(),
                service.webhook_worker(),
            ]
            .into_iter()
            .flatten()
            {
                server.add_worker(worker);
            }
            server.add_service(service.grpc());
        },
    },
];

/// The entry of the service called `name`.
pub fn find(name: &str) -> Option<&'static ServiceEntry> {
    SERVICES.iter().find(|entry| entry.name == name)
}
