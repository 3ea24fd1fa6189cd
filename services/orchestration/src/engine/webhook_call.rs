//! One attempt of a webhook node: renders the request from the instance, checks the URL again
//! (a name may point elsewhere than when the journey was published), authenticates it with
//! the node's credential and sends it with the step's idempotency key, so an endpoint that
//! honours `Idempotency-Key` acts once however often the engine retries.
//!
//! Answers map to what the engine does next: 2xx is done (the JSON body kept when the node
//! asks), 408, 425, 429 and 5xx, timeouts and unreachable endpoints are retried with backoff,
//! any other answer fails the step at once (retrying a 400 or a 404 cannot help).

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use throughline_proto::orchestration::v1::WebhookNode;
use throughline_runtime::outbound::{guard, signature};

use super::effects::Effect;
use super::webhook::{Credential, environment};
use crate::Service;
use crate::expr::Scope;
use crate::store::instances::Instance;

/// A node's timeout when it sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body kept in `vars`; a larger one is not kept.
const MAX_RESULT_BYTES: usize = 256 * 1024;

pub(crate) async fn call(
    service: &Service,
    instance: &Instance,
    node: &WebhookNode,
    scope: &Scope,
    key: &str,
) -> Effect {
    let webhooks = &service.webhooks;
    let Some(client) = &webhooks.client else {
        return Effect::Failed("webhooks_unavailable".into());
    };
    let url = match guard::check(&node.url, webhooks.options.policy()).await {
        Ok(url) => url,
        // The host may be down in DNS for a while; an address now internal may change back.
        Err(reason) if reason.contains("resolved") => return Effect::Retry("unresolved".into()),
        Err(_) => return Effect::Failed("url_refused".into()),
    };
    let method = match node.method.as_str() {
        "" => reqwest::Method::POST,
        other => match reqwest::Method::from_bytes(other.as_bytes()) {
            Ok(method) => method,
            Err(_) => return Effect::Failed("bad_method".into()),
        },
    };
    let context = json!({
        "profile": scope.profile,
        "trigger": scope.trigger,
        "vars": scope.vars,
    });
    let Ok(mut headers) = render_headers(node, &context) else {
        return Effect::Failed("template".into());
    };
    let body = if !node.body.is_empty() {
        match render(&node.body, &context) {
            Ok(body) => body.into_bytes(),
            Err(()) => return Effect::Failed("template".into()),
        }
    } else if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
        Vec::new()
    } else {
        cloud_event(instance, key)
    };
    if !body.is_empty() && !headers.contains_key(CONTENT_TYPE) {
        let kind = if node.body.is_empty() {
            "application/cloudevents+json"
        } else {
            "application/json"
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    if let Ok(value) = HeaderValue::from_str(key) {
        headers.insert("idempotency-key", value);
    }
    if !node.credential.is_empty() {
        let Some(credential) = webhooks.options.credentials.get(&node.credential) else {
            // Removed from the configuration since the journey was published.
            return Effect::Failed("credential_missing".into());
        };
        authenticate(&mut headers, credential, &body);
    }
    let response = client
        .request(method, url)
        .headers(headers)
        .timeout(timeout(service, node))
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => answer(response, !node.result_variable.is_empty()).await,
        // Without the URL or the error's text: the URL may carry a customer's token.
        Err(error) if error.is_timeout() => Effect::Retry("timeout".into()),
        Err(error) if error.is_connect() => Effect::Retry("unreachable".into()),
        Err(_) => Effect::Retry("request_failed".into()),
    }
}

/// The node's timeout, at most half the engine's lease: a call still running when the lease
/// ran out would let another replica make it a second time.
fn timeout(service: &Service, node: &WebhookNode) -> Duration {
    let wanted = node
        .timeout
        .as_ref()
        .and_then(|d| Duration::try_from(*d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_TIMEOUT);
    wanted.min(service.options.engine.lease / 2)
}

fn render(source: &str, context: &Value) -> Result<String, ()> {
    environment()
        .render_str(source, minijinja::value::Serde(context))
        .map_err(|error| tracing::debug!(kind = ?error.kind(), "a webhook template failed"))
}

fn render_headers(node: &WebhookNode, context: &Value) -> Result<HeaderMap, ()> {
    let mut headers = HeaderMap::new();
    for (name, template) in &node.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ())?;
        let value = HeaderValue::from_str(&render(template, context)?).map_err(|_| ())?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// Applied after the node's own headers, so a definition cannot override them.
fn authenticate(headers: &mut HeaderMap, credential: &Credential, body: &[u8]) {
    let mut set = |name: &str, value: String| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    };
    match credential {
        Credential::Hmac { secret } => {
            let timestamp = chrono::Utc::now().timestamp();
            set("webhook-timestamp", timestamp.to_string());
            set(
                "webhook-signature",
                signature::sign(secret.expose().as_bytes(), timestamp, body),
            );
        }
        Credential::Bearer { token } => set("authorization", format!("Bearer {}", token.expose())),
        Credential::Header { name, value } => set(name, value.expose().to_owned()),
    }
}

/// The default body: a CloudEvents JSON document describing the instance. Its id is the
/// step's idempotency key, the same on every retry.
fn cloud_event(instance: &Instance, key: &str) -> Vec<u8> {
    let document = json!({
        "specversion": "1.0",
        "id": key,
        "source": "/throughline/orchestration",
        "type": "journey.webhook",
        "subject": instance.name(),
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "datacontenttype": "application/json",
        "throughlinetenant": instance.tenant,
        "data": {
            "instance": instance.name(),
            "journey": format!("journeys/{}", instance.journey),
            "version": instance.version,
            "node": instance.node,
            "profile": instance.profile,
            "customer": instance.customer_ref,
            "variables": instance.variables,
            "trigger": instance.trigger,
        },
    });
    serde_json::to_vec(&document).unwrap_or_default()
}

async fn answer(response: reqwest::Response, keep: bool) -> Effect {
    let status = response.status();
    let code = status.as_u16();
    if status.is_success() {
        let result = if keep { result(response).await } else { None };
        return Effect::Done {
            outcome: "called".into(),
            effect: String::new(),
            contacted: false,
            result,
        };
    }
    if matches!(code, 408 | 425 | 429) || status.is_server_error() {
        Effect::Retry(format!("status_{code}"))
    } else {
        Effect::Failed(format!("status_{code}"))
    }
}

/// The response body as JSON, or as a string when it is not JSON; `None` when too large.
async fn result(mut response: reqwest::Response) -> Option<Value> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() + chunk.len() > MAX_RESULT_BYTES {
            tracing::warn!("a webhook answered more than 256 KiB; its result is not kept");
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
    )
}
