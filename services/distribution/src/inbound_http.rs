//! The HTTP endpoint providers call back: `POST /inbound/{tenant}/{provider}` with a delivery
//! receipt or a customer's reply as JSON, signed by the provider with its shared secret.
//!
//! Signed as the webhooks this service sends are (`crate::signature`). A missing or wrong
//! signature, or a timestamp further than the tolerance from now (a replay), is 401 and nothing
//! is read. Answers: 200 with the result,
//! 400 with the field violations, 404 for a receipt of an unknown message, 503 when a service
//! it needs is unavailable (the provider retries; reports are acted on once).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use throughline_proto::distribution::v1::{
    Address, DeliveryReceipt, InboundReply, InboundResult, MessageStatus, address,
};
use throughline_runtime::Error;
use throughline_runtime::config::Secret;
use tokio_util::sync::CancellationToken;

use crate::Service;

/// `[distribution.inbound]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundOptions {
    /// Where the endpoint listens, e.g. `0.0.0.0:8090`; empty turns it off.
    pub listen_addr: String,
    /// Each provider's signing secret, by provider name.
    pub secrets: BTreeMap<String, Secret>,
    /// How far a report's timestamp may be from now.
    #[serde(with = "humantime_serde")]
    pub tolerance: Duration,
}

impl Default for InboundOptions {
    fn default() -> Self {
        Self {
            listen_addr: String::new(),
            secrets: BTreeMap::new(),
            tolerance: Duration::from_secs(300),
        }
    }
}

/// A report as providers post it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Report {
    Receipt(ReceiptJson),
    Reply(ReplyJson),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptJson {
    #[serde(default)]
    message: String,
    #[serde(default)]
    provider_message_id: String,
    /// `delivered`, `opened`, `clicked`, `bounced`, `complained` or `failed`.
    status: String,
    #[serde(default)]
    permanent: bool,
    /// RFC 3339.
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    detail: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyJson {
    /// `sms`, `whatsapp`, `email`, `chat`.
    channel: String,
    /// `{"phone": "+33…"}` or `{"email": "…"}`.
    sender: SenderJson,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    body: String,
    provider_message_id: String,
    #[serde(default)]
    in_reply_to: String,
    #[serde(default)]
    receive_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum SenderJson {
    Phone(String),
    Email(String),
}

fn time(text: Option<&str>, field: &str) -> Result<Option<prost_types::Timestamp>, Error> {
    let Some(text) = text else {
        return Ok(None);
    };
    let time = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| Error::invalid(field, "must be an RFC 3339 time"))?;
    Ok(Some(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }))
}

/// Whether the headers carry a valid, fresh signature of `body`.
fn verified(
    headers: &HeaderMap,
    secret: &str,
    body: &[u8],
    tolerance: Duration,
) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header("webhook-timestamp").ok_or("missing Webhook-Timestamp")?;
    let signature = header("webhook-signature").ok_or("missing Webhook-Signature")?;
    let seconds: i64 = timestamp.parse().map_err(|_| "bad Webhook-Timestamp")?;
    let age = (chrono::Utc::now().timestamp() - seconds).unsigned_abs();
    if age > tolerance.as_secs() {
        return Err("stale Webhook-Timestamp");
    }
    if throughline_runtime::outbound::signature::verify(
        secret.as_bytes(),
        timestamp,
        signature,
        body,
    ) {
        Ok(())
    } else {
        Err("bad signature")
    }
}

fn to_inbound(report: Report) -> Result<(Option<DeliveryReceipt>, Option<InboundReply>), Error> {
    match report {
        Report::Receipt(receipt) => {
            let status = MessageStatus::from_str_name(&format!(
                "MESSAGE_STATUS_{}",
                receipt.status.to_ascii_uppercase()
            ))
            .ok_or_else(|| Error::invalid("receipt.status", "unknown status"))?;
            Ok((
                Some(DeliveryReceipt {
                    message: receipt.message,
                    provider_message_id: receipt.provider_message_id,
                    status: status as i32,
                    permanent: receipt.permanent,
                    event_time: time(receipt.event_time.as_deref(), "receipt.event_time")?,
                    url: receipt.url,
                    detail: receipt.detail,
                }),
                None,
            ))
        }
        Report::Reply(reply) => {
            let channel = crate::provider::channel_named(&reply.channel)
                .ok_or_else(|| Error::invalid("reply.channel", "unknown channel"))?;
            let sender = match reply.sender {
                SenderJson::Phone(phone) => address::Address::Phone(phone),
                SenderJson::Email(email) => address::Address::Email(email),
            };
            Ok((
                None,
                Some(InboundReply {
                    channel: channel as i32,
                    sender: Some(Address {
                        address: Some(sender),
                    }),
                    recipient: reply.recipient,
                    body: reply.body,
                    provider_message_id: reply.provider_message_id,
                    in_reply_to: reply.in_reply_to,
                    receive_time: time(reply.receive_time.as_deref(), "reply.receive_time")?,
                }),
            ))
        }
    }
}

fn error_response(error: &Error) -> Response {
    let status = match error {
        Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) | Error::NotFoundBecause { .. } => StatusCode::NOT_FOUND,
        Error::Unavailable(_) | Error::Aborted(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = match error {
        Error::InvalidArgument(violations) => serde_json::json!({
            "error": "invalid report",
            "field_violations": violations
                .iter()
                .map(|v| serde_json::json!({"field": v.field, "description": v.description}))
                .collect::<Vec<_>>(),
        }),
        Error::Internal(_) => serde_json::json!({"error": "internal error"}),
        other => serde_json::json!({"error": other.to_string()}),
    };
    if matches!(error, Error::Internal(_)) {
        tracing::error!(error = %error, "inbound report failed");
    }
    json(status, &body)
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn result_json(result: &InboundResult) -> serde_json::Value {
    serde_json::json!({
        "message": result.message,
        "interaction": result.interaction,
        "profile": result.profile,
        "unsubscribed": result.unsubscribed,
        "duplicate": result.duplicate,
    })
}

async fn receive(
    State(service): State<Service>,
    Path((tenant, provider)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let options = &service.options().inbound;
    let Some(secret) = options.secrets.get(&provider).filter(|s| !s.is_empty()) else {
        // Unknown providers and unsigned ones look the same from outside.
        return (StatusCode::UNAUTHORIZED, "unknown provider or no secret").into_response();
    };
    if let Err(problem) = verified(&headers, secret.expose(), &body, options.tolerance) {
        return (StatusCode::UNAUTHORIZED, problem).into_response();
    }
    if !crate::api::is_tenant(&tenant) {
        return (StatusCode::NOT_FOUND, "unknown tenant").into_response();
    }
    let report: Report = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(error) => {
            return error_response(&Error::invalid("body", format!("not a report: {error}")));
        }
    };
    let outcome = match to_inbound(report) {
        Ok((Some(receipt), _)) => service.record_receipt(&tenant, &provider, &receipt).await,
        Ok((_, Some(reply))) => service.record_reply(&tenant, &provider, &reply).await,
        Ok((None, None)) => Err(Error::invalid("body", "a receipt or a reply")),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(result) => json(StatusCode::OK, &result_json(&result)),
        Err(error) => error_response(&error),
    }
}

/// Serves the endpoint on `address` until `stopping`.
pub(crate) async fn serve(service: Service, address: SocketAddr, stopping: CancellationToken) {
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, %address, "inbound endpoint: cannot listen");
            return;
        }
    };
    tracing::info!(%address, "inbound endpoint listening");
    let app = Router::new()
        .route("/inbound/{tenant}/{provider}", post(receive))
        .with_state(service);
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(stopping.cancelled_owned())
        .await
    {
        tracing::error!(%error, "inbound endpoint stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_body_and_time() {
        let now = chrono::Utc::now().timestamp();
        let body = br#"{"reply":{}}"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            "webhook-timestamp",
            now.to_string().parse().unwrap_or_else(|_| unreachable!()),
        );
        let signature = throughline_runtime::outbound::signature::sign(b"s3cret", now, body);
        headers.insert(
            "webhook-signature",
            signature.parse().unwrap_or_else(|_| unreachable!()),
        );
        let tolerance = Duration::from_secs(300);
        assert_eq!(verified(&headers, "s3cret", body, tolerance), Ok(()));
        assert!(verified(&headers, "other", body, tolerance).is_err());
        assert!(verified(&headers, "s3cret", b"{}", tolerance).is_err());
        let old = now - 3600;
        headers.insert(
            "webhook-timestamp",
            old.to_string().parse().unwrap_or_else(|_| unreachable!()),
        );
        headers.insert(
            "webhook-signature",
            throughline_runtime::outbound::signature::sign(b"s3cret", old, body)
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(
            verified(&headers, "s3cret", body, tolerance),
            Err("stale Webhook-Timestamp")
        );
    }
}
