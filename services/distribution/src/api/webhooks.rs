//! Webhook subscription RPCs and the delivery log.

use futures::FutureExt;
use throughline_proto::distribution::v1::*;
use throughline_runtime::idempotency::Key;
use throughline_runtime::time::PageToken;
use throughline_runtime::{Error, FieldViolation};

use super::{Api, UpdateMask, is_resource_id, page_size, resource_id};
use crate::webhooks::is_event_type;
use crate::webhooks::store::{self, SubscriptionRow, subscription_name};
use throughline_runtime::outbound::guard;

const COLLECTION: &str = "webhookSubscriptions";

/// The fields UpdateWebhookSubscription can change.
const UPDATABLE: [&str; 5] = [
    "display_name",
    "url",
    "event_types",
    "signing_secret",
    "enabled",
];

/// At least this many bytes of key for HMAC-SHA256 (its block of output).
const MIN_SECRET_BYTES: usize = 32;
const MAX_SECRET_BYTES: usize = 512;
const MAX_EVENT_TYPES: usize = 100;
const MAX_DISPLAY_NAME: usize = 200;

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn not_found(id: &str) -> Error {
    Error::NotFound(subscription_name(id))
}

fn stale(id: &str) -> Error {
    Error::Aborted(format!(
        "{} has changed since the etag was read; read it again",
        subscription_name(id)
    ))
}

impl Api {
    /// Checks the writable fields of `row`, a new URL (`check_url`) through the SSRF guard;
    /// violations are named under `webhook_subscription.`. An unchanged URL is not resolved
    /// again, so that a subscription whose host went away can still be disabled or renamed
    /// (deliveries check it anyway).
    async fn check_subscription(
        &self,
        row: &mut SubscriptionRow,
        check_url: bool,
    ) -> Vec<FieldViolation> {
        let field = |name: &str| format!("webhook_subscription.{name}");
        let mut violations = Vec::new();
        if row.display_name.chars().count() > MAX_DISPLAY_NAME {
            violations.push(FieldViolation::new(
                field("display_name"),
                format!("must be at most {MAX_DISPLAY_NAME} characters"),
            ));
        }
        let policy = self.service.options.webhooks.policy();
        let url = if check_url {
            guard::check(&row.url, policy).await.map(|_| ())
        } else {
            guard::parse(&row.url, policy).map(|_| ())
        };
        if let Err(reason) = url {
            violations.push(FieldViolation::new(field("url"), reason));
        }
        if row.event_types.is_empty() {
            violations.push(FieldViolation::new(
                field("event_types"),
                "at least one event type is required",
            ));
        } else if row.event_types.len() > MAX_EVENT_TYPES {
            violations.push(FieldViolation::new(
                field("event_types"),
                format!("at most {MAX_EVENT_TYPES} event types"),
            ));
        }
        for (index, event_type) in row.event_types.iter().enumerate() {
            if !is_event_type(event_type) {
                violations.push(FieldViolation::new(
                    format!("webhook_subscription.event_types[{index}]"),
                    "must be an event type such as message.sent: lower-case words with dots",
                ));
            }
        }
        // Duplicates say nothing more.
        let mut seen = std::collections::HashSet::new();
        row.event_types.retain(|t| seen.insert(t.clone()));
        let secret = row.signing_secret.len();
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret) {
            violations.push(FieldViolation::new(
                field("signing_secret"),
                format!("must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"),
            ));
        }
        violations
    }

    pub(super) async fn create_webhook_subscription(
        &self,
        tenant: &str,
        request: CreateWebhookSubscriptionRequest,
    ) -> Result<CreateWebhookSubscriptionResponse, Error> {
        let Some(input) = request.webhook_subscription.clone() else {
            return Err(Error::invalid("webhook_subscription", "is required"));
        };
        let mut violations = Vec::new();
        if !request.webhook_subscription_id.is_empty()
            && !is_resource_id(&request.webhook_subscription_id)
        {
            violations.push(FieldViolation::new(
                "webhook_subscription_id",
                "must be 1 to 63 lower-case letters, digits and hyphens",
            ));
        }
        let id = if request.webhook_subscription_id.is_empty() {
            uuid::Uuid::now_v7().simple().to_string()
        } else {
            request.webhook_subscription_id.clone()
        };
        let now = now_us();
        let mut row = SubscriptionRow {
            tenant: tenant.to_owned(),
            id,
            display_name: input.display_name,
            url: input.url,
            event_types: input.event_types,
            signing_secret: input.signing_secret,
            enabled: input.enabled,
            disabled_reason: String::new(),
            consecutive_failures: 0,
            revision: 1,
            create_us: now,
            update_us: now,
        };
        violations.extend(self.check_subscription(&mut row, true).await);
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let db = &self.service.db;
        if request.request_id.is_empty() {
            store::insert(db, &row).await?;
            return Ok(CreateWebhookSubscriptionResponse {
                webhook_subscription: Some(row.to_proto()),
            });
        }
        let key = Key {
            tenant,
            method: "CreateWebhookSubscription",
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(db, key, &request, move |transaction| {
                async move {
                    store::insert(transaction, &row).await?;
                    Ok(CreateWebhookSubscriptionResponse {
                        webhook_subscription: Some(row.to_proto()),
                    })
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn get_webhook_subscription(
        &self,
        tenant: &str,
        request: GetWebhookSubscriptionRequest,
    ) -> Result<GetWebhookSubscriptionResponse, Error> {
        let id = resource_id(&request.name, COLLECTION, "name")?;
        match store::find(&self.service.db, tenant, id).await? {
            Some(row) => Ok(GetWebhookSubscriptionResponse {
                webhook_subscription: Some(row.to_proto()),
            }),
            None => Err(not_found(id)),
        }
    }

    pub(super) async fn list_webhook_subscriptions(
        &self,
        tenant: &str,
        request: ListWebhookSubscriptionsRequest,
    ) -> Result<ListWebhookSubscriptionsResponse, Error> {
        let size = page_size(request.page_size)?;
        let after = PageToken::decode(&request.page_token, "webhookSubscriptions")
            .map_err(|reason| Error::invalid("page_token", reason))?;
        let mut rows = store::list(
            &self.service.db,
            tenant,
            after.as_ref().map(|token| token.id.as_str()),
            size + 1,
        )
        .await?;
        let mut next_page_token = String::new();
        if rows.len() > size {
            rows.truncate(size);
            if let Some(last) = rows.last() {
                next_page_token = PageToken {
                    sort_us: 0,
                    id: last.id.clone(),
                }
                .encode("webhookSubscriptions");
            }
        }
        Ok(ListWebhookSubscriptionsResponse {
            webhook_subscriptions: rows.iter().map(SubscriptionRow::to_proto).collect(),
            next_page_token,
        })
    }

    pub(super) async fn update_webhook_subscription(
        &self,
        tenant: &str,
        request: UpdateWebhookSubscriptionRequest,
    ) -> Result<UpdateWebhookSubscriptionResponse, Error> {
        let Some(changes) = request.webhook_subscription else {
            return Err(Error::invalid("webhook_subscription", "is required"));
        };
        let id = resource_id(&changes.name, COLLECTION, "webhook_subscription.name")?;
        let mask = UpdateMask::parse(request.update_mask, &UPDATABLE)?;
        let masked = |field: &str| mask.has(field);

        let db = &self.service.db;
        let Some(current) = store::find(db, tenant, id).await? else {
            return Err(not_found(id));
        };
        if !changes.etag.is_empty() && changes.etag != current.revision.to_string() {
            return Err(stale(id));
        }
        let mut updated = current.clone();
        if masked("display_name") {
            updated.display_name = changes.display_name;
        }
        if masked("url") {
            updated.url = changes.url;
        }
        if masked("event_types") {
            updated.event_types = changes.event_types;
        }
        if masked("signing_secret") {
            updated.signing_secret = changes.signing_secret;
        }
        if masked("enabled") {
            updated.enabled = changes.enabled;
            if changes.enabled && !current.enabled {
                // Re-enabled: the failures that disabled it are forgiven.
                updated.disabled_reason.clear();
                updated.consecutive_failures = 0;
            }
        }
        let url_changed = updated.url != current.url;
        let violations = self.check_subscription(&mut updated, url_changed).await;
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        updated.revision = current.revision + 1;
        updated.update_us = now_us();
        if store::update(db, &updated, current.revision).await? {
            return Ok(UpdateWebhookSubscriptionResponse {
                webhook_subscription: Some(updated.to_proto()),
            });
        }
        Err(stale(id))
    }

    pub(super) async fn delete_webhook_subscription(
        &self,
        tenant: &str,
        request: DeleteWebhookSubscriptionRequest,
    ) -> Result<DeleteWebhookSubscriptionResponse, Error> {
        let id = resource_id(&request.name, COLLECTION, "name")?;
        let revision = if request.etag.is_empty() {
            None
        } else {
            Some(request.etag.parse::<i64>().map_err(|_| stale(id))?)
        };
        let db = &self.service.db;
        let transaction = throughline_runtime::db::write_transaction(db).await?;
        let deleted = store::delete(&transaction, tenant, id, revision).await?;
        transaction.commit().await?;
        if deleted {
            return Ok(DeleteWebhookSubscriptionResponse {});
        }
        match (revision, store::find(db, tenant, id).await?) {
            (Some(_), Some(_)) => Err(stale(id)),
            _ => Err(not_found(id)),
        }
    }

    pub(super) async fn list_webhook_deliveries(
        &self,
        tenant: &str,
        request: ListWebhookDeliveriesRequest,
    ) -> Result<ListWebhookDeliveriesResponse, Error> {
        let mut violations = Vec::new();
        let id = match resource_id(
            &request.webhook_subscription,
            COLLECTION,
            "webhook_subscription",
        ) {
            Ok(id) => id,
            Err(Error::InvalidArgument(found)) => {
                violations.extend(found);
                ""
            }
            Err(other) => return Err(other),
        };
        let mut states = Vec::new();
        for (index, state) in request.states.iter().enumerate() {
            match WebhookDeliveryState::try_from(*state) {
                Ok(state) if state != WebhookDeliveryState::Unspecified => {
                    states.push(state as i32);
                }
                _ => violations.push(FieldViolation::new(
                    format!("states[{index}]"),
                    "unknown state",
                )),
            }
        }
        states.sort_unstable();
        states.dedup();
        let size = match page_size(request.page_size) {
            Ok(size) => size,
            Err(Error::InvalidArgument(found)) => {
                violations.extend(found);
                0
            }
            Err(other) => return Err(other),
        };
        let filters = format!("{}|{states:?}", request.webhook_subscription);
        let after = match PageToken::decode(&request.page_token, &filters) {
            Ok(after) => after,
            Err(reason) => {
                violations.push(FieldViolation::new("page_token", reason));
                None
            }
        };
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let db = &self.service.db;
        if store::find(db, tenant, id).await?.is_none() {
            return Err(not_found(id));
        }
        let (rows, next) =
            store::list_deliveries(db, tenant, id, &states, after.as_ref(), size).await?;
        Ok(ListWebhookDeliveriesResponse {
            deliveries: rows.iter().map(store::DeliveryRow::to_proto).collect(),
            next_page_token: next.map(|token| token.encode(&filters)).unwrap_or_default(),
        })
    }
}
