//! The webhook node's configuration and client: one HTTP call to a CRM or any endpoint,
//! authenticated with a credential from the server's configuration (secrets never live in
//! definitions), guarded against internal addresses, with headers and body rendered from the
//! instance. The engine retries with backoff; [`super::webhook_call`] makes each attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use throughline_proto::orchestration::v1::JourneyDefinition;
use throughline_proto::orchestration::v1::node::Kind;
use throughline_runtime::FieldViolation;
use throughline_runtime::config::{Secret, Validate};
use throughline_runtime::outbound::{self, guard};

/// The longest a node's call may take (its `timeout` is checked against it when saved).
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// How much work rendering one template may do: enough for any real body, not for a loop
/// that never ends.
const TEMPLATE_FUEL: u64 = 100_000;

/// `[orchestration.webhooks]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookOptions {
    /// Allows `http` URLs (tests, development); production endpoints must use https.
    pub allow_http: bool,
    /// Allows URLs that reach loopback, private, link-local and other internal addresses.
    pub allow_private_addresses: bool,
    /// The credentials webhook nodes name in `credential`, by name.
    pub credentials: BTreeMap<String, Credential>,
}

/// How a webhook call proves where it comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Credential {
    /// Signs the body: `Webhook-Timestamp` and `Webhook-Signature: v1=<HMAC-SHA256>`, the
    /// scheme of Throughline's webhook subscriptions.
    Hmac { secret: Secret },
    /// `Authorization: Bearer <token>`.
    Bearer { token: Secret },
    /// A header of the endpoint's choosing, such as `X-Api-Key`.
    Header { name: String, value: Secret },
}

impl Validate for WebhookOptions {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, credential) in &self.credentials {
            let at = format!("{prefix}.credentials.{name}");
            let empty = match credential {
                Credential::Hmac { secret } => secret.is_empty(),
                Credential::Bearer { token } => token.is_empty(),
                Credential::Header { name, value } => {
                    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        problems.push(format!("{at}.name: must be an HTTP header name"));
                    }
                    value.is_empty()
                }
            };
            if empty {
                problems.push(format!("{at}: the secret must not be empty"));
            }
        }
        problems
    }
}

impl WebhookOptions {
    pub(crate) fn policy(&self) -> guard::Policy {
        guard::Policy {
            allow_http: self.allow_http,
            allow_private_addresses: self.allow_private_addresses,
        }
    }
}

/// What the engine calls endpoints with.
#[derive(Debug, Clone)]
pub(crate) struct Webhooks {
    pub options: WebhookOptions,
    /// `None` only if TLS could not be set up; every call then fails, logged once here.
    pub client: Option<reqwest::Client>,
}

impl Webhooks {
    pub(crate) fn new(options: WebhookOptions) -> Self {
        let client = outbound::client("Throughline-Journeys/1", MAX_TIMEOUT, options.policy())
            .map_err(|error| tracing::error!(%error, "journey webhooks cannot call out"))
            .ok();
        Self { options, client }
    }

    /// The problems of a definition's webhook nodes that depend on this server: URLs the
    /// guard refuses, credentials it does not have, templates that do not compile. The shape
    /// of each field is checked by `definition::validate`.
    pub(crate) async fn check(
        &self,
        definition: &JourneyDefinition,
        field: &str,
    ) -> Vec<FieldViolation> {
        let mut violations = Vec::new();
        for (index, node) in definition.nodes.iter().enumerate() {
            let Some(Kind::Webhook(webhook)) = &node.kind else {
                continue;
            };
            let path = format!("{field}.nodes[{index}].webhook");
            let well_formed = url::Url::parse(&webhook.url)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https"));
            if well_formed
                && let Err(reason) = guard::check(&webhook.url, self.options.policy()).await
            {
                violations.push(FieldViolation::new(format!("{path}.url"), reason));
            }
            if !webhook.credential.is_empty()
                && !self.options.credentials.contains_key(&webhook.credential)
            {
                violations.push(FieldViolation::new(
                    format!("{path}.credential"),
                    format!(
                        "no credential {} in the server's [orchestration.webhooks.credentials]",
                        webhook.credential
                    ),
                ));
            }
            let templates = std::iter::once(("body".to_owned(), &webhook.body)).chain(
                webhook
                    .headers
                    .iter()
                    .map(|(name, value)| (format!("headers.{name}"), value)),
            );
            for (at, source) in templates {
                if let Err(error) = environment().template_from_str(source) {
                    violations.push(FieldViolation::new(
                        format!("{path}.{at}"),
                        format!("not a valid template: {error}"),
                    ));
                }
            }
        }
        violations
    }
}

/// The template environment of headers and bodies: plain text (a body is JSON or whatever
/// the endpoint reads, so nothing is escaped), strict about missing variables, with fuel.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn credentials_come_from_configuration() {
        let options: WebhookOptions = serde_json::from_value(serde_json::json!({
            "credentials": {
                "crm": {"kind": "hmac", "secret": "s3cret"},
                "erp": {"kind": "bearer", "token": ""},
                "ads": {"kind": "header", "name": "Bad Name", "value": "k"},
            }
        }))
        .unwrap();
        assert_eq!(
            options.validate("orchestration.webhooks"),
            [
                "orchestration.webhooks.credentials.ads.name: must be an HTTP header name",
                "orchestration.webhooks.credentials.erp: the secret must not be empty",
            ]
        );
        // Secrets never print.
        assert!(!format!("{options:?}").contains("s3cret"));
        let unknown = serde_json::from_value::<WebhookOptions>(serde_json::json!({
            "credentials": {"crm": {"kind": "basic", "secret": "x"}}
        }));
        assert!(unknown.is_err());
    }

    #[tokio::test]
    async fn by_default_only_https_to_public_addresses_is_allowed() {
        use throughline_proto::orchestration::v1::{Node, WebhookNode};
        let definition = |url: &str| JourneyDefinition {
            nodes: vec![Node {
                id: "crm".into(),
                kind: Some(Kind::Webhook(WebhookNode {
                    url: url.into(),
                    ..WebhookNode::default()
                })),
                ..Node::default()
            }],
            ..JourneyDefinition::default()
        };
        let webhooks = Webhooks::new(WebhookOptions::default());
        for refused in [
            "https://127.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hook",
            "http://93.184.216.34/hook",
        ] {
            let found = webhooks.check(&definition(refused), "d").await;
            assert_eq!(found.len(), 1, "{refused}");
            assert_eq!(found[0].field, "d.nodes[0].webhook.url");
        }
        assert!(
            webhooks
                .check(&definition("https://93.184.216.34/hook"), "d")
                .await
                .is_empty()
        );
    }
}
