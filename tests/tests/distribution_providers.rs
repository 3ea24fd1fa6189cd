//! The delivery providers against real servers: the harness's SMTP and HTTP sinks on
//! `127.0.0.1`, reached through the providers that `build_all` makes from configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use throughline_distribution::provider::{Provider, ProviderOptions, SendError, build_all};
use throughline_harness::{HttpMode, HttpSink, SmtpMode, SmtpSink};
use throughline_proto::common::v1::Channel;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::{EmailContent, SmsContent, TemplateVariant};
use throughline_runtime::Error;

const WAIT: Duration = Duration::from_secs(5);

fn provider(name: &str, options: serde_json::Value) -> Result<Provider, Error> {
    let options: BTreeMap<String, ProviderOptions> =
        serde_json::from_value(json!({ name: options })).expect("options deserialize");
    Ok(build_all(&options)?.remove(0))
}

fn smtp_provider(port: u16, extra: serde_json::Value) -> Provider {
    let mut smtp = json!({
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "from": "Throughline <noreply@example.com>",
        "timeout": "2s",
    });
    smtp.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    provider(
        "mail",
        json!({ "kind": "smtp", "channels": ["email"], "smtp": smtp }),
    )
    .expect("smtp provider")
}

fn email(subject: &str, text: &str, html: &str) -> TemplateVariant {
    TemplateVariant {
        channel: Channel::Email as i32,
        locale: String::new(),
        content: Some(Content::Email(EmailContent {
            subject: subject.to_owned(),
            html_body: html.to_owned(),
            text_body: text.to_owned(),
        })),
    }
}

fn sms(body: &str) -> TemplateVariant {
    TemplateVariant {
        channel: Channel::Sms as i32,
        locale: String::new(),
        content: Some(Content::Sms(SmsContent {
            body: body.to_owned(),
            max_segments: 0,
        })),
    }
}

async fn send(
    provider: &Provider,
    content: &TemplateVariant,
    address: &str,
    key: &str,
) -> Result<String, SendError> {
    let outgoing = throughline_distribution::provider::Outgoing {
        message: "messages/01JTEST",
        tenant: "acme",
        channel: Channel::try_from(content.channel).expect("channel"),
        address,
        content,
        idempotency_key: key,
        attempt: 1,
    };
    provider
        .adapter
        .send(&outgoing)
        .await
        .map(|accepted| accepted.provider_message_id)
}

/// A port on which nothing listens: bound, then released.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A server that accepts connections and never says a word; it stops with the test.
async fn silent_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    port
}

fn is_transient(result: &Result<String, SendError>) -> bool {
    matches!(result, Err(SendError::Transient(_)))
}

fn is_permanent(result: &Result<String, SendError>) -> bool {
    matches!(result, Err(SendError::Permanent(_)))
}

#[tokio::test]
async fn smtp_delivers_a_multipart_mail_with_the_idempotency_key() {
    let sink = SmtpSink::start().await;
    let provider = smtp_provider(sink.port(), json!({}));
    let content = email(
        "Your order 42",
        "Hello in text\r\n.a line that starts with a dot",
        "<p>Hello in <b>HTML</b></p>",
    );

    let id = send(&provider, &content, "alice@example.org", "req-42")
        .await
        .expect("accepted");

    let mails = sink.wait_for(1, WAIT).await.expect("one mail");
    let mail = &mails[0];
    assert_eq!(mail.from, "noreply@example.com");
    assert_eq!(mail.to, vec!["alice@example.org".to_owned()]);
    assert!(
        mail.header("To").expect("To").contains("alice@example.org"),
        "{mail:?}"
    );
    assert_eq!(mail.header("Subject").as_deref(), Some("Your order 42"));
    assert_eq!(mail.header("Idempotency-Key").as_deref(), Some("req-42"));
    let content_type = mail.header("Content-Type").expect("Content-Type");
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    let body = mail.body();
    assert!(body.contains("text/plain"), "{body}");
    assert!(body.contains("text/html"), "{body}");
    assert!(body.contains("Hello in text"), "{body}");
    // Stuffed by the client, unstuffed by the sink: the line arrives as it was written.
    assert!(
        body.contains("\r\n.a line that starts with a dot\r\n"),
        "{body}"
    );
    assert!(body.contains("<p>Hello in <b>HTML</b></p>"), "{body}");
    let message_id = mail.header("Message-ID").expect("Message-ID");
    assert_eq!(id, message_id);
    assert!(message_id.ends_with("@example.com>"), "{message_id}");

    // The same key gives the same Message-ID, another key another one; the pool keeps one
    // connection for all three (it takes a connection back in a task of its own: give it time).
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&provider, &content, "alice@example.org", "req-42")
        .await
        .expect("accepted again");
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&provider, &content, "bob@example.org", "req-43")
        .await
        .expect("accepted for bob");
    let mails = sink.wait_for(3, WAIT).await.expect("three mails");
    assert_eq!(mails[1].header("Message-ID"), Some(message_id.clone()));
    assert_ne!(mails[2].header("Message-ID"), Some(message_id));
    assert_eq!(mails[2].to, vec!["bob@example.org".to_owned()]);
    assert_eq!(sink.count_with_header("Idempotency-Key", "req-42"), 2);
    assert_eq!(sink.connections(), 1);
}

#[tokio::test]
async fn smtp_sends_a_single_part_mail_and_authenticates() {
    let sink = SmtpSink::start().await;
    let provider = smtp_provider(
        sink.port(),
        json!({ "username": "user", "password": "pass" }),
    );
    send(
        &provider,
        &email("Text only", "Just text", ""),
        "alice@example.org",
        "req-1",
    )
    .await
    .expect("accepted");
    let mails = sink.wait_for(1, WAIT).await.expect("one mail");
    let content_type = mails[0].header("Content-Type").expect("Content-Type");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(mails[0].body().contains("Just text"));
    // AUTH PLAIN of "\0user\0pass".
    assert_eq!(mails[0].auth.as_deref(), Some("AHVzZXIAcGFzcw=="));
}

#[tokio::test]
async fn smtp_failures_are_classified_and_recovery_delivers() {
    let sink = SmtpSink::start().await;
    let provider = smtp_provider(sink.port(), json!({}));
    let content = email("Hi", "text", "<p>html</p>");

    sink.set_mode(SmtpMode::Transient);
    let result = send(&provider, &content, "alice@example.org", "req-1").await;
    assert!(is_transient(&result), "{result:?}");
    let Err(error) = result else { unreachable!() };
    assert!(!error.to_string().contains("alice"), "{error}");

    sink.set_mode(SmtpMode::Permanent);
    let result = send(&provider, &content, "alice@example.org", "req-1").await;
    assert!(is_permanent(&result), "{result:?}");

    sink.set_mode(SmtpMode::TransientAtData);
    let result = send(&provider, &content, "alice@example.org", "req-1").await;
    assert!(is_transient(&result), "{result:?}");

    sink.set_mode(SmtpMode::PermanentAtData);
    let result = send(&provider, &content, "alice@example.org", "req-1").await;
    assert!(is_permanent(&result), "{result:?}");
    assert_eq!(sink.count(), 0);

    sink.set_mode(SmtpMode::Accept);
    send(&provider, &content, "alice@example.org", "req-1")
        .await
        .expect("accepted after recovery");
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn smtp_without_a_server_is_transient() {
    let provider = smtp_provider(closed_port().await, json!({}));
    let result = send(
        &provider,
        &email("Hi", "text", ""),
        "alice@example.org",
        "req-1",
    )
    .await;
    assert!(is_transient(&result), "{result:?}");
}

#[tokio::test]
async fn smtp_timeouts_are_transient() {
    let provider = smtp_provider(silent_port().await, json!({ "timeout": "300ms" }));
    let started = std::time::Instant::now();
    let result = send(
        &provider,
        &email("Hi", "text", ""),
        "alice@example.org",
        "req-1",
    )
    .await;
    assert!(is_transient(&result), "{result:?}");
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
}

#[tokio::test]
async fn smtp_refuses_an_invalid_address_permanently() {
    let sink = SmtpSink::start().await;
    let provider = smtp_provider(sink.port(), json!({}));
    let result = send(
        &provider,
        &email("Hi", "text", ""),
        "not an address",
        "req-1",
    )
    .await;
    assert!(is_permanent(&result), "{result:?}");
    assert_eq!(sink.count(), 0);
}

fn http_provider(url: &str, extra: serde_json::Value) -> Provider {
    let mut http = json!({
        "url": url,
        "headers": {
            "Content-Type": "application/json",
            "Authorization": "Bearer {{ secret }}",
            "X-Attempt": "{{ attempt }}",
        },
        "secret": "s3cr3t",
        "body": r#"{"to": {{ address|tojson }}, "text": {{ content.body|tojson }}, "channel": {{ channel|tojson }}, "message": {{ message|tojson }}, "tenant": {{ tenant|tojson }}}"#,
        "idempotency_header": "Idempotency-Key",
        "response_id_pointer": "/sid",
        "timeout": "2s",
    });
    http.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    provider(
        "sms",
        json!({ "kind": "http", "channels": ["sms"], "http": http }),
    )
    .expect("http provider")
}

#[tokio::test]
async fn http_renders_the_request_and_extracts_the_id() {
    let sink = HttpSink::start().await;
    sink.set_id_field("sid");
    let provider = http_provider(
        &format!("{}/v1/{{{{ tenant }}}}/messages", sink.url()),
        json!({}),
    );
    let text = "Hi \"Bob\",\nyour code is <42> & more";

    let id = send(&provider, &sms(text), "+33612345678", "req-7")
        .await
        .expect("accepted");

    assert_eq!(id, "sink-1");
    sink.wait_for(1, WAIT).await.expect("one request");
    let request = &sink.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/acme/messages");
    assert_eq!(request.header("authorization"), Some("Bearer s3cr3t"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-attempt"), Some("1"));
    assert_eq!(request.header("idempotency-key"), Some("req-7"));
    assert_eq!(
        request.json(),
        json!({
            "to": "+33612345678",
            "text": text,
            "channel": "sms",
            "message": "messages/01JTEST",
            "tenant": "acme",
        })
    );
    assert_eq!(sink.count_with_header("Idempotency-Key", "req-7"), 1);
    assert_eq!(sink.count_with_header("Idempotency-Key", "req-8"), 0);
}

#[tokio::test]
async fn http_without_a_pointer_accepts_with_an_empty_id() {
    let sink = HttpSink::start().await;
    let provider = http_provider(
        &format!("{}/send", sink.url()),
        json!({ "method": "put", "response_id_pointer": null }),
    );
    let id = send(&provider, &sms("hello"), "+33612345678", "req-1")
        .await
        .expect("accepted");
    assert_eq!(id, "");
    assert_eq!(sink.requests()[0].method, "PUT");

    // A pointer that finds nothing in the answer also gives an empty id.
    let provider = http_provider(&format!("{}/send", sink.url()), json!({}));
    let id = send(&provider, &sms("hello"), "+33612345678", "req-2")
        .await
        .expect("accepted");
    assert_eq!(id, "");
}

#[tokio::test]
async fn http_statuses_are_classified_and_recovery_delivers() {
    let sink = HttpSink::start().await;
    let provider = http_provider(&format!("{}/send", sink.url()), json!({}));
    let content = sms("hello");

    sink.set_mode(HttpMode::Down);
    let result = send(&provider, &content, "+33612345678", "req-1").await;
    assert!(is_transient(&result), "503: {result:?}");
    let Err(error) = result else { unreachable!() };
    assert!(!error.to_string().contains("+336"), "{error}");

    sink.set_mode(HttpMode::Status(429));
    let result = send(&provider, &content, "+33612345678", "req-1").await;
    assert!(is_transient(&result), "429: {result:?}");

    sink.set_mode(HttpMode::Status(400));
    let result = send(&provider, &content, "+33612345678", "req-1").await;
    assert!(is_permanent(&result), "400: {result:?}");

    sink.set_mode(HttpMode::Up);
    let id = send(&provider, &content, "+33612345678", "req-1")
        .await
        .expect("accepted after recovery");
    assert_eq!(id, "");
    assert_eq!(sink.count(), 4);
    assert_eq!(sink.count_with_header("idempotency-key", "req-1"), 4);
    let statuses: Vec<u16> = sink.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 429, 400, 200]);
}

#[tokio::test]
async fn http_without_a_server_is_transient() {
    let provider = http_provider(
        &format!("http://127.0.0.1:{}/send", closed_port().await),
        json!({}),
    );
    let result = send(&provider, &sms("hello"), "+33612345678", "req-1").await;
    assert!(is_transient(&result), "{result:?}");
}

#[tokio::test]
async fn http_timeouts_are_transient() {
    let provider = http_provider(
        &format!("http://127.0.0.1:{}/send", silent_port().await),
        json!({ "timeout": "300ms" }),
    );
    let started = std::time::Instant::now();
    let result = send(&provider, &sms("hello"), "+33612345678", "req-1").await;
    assert!(is_transient(&result), "{result:?}");
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
}

#[tokio::test]
async fn http_template_errors_are_permanent() {
    let sink = HttpSink::start().await;
    let provider = http_provider(
        &format!("{}/send", sink.url()),
        json!({ "body": "{{ no_such_variable }}" }),
    );
    let result = send(&provider, &sms("hello"), "+33612345678", "req-1").await;
    assert!(is_permanent(&result), "{result:?}");
    assert_eq!(sink.count(), 0);
}

fn field_of(result: Result<Provider, Error>) -> String {
    match result {
        Err(Error::InvalidArgument(violations)) => violations[0].field.clone(),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[test]
fn bad_options_name_their_key() {
    let smtp = |smtp: serde_json::Value| {
        provider(
            "mail",
            json!({ "kind": "smtp", "channels": ["email"], "smtp": smtp }),
        )
    };
    let http = |http: serde_json::Value| {
        provider(
            "sms",
            json!({ "kind": "http", "channels": ["sms"], "http": http }),
        )
    };
    let ok_smtp = json!({ "host": "127.0.0.1", "tls": "none", "from": "a@example.com" });
    assert!(smtp(ok_smtp.clone()).is_ok());
    assert!(http(json!({ "url": "http://127.0.0.1/x" })).is_ok());

    assert_eq!(
        field_of(smtp(json!({ "tls": "none", "from": "a@example.com" }))),
        "distribution.providers.mail.smtp.host"
    );
    assert_eq!(
        field_of(smtp(
            json!({ "host": "127.0.0.1", "tls": "none", "from": "nobody" })
        )),
        "distribution.providers.mail.smtp.from"
    );
    assert_eq!(
        field_of(provider(
            "mail",
            json!({ "kind": "smtp", "channels": ["email"] })
        )),
        "distribution.providers.mail.smtp"
    );
    assert_eq!(
        field_of(provider(
            "mail",
            json!({ "kind": "log", "channels": ["email"], "smtp": ok_smtp })
        )),
        "distribution.providers.mail.smtp"
    );
    assert_eq!(
        field_of(http(json!({ "url": "" }))),
        "distribution.providers.sms.http.url"
    );
    assert_eq!(
        field_of(http(
            json!({ "url": "http://x", "headers": { "Bad Header": "v" } })
        )),
        "distribution.providers.sms.http.headers.Bad Header"
    );
    assert_eq!(
        field_of(http(json!({ "url": "http://x", "body": "{{ unclosed" }))),
        "distribution.providers.sms.http.body"
    );
    assert_eq!(
        field_of(http(json!({ "url": "http://x", "method": "NOT A METHOD" }))),
        "distribution.providers.sms.http.method"
    );
    assert_eq!(
        field_of(http(
            json!({ "url": "http://x", "response_id_pointer": "sid" })
        )),
        "distribution.providers.sms.http.response_id_pointer"
    );

    // Unknown keys are refused by deserialization, which names them.
    let unknown = serde_json::from_value::<BTreeMap<String, ProviderOptions>>(json!({
        "mail": { "kind": "smtp", "channels": ["email"], "smtp": { "hots": "x" } }
    }))
    .expect_err("unknown field");
    assert!(unknown.to_string().contains("hots"), "{unknown}");
}
