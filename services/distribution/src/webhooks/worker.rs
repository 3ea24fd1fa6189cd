//! The webhook worker: claims due deliveries with leases (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so replicas share the queue), POSTs each event as signed CloudEvents JSON, and
//! records the outcome: SUCCEEDED on 2xx, else RETRYING after an exponential backoff with
//! jitter, FAILED after `max_attempts`. A subscription whose deliveries fail `disable_after`
//! times in a row is disabled.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use sea_orm::DatabaseConnection;
use throughline_proto::distribution::v1::WebhookDeliveryState;
use throughline_proto::event::v1::Event;
use throughline_runtime::Error;
use throughline_runtime::outbound::{self, guard, signature};
use throughline_runtime::time::now_us;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::WebhookOptions;
use super::cloudevent;
use super::store::{self, Attempted, DeliveryRow};
use throughline_runtime::backoff::backoff;

/// The worker's HTTP client and options.
#[derive(Debug)]
pub(crate) struct Worker {
    options: WebhookOptions,
    client: reqwest::Client,
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX / 2)
}

impl Worker {
    pub(crate) fn new(options: WebhookOptions) -> Result<Self, Error> {
        let client = outbound::client("Throughline-Webhooks/1", options.timeout, options.policy())?;
        Ok(Self { options, client })
    }

    /// Claims and delivers until `stopping`; attempts in flight finish first.
    pub(crate) async fn run(self: Arc<Self>, db: DatabaseConnection, stopping: CancellationToken) {
        let concurrency = self.options.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        while !stopping.is_cancelled() {
            let free = permits
                .available_permits()
                .min(self.options.batch_size.max(1));
            if free == 0 {
                tokio::select! {
                    _ = permits.clone().acquire_owned() => {}
                    () = stopping.cancelled() => break,
                }
                continue;
            }
            let now = now_us();
            let claimed = match store::claim(&db, free, now, now + micros(self.options.lease)).await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "webhooks: claiming deliveries failed; retrying");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = tokio::time::sleep(self.options.poll_interval) => {}
                    () = stopping.cancelled() => break,
                }
                continue;
            }
            for row in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let worker = self.clone();
                let db = db.clone();
                tokio::spawn(async move {
                    if let Err(error) = worker.deliver(&db, row).await {
                        // The lease runs out and the delivery is attempted again.
                        tracing::error!(%error, "webhooks: recording a delivery failed");
                    }
                    drop(permit);
                });
            }
        }
        let _ = permits
            .acquire_many(u32::try_from(concurrency).unwrap_or(u32::MAX))
            .await;
    }

    /// One attempt at one claimed delivery, and its outcome recorded.
    async fn deliver(&self, db: &DatabaseConnection, row: DeliveryRow) -> Result<(), Error> {
        let Some(subscription) = store::find(db, &row.tenant, &row.subscription).await? else {
            // Deleted meanwhile: its deliveries went with it.
            return Ok(());
        };
        let (status_code, error) = match Event::decode(row.event.as_slice()) {
            Ok(event) => self.post(&subscription, &row, &event).await,
            Err(_) => (0, "the stored event does not decode".to_owned()),
        };
        let now = now_us();
        let succeeded = (200..300).contains(&status_code);
        let exhausted =
            u32::try_from(row.attempt_count).unwrap_or(u32::MAX) >= self.options.max_attempts;
        let attempted = if succeeded {
            Attempted {
                state: WebhookDeliveryState::Succeeded as i32,
                status_code,
                error: String::new(),
                next_attempt_us: now,
                complete_us: Some(now),
            }
        } else if exhausted {
            Attempted {
                state: WebhookDeliveryState::Failed as i32,
                status_code,
                error,
                next_attempt_us: now,
                complete_us: Some(now),
            }
        } else {
            let delay = backoff(
                self.options.backoff_base,
                self.options.backoff_max,
                row.attempt_count.max(1),
            );
            Attempted {
                state: WebhookDeliveryState::Retrying as i32,
                status_code,
                error,
                next_attempt_us: now + micros(delay),
                complete_us: None,
            }
        };
        let transaction = throughline_runtime::db::write_transaction(db).await?;
        // A delivery whose lease ran out belongs to another attempt now: not ours to record.
        if store::record(&transaction, &row, &attempted).await?
            && (succeeded || attempted.state == WebhookDeliveryState::Failed as i32)
        {
            store::count_outcome(
                &transaction,
                &row.tenant,
                &row.subscription,
                succeeded,
                i32::try_from(self.options.disable_after).unwrap_or(i32::MAX),
                now,
            )
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// POSTs the event; the HTTP status (0 when none came back) and an error for people.
    async fn post(
        &self,
        subscription: &store::SubscriptionRow,
        row: &DeliveryRow,
        event: &Event,
    ) -> (i32, String) {
        // Checked again now: the name may point elsewhere than when the URL was saved.
        let url = match guard::check(&subscription.url, self.options.policy()).await {
            Ok(url) => url,
            Err(reason) => return (0, format!("the URL was refused: it {reason}")),
        };
        let body = cloudevent::body(event);
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature::sign(subscription.signing_secret.as_bytes(), timestamp, &body);
        let response = self
            .client
            .post(url)
            .header("Content-Type", "application/cloudevents+json")
            .header("Webhook-Id", row.id.as_str())
            .header("Webhook-Timestamp", timestamp.to_string())
            .header("Webhook-Signature", signature)
            .body(body)
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status();
                let error = if status.is_success() {
                    String::new()
                } else {
                    format!("the endpoint answered {status}")
                };
                (i32::from(status.as_u16()), error)
            }
            // Without the URL: it may carry a customer's token in its query.
            Err(error) if error.is_timeout() => (0, "the endpoint did not answer in time".into()),
            Err(error) if error.is_connect() => (0, "the endpoint could not be reached".into()),
            Err(_) => (0, "the request failed".into()),
        }
    }
}
