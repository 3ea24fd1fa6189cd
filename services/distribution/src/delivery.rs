//! Delivery: workers claim due messages from the queue with leases (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so any number of replicas share it), hand each to the first healthy provider of
//! its channel within the provider's rate limit, and record the outcome.
//!
//! - A transient error retries after an exponential backoff with jitter, on the next healthy
//!   provider first when there is one (failover); after `max_attempts` the message is FAILED
//!   and kept as a dead letter.
//! - A provider that fails `failure_threshold` times in a row is DOWN for a cooldown; messages
//!   for it wait (without spending attempts) until then, and are claimed again in order of
//!   priority when it is back.
//! - Outcomes are written in batches (one transaction for many messages) with their events. A
//!   crash after a provider took a message and before its outcome was written sends it again
//!   when the lease expires, with the same idempotency key, so the provider can drop the
//!   repeat.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use serde::{Deserialize, Serialize};
use throughline_proto::common::v1::Channel;
use throughline_proto::distribution::v1::{MessageStatus, ProviderHealth, StatusReason};
use throughline_proto::event::v1::Event;
use throughline_runtime::Error;
use throughline_runtime::events::Outbox;
use throughline_runtime::sql::Sql;
use throughline_runtime::time::now_us;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::provider::{Outgoing, Provider, SendError};
use crate::send::status_event;
use crate::store::messages::{Change, MESSAGE_COLUMNS, MESSAGES, MessageRow, Update, apply};
use throughline_runtime::backoff::backoff;

/// `[distribution.delivery]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryOptions {
    /// Whether this process delivers; API-only replicas may leave it to others.
    pub enabled: bool,
    /// Messages handed to providers at once.
    pub concurrency: usize,
    /// Messages claimed per query.
    pub batch_size: usize,
    /// How long a claimed message is held before another worker may take it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Attempts before a message is FAILED (a dead letter).
    pub max_attempts: u32,
    /// The first retry's delay; doubled per attempt, with jitter, up to `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// How often the queue is read when nothing wakes the worker.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Transient failures in a row that take a provider DOWN.
    pub failure_threshold: u32,
    /// How long a DOWN provider rests before it is tried again.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// How long one provider call may take.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            concurrency: 64,
            batch_size: 128,
            lease: Duration::from_secs(60),
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            poll_interval: Duration::from_millis(500),
            failure_threshold: 3,
            cooldown: Duration::from_secs(5),
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// A provider with its rate limiter and recent health.
#[derive(Debug)]
pub(crate) struct ProviderState {
    pub provider: Provider,
    limiter: Option<DefaultDirectRateLimiter>,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    down_until: Option<Instant>,
}

impl ProviderState {
    fn new(provider: Provider) -> Self {
        let limiter = (provider.rate_limit > 0.0)
            .then(|| {
                // Tokens for 20 ms at most: timers wake in milliseconds, so a burst of one would
                // lose every slot a sleeping sender wakes up late for (measured 20 % under a
                // 2,000/s limit); 20 ms of burst keeps any one-second window within 2 %.
                let burst = (provider.rate_limit * 0.02)
                    .ceil()
                    .clamp(1.0, f64::from(u32::MAX));
                Quota::with_period(Duration::from_secs_f64(1.0 / provider.rate_limit)).map(
                    |quota| {
                        quota.allow_burst(NonZeroU32::new(burst as u32).unwrap_or(NonZeroU32::MIN))
                    },
                )
            })
            .flatten()
            .map(RateLimiter::direct);
        Self {
            provider,
            limiter,
            health: Mutex::new(Health::default()),
        }
    }

    fn down_until(&self) -> Option<Instant> {
        let health = self.health.lock().ok()?;
        health.down_until.filter(|until| *until > Instant::now())
    }

    pub(crate) fn health(&self) -> ProviderHealth {
        let Ok(health) = self.health.lock() else {
            return ProviderHealth::Unspecified;
        };
        match health.down_until {
            Some(until) if until > Instant::now() => ProviderHealth::Down,
            _ if health.consecutive_failures > 0 => ProviderHealth::Degraded,
            _ => ProviderHealth::Healthy,
        }
    }

    fn succeeded(&self) {
        if let Ok(mut health) = self.health.lock() {
            *health = Health::default();
        }
    }

    fn failed(&self, options: &DeliveryOptions) {
        if let Ok(mut health) = self.health.lock() {
            health.consecutive_failures += 1;
            if health.consecutive_failures >= options.failure_threshold {
                health.down_until = Some(Instant::now() + options.cooldown);
            }
        }
    }
}

/// What delivery workers share with the API: the providers and the bell a send rings.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub options: DeliveryOptions,
    pub providers: Vec<Arc<ProviderState>>,
    pub wake: Notify,
}

impl Delivery {
    pub(crate) fn new(options: DeliveryOptions, providers: Vec<Provider>) -> Self {
        Self {
            options,
            providers: providers
                .into_iter()
                .map(|p| Arc::new(ProviderState::new(p)))
                .collect(),
            wake: Notify::new(),
        }
    }

    /// The providers of a channel in the order to try them: by priority, those that are not
    /// DOWN first, and the provider that failed the previous attempt after the others.
    fn candidates(&self, channel: i32, failed_last: &str) -> Vec<Arc<ProviderState>> {
        let mut candidates: Vec<Arc<ProviderState>> = self
            .providers
            .iter()
            .filter(|state| state.provider.channels.iter().any(|c| *c as i32 == channel))
            .cloned()
            .collect();
        candidates.sort_by_key(|state| {
            (
                state.down_until().is_some(),
                state.provider.name == failed_last,
            )
        });
        candidates
    }

    /// Claims and delivers until `stopping`; outcomes of messages in flight are written
    /// before it returns.
    pub(crate) async fn run(self: Arc<Self>, db: DatabaseConnection, stopping: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let (outcomes, receiver) = mpsc::channel(self.options.concurrency.max(1) * 4);
        let writer = tokio::spawn(write_outcomes(db.clone(), receiver));
        while !stopping.is_cancelled() {
            let free = permits.available_permits().min(self.options.batch_size);
            if free == 0 {
                tokio::select! {
                    _ = permits.clone().acquire_owned() => {}
                    () = stopping.cancelled() => break,
                }
                continue;
            }
            let claimed = match claim(&db, free, self.options.lease).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "delivery: claiming messages failed; retrying");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.options.poll_interval) => {}
                    () = stopping.cancelled() => break,
                }
                continue;
            }
            for row in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let delivery = self.clone();
                let outcomes = outcomes.clone();
                tokio::spawn(async move {
                    let outcome = delivery.deliver(row).await;
                    let _ = outcomes.send(outcome).await;
                    drop(permit);
                });
            }
        }
        // Wait for messages in flight, then for their outcomes to be written.
        let _ = permits
            .acquire_many(u32::try_from(self.options.concurrency.max(1)).unwrap_or(u32::MAX))
            .await;
        drop(outcomes);
        let _ = writer.await;
    }

    /// One attempt at one claimed message.
    async fn deliver(&self, row: MessageRow) -> Outcome {
        let candidates = self.candidates(row.channel, &row.provider);
        let now = now_us();
        let Some(state) = candidates.first().cloned() else {
            // No provider serves the channel: a configuration problem, not the message's.
            return self.retry_later(
                row,
                "",
                StatusReason::ProviderError,
                "no provider for the channel",
                now,
            );
        };
        if let Some(until) = state.down_until() {
            // Every provider of the channel is resting: wait for the first to come back,
            // without spending an attempt.
            let wait = until.saturating_duration_since(Instant::now());
            let next = now + i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
            let update = Update {
                status: row.status,
                provider: row.provider.clone(),
                provider_message_id: String::new(),
                attempt_count: row.attempt_count,
                next_attempt_us: next,
                changes: Vec::new(),
            };
            return Outcome {
                row,
                update,
                event: None,
            };
        }
        let content = match row.content() {
            Ok(Some(content)) => content,
            _ => {
                return self.fail(
                    row,
                    &state.provider.name,
                    StatusReason::ProviderRejected,
                    "the message has no content",
                    0,
                );
            }
        };
        if let Some(limiter) = &state.limiter {
            limiter.until_ready().await;
        }
        let attempt = row.attempt_count + 1;
        let name = row.name();
        let outgoing = Outgoing {
            message: &name,
            tenant: &row.tenant,
            channel: Channel::try_from(row.channel).unwrap_or(Channel::Unspecified),
            address: &row.address,
            content: &content,
            idempotency_key: &row.request_id,
            attempt: u32::try_from(attempt).unwrap_or(0),
        };
        let result = match tokio::time::timeout(
            self.options.send_timeout,
            state.provider.adapter.send(&outgoing),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(SendError::Transient(
                "the provider did not answer in time".into(),
            )),
        };
        let provider = state.provider.name.clone();
        match result {
            Ok(accepted) => {
                state.succeeded();
                let now = now_us();
                let mut update = Update {
                    status: MessageStatus::Sent as i32,
                    provider: provider.clone(),
                    provider_message_id: accepted.provider_message_id,
                    attempt_count: attempt,
                    next_attempt_us: now,
                    changes: vec![Change {
                        status: MessageStatus::Sent as i32,
                        reason: StatusReason::Unspecified as i32,
                        time_us: now,
                        provider,
                        attempt,
                        detail: String::new(),
                    }],
                };
                update.provider_message_id.truncate(256);
                let mut event_row = row.clone();
                event_row.provider = update.provider.clone();
                let event = status_event(&event_row, "message.sent", StatusReason::Unspecified);
                Outcome {
                    row,
                    update,
                    event: Some(event),
                }
            }
            Err(SendError::Permanent(detail)) => self.fail(
                row,
                &provider,
                StatusReason::ProviderRejected,
                &detail,
                attempt,
            ),
            Err(SendError::Transient(detail)) => {
                state.failed(&self.options);
                if u32::try_from(attempt).unwrap_or(u32::MAX) >= self.options.max_attempts {
                    return self.fail(
                        row,
                        &provider,
                        StatusReason::AttemptsExhausted,
                        &detail,
                        attempt,
                    );
                }
                let mut row = row;
                row.attempt_count = attempt;
                // Another provider takes the next attempt at once; else wait and retry.
                let failover =
                    self.candidates(row.channel, &provider)
                        .first()
                        .is_some_and(|next| {
                            next.provider.name != provider && next.down_until().is_none()
                        });
                if failover {
                    let now = now_us();
                    let update = Update {
                        status: MessageStatus::Queued as i32,
                        provider: provider.clone(),
                        provider_message_id: String::new(),
                        attempt_count: attempt,
                        next_attempt_us: now,
                        changes: vec![Change {
                            status: MessageStatus::Queued as i32,
                            reason: StatusReason::Failover as i32,
                            time_us: now,
                            provider,
                            attempt,
                            detail: truncate(&detail),
                        }],
                    };
                    return Outcome {
                        row,
                        update,
                        event: None,
                    };
                }
                self.retry_later(
                    row,
                    &provider,
                    StatusReason::ProviderError,
                    &detail,
                    now_us(),
                )
            }
        }
    }

    /// DEFERRED until the next attempt's backoff has passed.
    fn retry_later(
        &self,
        row: MessageRow,
        provider: &str,
        reason: StatusReason,
        detail: &str,
        now: i64,
    ) -> Outcome {
        let delay = backoff(
            self.options.backoff_base,
            self.options.backoff_max,
            row.attempt_count.max(1),
        );
        let next = now + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
        let update = Update {
            status: MessageStatus::Deferred as i32,
            provider: provider.to_owned(),
            provider_message_id: String::new(),
            attempt_count: row.attempt_count,
            next_attempt_us: next,
            changes: vec![Change {
                status: MessageStatus::Deferred as i32,
                reason: reason as i32,
                time_us: now,
                provider: provider.to_owned(),
                attempt: row.attempt_count,
                detail: truncate(detail),
            }],
        };
        Outcome {
            row,
            update,
            event: None,
        }
    }

    /// FAILED for good: a dead letter.
    fn fail(
        &self,
        row: MessageRow,
        provider: &str,
        reason: StatusReason,
        detail: &str,
        attempt: i32,
    ) -> Outcome {
        let now = now_us();
        let update = Update {
            status: MessageStatus::Failed as i32,
            provider: provider.to_owned(),
            provider_message_id: String::new(),
            attempt_count: attempt,
            next_attempt_us: now,
            changes: vec![Change {
                status: MessageStatus::Failed as i32,
                reason: reason as i32,
                time_us: now,
                provider: provider.to_owned(),
                attempt,
                detail: truncate(detail),
            }],
        };
        let mut event_row = row.clone();
        event_row.provider = provider.to_owned();
        let event = status_event(&event_row, "message.failed", reason);
        Outcome {
            row,
            update,
            event: Some(event),
        }
    }
}

fn truncate(detail: &str) -> String {
    detail.chars().take(500).collect()
}

/// The result of one attempt, waiting to be written.
#[derive(Debug)]
struct Outcome {
    row: MessageRow,
    update: Update,
    event: Option<Event>,
}

/// Claims up to `limit` due messages, highest priority first, for `lease`.
async fn claim(
    db: &DatabaseConnection,
    limit: usize,
    lease: Duration,
) -> Result<Vec<MessageRow>, Error> {
    let now = now_us();
    let lease_until = now + i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 2);
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(&format!("UPDATE {MESSAGES} SET lease_until_us = "))
        .bind(lease_until)
        .push(&format!(
            " WHERE (tenant, id) IN (SELECT tenant, id FROM {MESSAGES} \
             WHERE status IN (1, 2) AND next_attempt_us <= "
        ))
        .bind(now)
        .push(" AND lease_until_us <= ")
        .bind(now)
        .push(" ORDER BY priority DESC, next_attempt_us LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(1));
    if backend == DbBackend::Postgres {
        // Replicas claim disjoint messages without waiting for each other.
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    sql.push(&format!(") RETURNING {MESSAGE_COLUMNS}"));
    let mut rows = db
        .query_all_raw(sql.statement())
        .await?
        .iter()
        .map(MessageRow::read)
        .collect::<Result<Vec<_>, _>>()?;
    // RETURNING keeps no order: deliver in the queue's.
    rows.sort_by_key(|row| (std::cmp::Reverse(row.priority), row.next_attempt_us));
    Ok(rows)
}

/// Writes outcomes as they come, many per transaction.
async fn write_outcomes(db: DatabaseConnection, mut receiver: mpsc::Receiver<Outcome>) {
    let mut batch = Vec::with_capacity(256);
    while receiver.recv_many(&mut batch, 256).await > 0 {
        if let Err(error) = write_batch(&db, &batch).await {
            // The leases run out and the messages are attempted again: nothing is lost.
            tracing::error!(%error, messages = batch.len(), "delivery: recording outcomes failed");
        }
        batch.clear();
    }
}

async fn write_batch(db: &DatabaseConnection, batch: &[Outcome]) -> Result<(), Error> {
    let transaction = throughline_runtime::db::write_transaction(db).await?;
    let updates: Vec<(&MessageRow, Update)> = batch
        .iter()
        .map(|outcome| (&outcome.row, outcome.update.clone()))
        .collect();
    let applied = apply(&transaction, &updates).await?;
    // A message whose lease ran out belongs to another worker now: its outcome is not ours.
    let events: Vec<Event> = batch
        .iter()
        .zip(applied)
        .filter_map(|(outcome, applied)| outcome.event.clone().filter(|_| applied))
        .collect();
    Outbox::new(crate::NAME)
        .append_all(&transaction, &events)
        .await?;
    transaction.commit().await?;
    Ok(())
}
