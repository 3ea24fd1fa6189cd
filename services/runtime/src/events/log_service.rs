//! The event log every process serves (`throughline.event.v1.EventLogService`): the events of
//! the services it hosts, from a cursor, then live.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{DatabaseBackend, DatabaseConnection};
use throughline_proto::event::v1::event_log_service_server::{
    EventLogService, EventLogServiceServer,
};
use throughline_proto::event::v1::subscribe_response::Item;
use throughline_proto::event::v1::{CaughtUp, SubscribeRequest, SubscribeResponse};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::outbox::notification_channel;
use super::{Filter, Outbox, Position};
use crate::auth::{PLATFORM_EVENTS, principal};
use crate::error::Error;

/// The ErrorInfo reason of a subscription to a service this process does not host.
pub const SOURCE_NOT_SERVED: &str = "SOURCE_NOT_SERVED";

/// Rows read per query while catching up.
const BATCH: u64 = 500;
/// Items buffered per subscriber before the reader waits for the subscriber to keep up.
const BUFFER: usize = 256;
/// After a commit notification that found nothing readable yet, look again this often, this
/// many times (two seconds in all), before falling back to the poll interval.
pub(crate) const ANNOUNCED_RETRY: Duration = Duration::from_millis(10);
pub(crate) const ANNOUNCED_RETRIES: u32 = 200;

/// How subscriptions follow the log once caught up.
#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    /// How often an idle subscription looks for new events.
    pub poll_interval: Duration,
    /// How often an idle subscription is told it is caught up (keeps connections alive).
    pub heartbeat_interval: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(50),
            heartbeat_interval: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone)]
struct Producer {
    db: DatabaseConnection,
    outbox: Outbox,
    /// Woken when a transaction that wrote to the outbox commits (PostgreSQL); on SQLite
    /// subscriptions poll.
    committed: Arc<Notify>,
}

/// Stops the notification listeners when the last copy of the event log goes.
#[derive(Debug, Default)]
struct Listeners(Vec<JoinHandle<()>>);

impl Drop for Listeners {
    fn drop(&mut self) {
        for listener in &self.0 {
            listener.abort();
        }
    }
}

/// The event logs of the producers this process hosts.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    producers: Arc<HashMap<String, Producer>>,
    follow: FollowOptions,
    /// Ends every subscription when the process shuts down, so draining does not wait on
    /// streams that never end by themselves.
    stopping: CancellationToken,
    _listeners: Arc<Listeners>,
}

impl EventLog {
    /// Must be called inside the Tokio runtime: PostgreSQL producers get a listener task.
    pub fn new(
        producers: impl IntoIterator<Item = (String, DatabaseConnection)>,
        follow: FollowOptions,
    ) -> Self {
        let mut listeners = Listeners::default();
        let producers = producers
            .into_iter()
            .map(|(name, db)| {
                let committed = Arc::new(Notify::new());
                if db.get_database_backend() == DatabaseBackend::Postgres {
                    let pool = db.get_postgres_connection_pool().clone();
                    listeners.0.push(tokio::spawn(listen(
                        pool,
                        notification_channel(&name),
                        committed.clone(),
                    )));
                }
                let outbox = Outbox::new(&name);
                (
                    name,
                    Producer {
                        db,
                        outbox,
                        committed,
                    },
                )
            })
            .collect();
        Self {
            producers: Arc::new(producers),
            follow,
            stopping: CancellationToken::new(),
            _listeners: Arc::new(listeners),
        }
    }

    /// Ends the subscriptions when `stopping` is cancelled.
    pub fn stopping_with(mut self, stopping: CancellationToken) -> Self {
        self.stopping = stopping;
        self
    }
}

/// Wakes subscriptions on every commit notification; reconnects after a lost connection
/// (subscriptions keep polling meanwhile).
pub(crate) async fn listen(pool: sea_orm::sqlx::PgPool, channel: String, committed: Arc<Notify>) {
    loop {
        if let Ok(mut listener) = PgListener::connect_with(&pool).await
            && listener.listen(&channel).await.is_ok()
        {
            while listener.recv().await.is_ok() {
                committed.notify_waiters();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The event sources: the services of the contract, by the package name they are known by
/// (`throughline.profile.v1.ProfileService` → `profile`).
fn sources() -> impl Iterator<Item = &'static str> {
    throughline_proto::SERVICE_NAMES
        .into_iter()
        .filter_map(|full_name| full_name.split('.').nth(1))
}

#[tonic::async_trait]
impl EventLogService for EventLog {
    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<BoxStream<SubscribeResponse>>, Status> {
        // Tenant credentials see their own tenant's events; a service consuming another's
        // log reads every tenant's.
        let caller = principal(&request)?;
        let tenant = (!caller.has_scope(PLATFORM_EVENTS)).then(|| caller.tenant.clone());
        let request = request.into_inner();
        if !sources().any(|source| source == request.source) {
            let known: Vec<_> = sources().collect();
            return Err(
                Error::invalid("source", format!("must be one of {}", known.join(", "))).into(),
            );
        }
        let Some(producer) = self.producers.get(&request.source).cloned() else {
            return Err(Error::NotFoundBecause {
                reason: SOURCE_NOT_SERVED,
                message: format!(
                    "the {} event log is not served by this process: subscribe where that service runs",
                    request.source
                ),
            }
            .into());
        };
        let start = Position::decode(&request.from_cursor)?;
        super::check_cursor(&producer.db, &request.source, start).await?;
        let filter = Filter {
            tenant,
            event_types: request.event_types,
        };
        let (sender, receiver) = mpsc::channel(BUFFER);
        let (stopping, options) = (self.stopping.clone(), self.follow);
        tokio::spawn(async move {
            tokio::select! {
                () = follow(producer, start, filter, options, sender) => {}
                () = stopping.cancelled() => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// Sends the log from `position` on, then follows it, until the subscriber goes away.
async fn follow(
    producer: Producer,
    mut position: Position,
    filter: Filter,
    options: FollowOptions,
    sender: mpsc::Sender<Result<SubscribeResponse, Status>>,
) {
    // Whether the position moved since the last CaughtUp: the subscriber then learns the new
    // end at once, even when the filter let none of the events through.
    let mut moved = true;
    let mut last_caught_up = tokio::time::Instant::now();
    // Reads left before giving up on a commit we were told of: its rows may be held back
    // for a moment by an older transaction still running elsewhere in the cluster.
    let mut announced_reads_left = 0_u32;
    loop {
        // Registered before reading, so a commit between the read and the wait still wakes us.
        let committed = producer.committed.notified();
        tokio::pin!(committed);
        committed.as_mut().enable();
        let batch = match producer
            .outbox
            .read(&producer.db, position, BATCH, &filter)
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                let _ = sender.send(Err(error.into())).await;
                return;
            }
        };
        for entry in batch.entries {
            let item = SubscribeResponse {
                cursor: entry.position.encode(),
                item: Some(Item::Event(entry.event)),
            };
            if sender.send(Ok(item)).await.is_err() {
                return;
            }
        }
        if let Some(end) = batch.end {
            position = end;
            moved = true;
            announced_reads_left = 0;
            continue;
        }
        // Caught up: say so when the end moved and then every heartbeat interval while idle.
        if moved || last_caught_up.elapsed() >= options.heartbeat_interval {
            let caught_up = SubscribeResponse {
                cursor: position.encode(),
                item: Some(Item::CaughtUp(CaughtUp {
                    time: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
                })),
            };
            if sender.send(Ok(caught_up)).await.is_err() {
                return;
            }
            moved = false;
            last_caught_up = tokio::time::Instant::now();
        }
        let wait = if announced_reads_left > 0 {
            announced_reads_left -= 1;
            ANNOUNCED_RETRY
        } else {
            options.poll_interval
        };
        tokio::select! {
            () = committed => announced_reads_left = ANNOUNCED_RETRIES,
            () = tokio::time::sleep(wait) => {}
            () = sender.closed() => return,
        }
    }
}

pub fn event_log_server(log: EventLog) -> EventLogServiceServer<EventLog> {
    EventLogServiceServer::new(log)
}
