//! The `http` provider: one request per message to an HTTP API (an SMS gateway, a push
//! service, a webhook), described entirely by configuration.
//!
//! The URL, the header values and the body are minijinja templates over the message; see
//! [`HttpOptions`] for the variables. Nothing is escaped implicitly: a JSON body embeds strings
//! with the `tojson` filter (`{"to": {{ address|tojson }}}`).

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use throughline_proto::common::v1::Channel;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_runtime::Error;
use throughline_runtime::config::Secret;

use super::{Accepted, Adapter, Outgoing, SendError};

/// `[distribution.providers.<name>.http]`
///
/// Template variables: `message` (`messages/{id}`), `tenant`, `channel` (`sms`, `push`, …),
/// `address`, `idempotency_key`, `attempt`, `secret`, and `content` with every rendered field
/// (`subject`, `html_body`, `text_body`, `body`, `title`, `deep_link`, `data`), empty when the
/// channel's content has no such field. An undefined variable fails the send (permanently).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpOptions {
    /// `POST` by default.
    pub method: Option<String>,
    /// A template. Required.
    pub url: String,
    /// Header name to a template of its value.
    pub headers: BTreeMap<String, String>,
    /// A template of the request body; no body when unset.
    pub body: Option<String>,
    /// A credential, available to the templates as `secret` (`Authorization = "Bearer {{
    /// secret }}"`) so that it can come from a Kubernetes Secret and is never printed.
    pub secret: Option<Secret>,
    /// A header that carries the send's idempotency key, e.g. `Idempotency-Key`.
    pub idempotency_header: Option<String>,
    /// A JSON pointer (RFC 6901) to the provider's message id in a JSON response, e.g. `/sid`.
    /// The id is empty when unset, when the response is not JSON or has nothing there (the
    /// message was accepted all the same).
    pub response_id_pointer: Option<String>,
    /// For the whole request, connecting included; 10 s by default.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a response body read, for the message id.
const MAX_RESPONSE: usize = 64 * 1024;

const URL: &str = "url";
const BODY: &str = "body";

#[derive(Debug)]
pub struct HttpAdapter {
    client: reqwest::Client,
    method: Method,
    templates: Environment<'static>,
    /// Header names with the name of their template.
    headers: Vec<(HeaderName, String)>,
    has_body: bool,
    secret: String,
    idempotency_header: Option<HeaderName>,
    response_id_pointer: Option<String>,
}

impl HttpAdapter {
    /// `key` is the options' configuration key, for errors.
    pub fn new(key: &str, options: &HttpOptions) -> Result<Self, Error> {
        let method = options.method.as_deref().unwrap_or("POST").trim();
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Error::invalid(format!("{key}.method"), "not an HTTP method"))?;
        if options.url.trim().is_empty() {
            return Err(Error::invalid(format!("{key}.url"), "required"));
        }
        let mut templates = Environment::new();
        templates.set_undefined_behavior(UndefinedBehavior::Strict);
        // Bodies are JSON, form data, XML…: escaping is the template's choice (`tojson`).
        templates.set_auto_escape_callback(|_| AutoEscape::None);
        let template_error = |field: String, error: minijinja::Error| {
            Error::invalid(field, format!("not a valid template: {error}"))
        };
        templates
            .add_template_owned(URL, options.url.trim().to_owned())
            .map_err(|error| template_error(format!("{key}.url"), error))?;
        if let Some(body) = &options.body {
            templates
                .add_template_owned(BODY, body.clone())
                .map_err(|error| template_error(format!("{key}.body"), error))?;
        }
        let mut headers = Vec::with_capacity(options.headers.len());
        for (name, value) in &options.headers {
            let field = format!("{key}.headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::invalid(field.clone(), "not a valid header name"))?;
            let template = format!("header:{header}");
            templates
                .add_template_owned(template.clone(), value.clone())
                .map_err(|error| template_error(field, error))?;
            headers.push((header, template));
        }
        let idempotency_header = match options.idempotency_header.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::invalid(
                    format!("{key}.idempotency_header"),
                    "not a valid header name",
                )
            })?),
        };
        let response_id_pointer = match options.response_id_pointer.as_deref() {
            None | Some("") => None,
            Some(pointer) if pointer.starts_with('/') => Some(pointer.to_owned()),
            Some(_) => {
                return Err(Error::invalid(
                    format!("{key}.response_id_pointer"),
                    "a JSON pointer starts with `/`, e.g. `/sid`",
                ));
            }
        };
        let timeout = options.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err(Error::invalid(format!("{key}.timeout"), "must not be 0"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|error| {
                Error::invalid(key.to_owned(), format!("cannot build a client: {error}"))
            })?;
        Ok(Self {
            client,
            method,
            templates,
            headers,
            has_body: options.body.is_some(),
            secret: options
                .secret
                .as_ref()
                .map(|secret| secret.expose().to_owned())
                .unwrap_or_default(),
            idempotency_header,
            response_id_pointer,
        })
    }

    fn render(&self, template: &str, context: &Value) -> Result<String, SendError> {
        self.templates
            .get_template(template)
            .and_then(|template| template.render(context))
            .map_err(|error| {
                // minijinja's message names the variable or filter, never a value.
                SendError::Permanent(format!(
                    "the {} template failed: {}",
                    template.trim_start_matches("header:"),
                    error.kind()
                ))
            })
    }

    fn request(&self, outgoing: &Outgoing<'_>) -> Result<reqwest::RequestBuilder, SendError> {
        let context = context(outgoing, &self.secret);
        let url = self.render(URL, &context)?;
        let mut request = self.client.request(self.method.clone(), url.trim());
        for (name, template) in &self.headers {
            let value = self.render(template, &context)?;
            let value = HeaderValue::from_str(value.trim()).map_err(|_| {
                SendError::Permanent(format!("the {name} header is not a valid header value"))
            })?;
            request = request.header(name, value);
        }
        if let Some(name) = &self.idempotency_header {
            let value = HeaderValue::from_str(outgoing.idempotency_key).map_err(|_| {
                SendError::Permanent("the idempotency key is not a valid header value".to_owned())
            })?;
            request = request.header(name, value);
        }
        if self.has_body {
            request = request.body(self.render(BODY, &context)?);
        }
        Ok(request)
    }
}

#[tonic::async_trait]
impl Adapter for HttpAdapter {
    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<Accepted, SendError> {
        let request = self.request(outgoing)?;
        let mut response = request
            .send()
            .await
            .map_err(|error| request_failed(&error))?;
        let status = response.status();
        if let Some(error) = refused(status) {
            return Err(error);
        }
        let Some(pointer) = &self.response_id_pointer else {
            return Ok(Accepted {
                provider_message_id: String::new(),
            });
        };
        // The message is taken once the status says so: a body that cannot be read only
        // loses the id.
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_RESPONSE {
                break;
            }
        }
        let provider_message_id = id_at(&body, pointer).unwrap_or_else(|| {
            tracing::warn!(pointer, "http provider: no message id in the answer");
            String::new()
        });
        Ok(Accepted {
            provider_message_id,
        })
    }
}

/// `sms` for `CHANNEL_SMS`.
fn channel_name(channel: Channel) -> String {
    let name = channel.as_str_name();
    name.strip_prefix("CHANNEL_")
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn context(outgoing: &Outgoing<'_>, secret: &str) -> Value {
    let mut content: BTreeMap<&str, Value> = [
        "subject",
        "html_body",
        "text_body",
        "body",
        "title",
        "deep_link",
    ]
    .into_iter()
    .map(|field| (field, Value::from("")))
    .collect();
    let mut data = BTreeMap::new();
    match &outgoing.content.content {
        Some(Content::Email(email)) => {
            content.insert("subject", Value::from(email.subject.as_str()));
            content.insert("html_body", Value::from(email.html_body.as_str()));
            content.insert("text_body", Value::from(email.text_body.as_str()));
        }
        Some(Content::Sms(sms)) => {
            content.insert("body", Value::from(sms.body.as_str()));
        }
        Some(Content::Push(push)) => {
            content.insert("title", Value::from(push.title.as_str()));
            content.insert("body", Value::from(push.body.as_str()));
            content.insert("deep_link", Value::from(push.deep_link.as_str()));
            data.extend(
                push.data
                    .iter()
                    .map(|(key, value)| (key.clone(), Value::from(value.as_str()))),
            );
        }
        Some(Content::Text(text)) => {
            content.insert("title", Value::from(text.title.as_str()));
            content.insert("body", Value::from(text.body.as_str()));
        }
        None => {}
    }
    content.insert("data", Value::from_pairs(data));
    minijinja::context! {
        message => outgoing.message,
        tenant => outgoing.tenant,
        channel => channel_name(outgoing.channel),
        address => outgoing.address,
        idempotency_key => outgoing.idempotency_key,
        attempt => outgoing.attempt,
        secret => secret,
        content => Value::from_pairs(content),
    }
}

/// 2xx is taken; 408, 425, 429 and 5xx are worth another attempt; any other status is not.
fn refused(status: StatusCode) -> Option<SendError> {
    let code = status.as_u16();
    if status.is_success() {
        return None;
    }
    if matches!(code, 408 | 425 | 429) || status.is_server_error() {
        return Some(SendError::Transient(format!(
            "the provider answered {code}"
        )));
    }
    Some(SendError::Permanent(format!(
        "the provider answered {code}"
    )))
}

/// Errors without reqwest's text, which quotes the URL (a template that may hold the address).
fn request_failed(error: &reqwest::Error) -> SendError {
    if error.is_timeout() {
        return SendError::Transient("the provider did not answer in time".to_owned());
    }
    if error.is_connect() {
        return SendError::Transient("could not connect to the provider".to_owned());
    }
    if error.is_builder() {
        return SendError::Permanent("the rendered URL is not valid".to_owned());
    }
    SendError::Transient("the request to the provider failed".to_owned())
}

/// The string or number at `pointer` in a JSON body.
fn id_at(body: &[u8], pointer: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    match json.pointer(pointer)? {
        serde_json::Value::String(id) => Some(id.clone()),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use throughline_proto::distribution::v1::{PushContent, TemplateVariant};

    use super::*;

    #[test]
    fn statuses_are_classified() {
        let kind = |code: u16| match refused(StatusCode::from_u16(code).expect("status")) {
            None => "ok",
            Some(SendError::Transient(_)) => "transient",
            Some(SendError::Permanent(_)) => "permanent",
        };
        for code in [200, 201, 202, 204] {
            assert_eq!(kind(code), "ok", "{code}");
        }
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(kind(code), "transient", "{code}");
        }
        for code in [301, 400, 401, 403, 404, 409, 413, 422] {
            assert_eq!(kind(code), "permanent", "{code}");
        }
    }

    #[test]
    fn ids_are_found_by_pointer() {
        let body = br#"{"sid": "SM1", "data": {"id": 42}, "list": [{"id": "x"}]}"#;
        assert_eq!(id_at(body, "/sid").as_deref(), Some("SM1"));
        assert_eq!(id_at(body, "/data/id").as_deref(), Some("42"));
        assert_eq!(id_at(body, "/list/0/id").as_deref(), Some("x"));
        assert_eq!(id_at(body, "/missing"), None);
        assert_eq!(id_at(b"not json", "/sid"), None);
    }

    #[test]
    fn templates_see_the_message() {
        let options = HttpOptions {
            url: "http://localhost/{{ channel }}/{{ tenant }}".to_owned(),
            body: Some(
                r#"{"to": {{ address|tojson }}, "title": {{ content.title|tojson }}, "k": {{ content.data.k|tojson }}, "subject": {{ content.subject|tojson }}, "n": {{ attempt }}}"#
                    .to_owned(),
            ),
            ..HttpOptions::default()
        };
        let adapter = HttpAdapter::new("k", &options).expect("adapter");
        let variant = TemplateVariant {
            channel: Channel::Push as i32,
            content: Some(Content::Push(PushContent {
                title: "Say \"hi\"".to_owned(),
                body: "b".to_owned(),
                deep_link: String::new(),
                data: [("k".to_owned(), "v".to_owned())].into(),
            })),
            ..TemplateVariant::default()
        };
        let outgoing = Outgoing {
            message: "messages/1",
            tenant: "acme",
            channel: Channel::Push,
            address: "device-token",
            content: &variant,
            idempotency_key: "req-1",
            attempt: 2,
        };
        let context = context(&outgoing, "");
        assert_eq!(
            adapter.render(URL, &context).expect("url"),
            "http://localhost/push/acme"
        );
        let body: serde_json::Value =
            serde_json::from_str(&adapter.render(BODY, &context).expect("body")).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"to": "device-token", "title": "Say \"hi\"", "k": "v", "subject": "", "n": 2})
        );
    }
}
