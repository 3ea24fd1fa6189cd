//! The webhook node against a real HTTP server, on SQLite and PostgreSQL: the rendered request
//! with its idempotency key and HMAC signature, the answer kept in `vars`, retries with backoff
//! that reuse the key, a permanent failure that takes `failure_next`, and definitions naming a
//! credential the server does not have or a template that does not compile.
#![allow(clippy::unwrap_used)]

mod orchestration_engine_support;

use std::time::Duration;

use orchestration_engine_support::*;
use throughline_harness::{
    HttpMode, HttpSink, TestDatabase, TestSuite, on_both_databases, violations,
};
use throughline_orchestration::{Clock, Credential, WebhookOptions};
use throughline_proto::orchestration::v1::*;
use throughline_runtime::config::Secret;
use throughline_runtime::outbound::signature;

const SECRET: &str = "crm-signing-secret";

/// The orchestration service on a manual clock, allowed to call the local sink over http and
/// holding one HMAC credential, `crm`.
async fn start_with_webhooks(db: &TestDatabase) -> (TestSuite, Clock) {
    let clock = Clock::manual(T0_US);
    let mut config = TestSuite::config(
        &["orchestration"],
        db,
        &[("THROUGHLINE__ORCHESTRATION__ENGINE__POLL_INTERVAL", "50ms")],
    );
    config.orchestration.clock = clock.clone();
    config.orchestration.webhooks = WebhookOptions {
        allow_http: true,
        allow_private_addresses: true,
        credentials: [(
            "crm".to_owned(),
            Credential::Hmac {
                secret: Secret::new(SECRET),
            },
        )]
        .into(),
    };
    (TestSuite::start_config(config).await, clock)
}

fn webhook(id: &str, url: String, body: &str, next: &str, failure_next: &str) -> Node {
    node(
        id,
        node::Kind::Webhook(WebhookNode {
            url,
            headers: [("X-Order".to_owned(), "{{ vars.order }}".to_owned())].into(),
            body: body.into(),
            credential: "crm".into(),
            max_attempts: 3,
            result_variable: "crm".into(),
            failure_next: failure_next.into(),
            ..WebhookNode::default()
        }),
        next,
    )
}

async fn start_order(client: &mut Client, journey: &str, order: &str) -> JourneyInstance {
    let mut request = start_request(journey, email(&format!("{order}@example.com")));
    request.variables = Some(struct_of(&[("order", order)]));
    client
        .start_journey(request)
        .await
        .unwrap()
        .into_inner()
        .instance
        .unwrap()
}

on_both_databases!(
    webhook_nodes_call_sign_retry_and_fail_over,
    |db: TestDatabase| async move {
        let sink = HttpSink::start().await;
        let (suite, clock) = start_with_webhooks(&db).await;
        let mut client = client(&suite, "acme").await;

        // A rendered JSON body, signed; the answer lands in vars.crm.
        let body = r#"{"order": "{{ vars.order }}", "source": "journey"}"#;
        publish(
            &mut client,
            "sync",
            definition(
                api_trigger(),
                vec![
                    webhook("crm", format!("{}/orders", sink.url()), body, "done", ""),
                    exit("done", "synced"),
                ],
            ),
        )
        .await;
        let started = start_order(&mut client, "sync", "o-1").await;
        let ended = instance_when(&client, &started.name, "the call is made", has_ended).await;
        assert_eq!(ended.exit_reason, "synced");
        assert_eq!(outcomes(&ended), ["called", "exit"]);
        let vars = throughline_runtime::json::struct_to_json(&ended.variables.unwrap());
        assert_eq!(vars["crm"]["id"], "sink-1");
        let requests = sink.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/orders")
        );
        assert_eq!(request.header("x-order"), Some("o-1"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.json()["order"], "o-1");
        let key = request.header("idempotency-key").unwrap();
        assert!(key.starts_with("journey:"), "{key}");
        assert!(signature::verify(
            SECRET.as_bytes(),
            request.header("webhook-timestamp").unwrap(),
            request.header("webhook-signature").unwrap(),
            &request.body,
        ));

        // Down: retried with backoff under the same key, then done once it answers; the default
        // body is a CloudEvent about the instance.
        sink.set_mode(HttpMode::Down);
        publish(
            &mut client,
            "retry",
            definition(
                api_trigger(),
                vec![
                    webhook("crm", format!("{}/events", sink.url()), "", "done", ""),
                    exit("done", "synced"),
                ],
            ),
        )
        .await;
        let started = start_order(&mut client, "retry", "o-2").await;
        instance_when(&client, &started.name, "the first attempt fails", |i| {
            is_waiting_at("crm")(i) && i.steps.last().is_some_and(|s| s.attempts >= 1)
        })
        .await;
        assert_eq!(sink.count(), 2);
        sink.set_mode(HttpMode::Up);
        advance(&clock, 10 * MINUTE).await;
        let ended = instance_when(&client, &started.name, "the retry succeeds", has_ended).await;
        assert_eq!(outcomes(&ended), ["called", "exit"]);
        let attempts = &sink.requests()[1..];
        assert_eq!(attempts.len(), 2, "one failed attempt, one that succeeded");
        let key = attempts[0].header("idempotency-key").unwrap();
        assert_eq!(attempts[1].header("idempotency-key"), Some(key));
        let event = attempts[1].json();
        assert_eq!(
            attempts[1].header("content-type"),
            Some("application/cloudevents+json")
        );
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "journey.webhook");
        assert_eq!(event["id"], key);
        assert_eq!(event["data"]["instance"], started.name.as_str());
        assert_eq!(event["data"]["variables"]["order"], "o-2");

        // A permanent refusal is not retried: the node's failure path is taken at once.
        sink.set_mode(HttpMode::Status(404));
        publish(
            &mut client,
            "fallback",
            definition(
                api_trigger(),
                vec![
                    webhook(
                        "crm",
                        format!("{}/missing", sink.url()),
                        body,
                        "done",
                        "manual",
                    ),
                    exit("done", "synced"),
                    exit("manual", "needs-a-person"),
                ],
            ),
        )
        .await;
        let before = sink.count();
        let started = start_order(&mut client, "fallback", "o-3").await;
        let ended = instance_when(&client, &started.name, "the call is refused", has_ended).await;
        assert_eq!(ended.exit_reason, "needs-a-person");
        assert_eq!(outcomes(&ended), ["failed:status_404", "exit"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sink.count(), before + 1);

        // What only the server knows is checked when the journey is saved.
        let mut bad = webhook("crm", format!("{}/x", sink.url()), "{{ vars.order", "", "");
        if let Some(node::Kind::Webhook(w)) = &mut bad.kind {
            w.credential = "erp".into();
        }
        let refused = client
            .create_journey(CreateJourneyRequest {
                journey: Some(Journey {
                    display_name: "bad".into(),
                    definition: Some(definition(api_trigger(), vec![bad])),
                    ..Journey::default()
                }),
                journey_id: "bad".into(),
                ..CreateJourneyRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&refused),
            [
                "journey.definition.nodes[0].webhook.credential",
                "journey.definition.nodes[0].webhook.body",
            ]
        );
        suite.stop().await;
    }
);
