//! Consuming another service's events: at least once from its event log, with the effect of
//! each event and the consumer's cursor committed in one transaction, and a duplicate (the
//! same event id again) recognised and skipped. A consumer that was down resumes from its
//! cursor.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use throughline_proto::event::v1::event_log_service_client::EventLogServiceClient;
use throughline_proto::event::v1::subscribe_response::Item;
use throughline_proto::event::v1::{Event, SubscribeRequest};
use tonic::client::GrpcService;

use crate::error::Error;

/// Events applied per transaction at most.
const BATCH: usize = 500;

/// Waits for `stream`'s next item, then takes every item that has already arrived behind it,
/// up to `limit`: one transaction for all of them. `ready_chunks` would stop at tokio's
/// cooperative budget (128 items per poll of a task) and cut busy batches to ~128 events,
/// so the arrived items are taken unconstrained by it; `limit` bounds the time spent.
pub(super) async fn next_batch<S>(stream: &mut S, limit: usize) -> Option<Vec<S::Item>>
where
    S: futures::Stream + Unpin,
{
    let first = stream.next().await?;
    let mut items = vec![first];
    while items.len() < limit {
        match tokio::task::unconstrained(stream.next()).now_or_never() {
            Some(Some(item)) => items.push(item),
            // Nothing more has arrived, or the stream ended (the next call says so).
            Some(None) | None => break,
        }
    }
    Some(items)
}

/// What a consumer does with one event, inside the transaction that also moves its cursor.
pub type Handler = Arc<
    dyn for<'t> Fn(&'t DatabaseTransaction, &'t Event) -> BoxFuture<'t, Result<(), Error>>
        + Send
        + Sync,
>;

fn lag_histogram() -> &'static Histogram<f64> {
    static HISTOGRAM: OnceLock<Histogram<f64>> = OnceLock::new();
    HISTOGRAM.get_or_init(|| {
        opentelemetry::global::meter("throughline")
            .f64_histogram("events.consumer.lag")
            .with_unit("s")
            .with_description(
                "Time from an event's change to its effect in a consumer, by consumer and source.",
            )
            .with_boundaries(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
            ])
            .build()
    })
}

/// Seconds between the event's change and now; none for an event without a time.
fn lag_seconds(event: &Event) -> Option<f64> {
    let time = event.time.as_ref()?;
    let happened = std::time::UNIX_EPOCH
        + Duration::new(
            u64::try_from(time.seconds).ok()?,
            u32::try_from(time.nanos).ok()?,
        );
    Some(
        std::time::SystemTime::now()
            .duration_since(happened)
            .unwrap_or_default()
            .as_secs_f64(),
    )
}

/// Whether an event took effect or had already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Effect,
    Duplicate,
}

/// One named consumer of a consuming service (tables `<service>_event_cursors` and
/// `<service>_processed_events`).
#[derive(Debug, Clone)]
pub struct Consumer {
    pub(super) service: String,
    pub(super) name: String,
    cursors: String,
    processed: String,
    db: DatabaseConnection,
}

impl Consumer {
    pub fn new(service: &str, name: &str, db: DatabaseConnection) -> Self {
        Self {
            service: service.to_owned(),
            name: name.to_owned(),
            cursors: format!("{service}_event_cursors"),
            processed: format!("{service}_processed_events"),
            db,
        }
    }

    /// The stored cursor of `source`; empty (the start of the log) when none is stored.
    pub async fn cursor(&self, source: &str) -> Result<String, Error> {
        self.cursor_on(&self.db, source).await
    }

    pub(crate) async fn cursor_on<C: ConnectionTrait>(
        &self,
        connection: &C,
        source: &str,
    ) -> Result<String, Error> {
        let select = Query::select()
            .column(Alias::new("cursor"))
            .from(Alias::new(&self.cursors))
            .and_where(Expr::col(Alias::new("consumer")).eq(self.name.as_str()))
            .and_where(Expr::col(Alias::new("source")).eq(source))
            .to_owned();
        Ok(match connection.query_one(&select).await? {
            Some(row) => row.try_get("", "cursor")?,
            None => String::new(),
        })
    }

    /// Applies `event` (found at `cursor` in `source`'s log): runs `handler` unless this
    /// consumer already processed the event, and stores the cursor, all in one transaction.
    pub async fn apply(
        &self,
        source: &str,
        event: &Event,
        cursor: &str,
        handler: &Handler,
    ) -> Result<Applied, Error> {
        let applied = self
            .apply_all(source, std::slice::from_ref(event), cursor, handler)
            .await?;
        Ok(applied[0])
    }

    /// Applies consecutive `events` of `source`'s log in one transaction that ends by storing
    /// `cursor` (the position after the last of them): one commit for a whole batch is what
    /// lets a consumer keep up with a busy producer. Either every effect and the cursor
    /// commit, or none.
    pub async fn apply_all(
        &self,
        source: &str,
        events: &[Event],
        cursor: &str,
        handler: &Handler,
    ) -> Result<Vec<Applied>, Error> {
        let transaction = self.db.begin().await?;
        let claimed = self.claim(&transaction, events).await?;
        let mut applied = Vec::with_capacity(events.len());
        let mut acted = std::collections::HashSet::with_capacity(claimed.len());
        for event in events {
            // An id twice in one batch takes effect once, like an id seen in an earlier batch.
            applied.push(
                if claimed.contains(event.id.as_str()) && acted.insert(event.id.as_str()) {
                    handler(&transaction, event).await?;
                    Applied::Effect
                } else {
                    Applied::Duplicate
                },
            );
        }
        self.store_cursor(&transaction, source, cursor).await?;
        transaction.commit().await?;
        for event in events {
            if let Some(lag) = lag_seconds(event) {
                lag_histogram().record(
                    lag,
                    &[
                        KeyValue::new("consumer", self.name.clone()),
                        KeyValue::new("source", source.to_owned()),
                    ],
                );
            }
        }
        Ok(applied)
    }

    /// Claims `events` for this consumer in one statement; returns the ids it had not
    /// processed before.
    async fn claim(
        &self,
        transaction: &DatabaseTransaction,
        events: &[Event],
    ) -> Result<std::collections::HashSet<String>, Error> {
        if events.is_empty() {
            return Ok(Default::default());
        }
        let mut claim = Query::insert()
            .into_table(Alias::new(&self.processed))
            .columns(["consumer", "event_id"].map(Alias::new))
            .on_conflict(
                OnConflict::columns(["consumer", "event_id"].map(Alias::new))
                    .do_nothing()
                    .to_owned(),
            )
            .returning_col(Alias::new("event_id"))
            .to_owned();
        for event in events {
            claim.values_panic([self.name.as_str().into(), event.id.as_str().into()]);
        }
        let rows = transaction.query_all(&claim).await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String>("", "event_id")?))
            .collect()
    }

    pub(crate) async fn store_cursor<C: ConnectionTrait>(
        &self,
        connection: &C,
        source: &str,
        cursor: &str,
    ) -> Result<(), Error> {
        let upsert = Query::insert()
            .into_table(Alias::new(&self.cursors))
            .columns(["consumer", "source", "cursor"].map(Alias::new))
            .values_panic([self.name.as_str().into(), source.into(), cursor.into()])
            .on_conflict(
                OnConflict::columns(["consumer", "source"].map(Alias::new))
                    .update_column(Alias::new("cursor"))
                    .to_owned(),
            )
            .to_owned();
        connection.execute(&upsert).await?;
        Ok(())
    }

    /// Follows `source`'s log from the stored cursor, applying every event of `event_types`,
    /// until the stream fails; the caller retries (see [`Consumer::run`]).
    async fn follow_once<T>(
        &self,
        client: &mut EventLogServiceClient<T>,
        source: &str,
        event_types: &[String],
        handler: &Handler,
    ) -> Result<(), Error>
    where
        T: GrpcService<tonic::body::Body>,
        T::Error: Into<tonic::codegen::StdError>,
        T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
        <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    {
        let request = SubscribeRequest {
            source: source.to_owned(),
            from_cursor: self.cursor(source).await?,
            event_types: event_types.to_vec(),
        };
        let unavailable = |status: tonic::Status| Error::Unavailable(status.message().to_owned());
        let stream = client
            .subscribe(request)
            .await
            .map_err(unavailable)?
            .into_inner();
        // Whatever has arrived is applied together, in one transaction.
        let mut stream = stream;
        while let Some(items) = next_batch(&mut stream, BATCH).await {
            let mut events = Vec::with_capacity(items.len());
            let mut cursor = None;
            let mut failure = None;
            for item in items {
                match item {
                    Ok(item) => {
                        if let Some(Item::Event(event)) = item.item {
                            events.push(event);
                        }
                        // Past a CaughtUp there is nothing to do but remember the position.
                        cursor = Some(item.cursor);
                    }
                    Err(status) => {
                        failure = Some(unavailable(status));
                        break;
                    }
                }
            }
            if let Some(cursor) = cursor {
                self.apply_all(source, &events, &cursor, handler).await?;
            }
            if let Some(failure) = failure {
                return Err(failure);
            }
        }
        Ok(())
    }

    /// Consumes `source` for as long as the future runs, reconnecting with backoff when the
    /// producer is unavailable. Cancel it (drop it) to stop: a transaction in flight rolls back
    /// and its event is delivered again on the next start.
    pub async fn run<T>(
        &self,
        mut client: EventLogServiceClient<T>,
        source: &str,
        event_types: &[String],
        handler: Handler,
    ) where
        T: GrpcService<tonic::body::Body>,
        T::Error: Into<tonic::codegen::StdError>,
        T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
        <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self
                .follow_once(&mut client, source, event_types, &handler)
                .await
            {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(consumer = %self.name, source, error = %error, "event consumer interrupted; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            tokio::time::sleep(backoff).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_takes_everything_that_has_arrived_up_to_the_limit() {
        let (sender, receiver) = tokio::sync::mpsc::channel(1000);
        for item in 0..700 {
            sender.send(item).await.unwrap();
        }
        drop(sender);
        let mut stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        // More than tokio's cooperative budget of 128 in one batch.
        let first = next_batch(&mut stream, 500).await.unwrap();
        assert_eq!(first, (0..500).collect::<Vec<_>>());
        let second = next_batch(&mut stream, 500).await.unwrap();
        assert_eq!(second, (500..700).collect::<Vec<_>>());
        assert!(next_batch(&mut stream, 500).await.is_none());
    }
}
