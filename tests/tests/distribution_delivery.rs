//! Delivery through real providers on SQLite and PostgreSQL: an SMTP exchange with a real SMTP
//! server, an HTTP provider with failover to a secondary, retries and dead letters, permanent
//! refusals, an outage followed by recovery delivering everything once in order of priority,
//! and a provider's rate limit.
#![allow(clippy::unwrap_used)]

mod distribution_support;

use std::time::{Duration, Instant};

use distribution_support::*;

use throughline_distribution::provider::{HttpOptions, ProviderOptions, SmtpOptions, SmtpTls};
use throughline_harness::{
    HttpMode, HttpSink, SmtpSink, TestDatabase, TestSuite, on_both_databases, token,
};
use throughline_proto::common::v1::{
    Channel, ChannelSelector, Priority, Purpose, channel_selector,
};
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::*;

fn http_provider(sink: &HttpSink, priority: i32, rate_limit: f64) -> ProviderOptions {
    ProviderOptions {
        kind: "http".into(),
        channels: vec!["sms".into()],
        priority,
        rate_limit,
        smtp: None,
        http: Some(HttpOptions {
            url: format!("{}/messages", sink.url()),
            body: Some(r#"{"to": {{ address|tojson }}, "text": {{ content.body|tojson }}}"#.into()),
            idempotency_header: Some("Idempotency-Key".into()),
            response_id_pointer: Some("/id".into()),
            ..HttpOptions::default()
        }),
    }
}

/// A suite whose providers are `providers` (name, options), with quick retries.
async fn start(test_db: &TestDatabase, providers: Vec<(&str, ProviderOptions)>) -> TestSuite {
    let mut config = TestSuite::config(&["distribution"], test_db, &[]);
    let distribution = &mut config.distribution;
    distribution.providers = providers
        .into_iter()
        .map(|(name, options)| (name.to_owned(), options))
        .collect();
    distribution.delivery.backoff_base = Duration::from_millis(50);
    distribution.delivery.backoff_max = Duration::from_millis(200);
    distribution.delivery.poll_interval = Duration::from_millis(50);
    distribution.delivery.cooldown = Duration::from_millis(500);
    distribution.delivery.failure_threshold = 3;
    distribution.delivery.max_attempts = 3;
    TestSuite::start_config(config).await
}

async fn client(suite: &TestSuite) -> Client {
    suite
        .clients(&token(
            "acme",
            &[
                "distribution:read",
                "distribution:write",
                "distribution:send",
            ],
        ))
        .await
        .distribution
}

async fn create_templates(client: &mut Client) {
    let variants = vec![
        TemplateVariant {
            channel: Channel::Sms as i32,
            locale: String::new(),
            content: Some(Content::Sms(SmsContent {
                body: "Your code is 1234".into(),
                max_segments: 0,
            })),
        },
        TemplateVariant {
            channel: Channel::Email as i32,
            locale: String::new(),
            content: Some(Content::Email(EmailContent {
                subject: "Your order".into(),
                html_body: "<p>It <b>ships</b> today.</p>".into(),
                text_body: String::new(),
            })),
        },
    ];
    client
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: "Notice".into(),
                variants,
                ..Template::default()
            }),
            template_id: "notice".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

fn request(channel: Channel, address: address::Address, request_id: &str) -> SendRequest {
    SendRequest {
        recipient: Some(Recipient {
            recipient: Some(recipient::Recipient::Address(Address {
                address: Some(address),
            })),
            ..Recipient::default()
        }),
        channel: Some(ChannelSelector {
            selector: Some(channel_selector::Selector::Channel(channel as i32)),
        }),
        purpose: Purpose::Service as i32,
        template: "templates/notice".into(),
        request_id: request_id.into(),
        ..SendRequest::default()
    }
}

fn sms(request_id: &str) -> SendRequest {
    request(
        Channel::Sms,
        address::Address::Phone("+33612345678".into()),
        request_id,
    )
}

fn history(message: &Message) -> Vec<(MessageStatus, StatusReason, String)> {
    message
        .status_history
        .iter()
        .map(|change| {
            (
                MessageStatus::try_from(change.status).unwrap(),
                StatusReason::try_from(change.reason).unwrap(),
                change.provider.clone(),
            )
        })
        .collect()
}

on_both_databases!(
    an_email_goes_out_through_a_real_smtp_exchange,
    |test_db: TestDatabase| async move {
        let smtp = SmtpSink::start().await;
        let mail = ProviderOptions {
            kind: "smtp".into(),
            channels: vec!["email".into()],
            priority: 0,
            rate_limit: 0.0,
            smtp: Some(SmtpOptions {
                host: "127.0.0.1".into(),
                port: Some(smtp.port()),
                tls: SmtpTls::None,
                from: "Shop <noreply@shop.example>".into(),
                ..SmtpOptions::default()
            }),
            http: None,
        };
        let suite = start(&test_db, vec![("mail", mail)]).await;
        let mut client = client(&suite).await;
        create_templates(&mut client).await;
        let message = send(
            &mut client,
            request(
                Channel::Email,
                address::Address::Email("ada@example.com".into()),
                "order-9-shipped",
            ),
        )
        .await;
        let sent = wait_for(&mut client, &message.name, MessageStatus::Sent).await;
        assert_eq!(sent.provider, "mail");
        let mails = smtp.wait_for(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(mails[0].to, ["ada@example.com"]);
        assert_eq!(mails[0].header("Subject").as_deref(), Some("Your order"));
        assert_eq!(
            mails[0].header("Idempotency-Key").as_deref(),
            Some("order-9-shipped")
        );
        // The text part was derived from the HTML.
        assert!(
            mails[0].body().contains("It ships today."),
            "{}",
            mails[0].body()
        );
        assert_eq!(
            mails[0].header("Message-ID").unwrap_or_default(),
            sent.provider_message_id
        );
        suite.stop().await;
    }
);

on_both_databases!(
    a_failing_provider_fails_over_then_dead_letters_and_refusals_are_final,
    |test_db: TestDatabase| async move {
        let primary = HttpSink::start().await;
        let secondary = HttpSink::start().await;
        primary.set_mode(HttpMode::Down);
        let suite = start(
            &test_db,
            vec![
                ("primary", http_provider(&primary, 0, 0.0)),
                ("secondary", http_provider(&secondary, 1, 0.0)),
            ],
        )
        .await;
        let mut client = client(&suite).await;
        create_templates(&mut client).await;

        let message = send(&mut client, sms("otp-1")).await;
        let sent = wait_for(&mut client, &message.name, MessageStatus::Sent).await;
        assert_eq!(sent.provider, "secondary");
        assert_eq!(sent.attempt_count, 2);
        assert_eq!(
            history(&sent),
            [
                (
                    MessageStatus::Queued,
                    StatusReason::Unspecified,
                    String::new()
                ),
                (
                    MessageStatus::Queued,
                    StatusReason::Failover,
                    "primary".into()
                ),
                (
                    MessageStatus::Sent,
                    StatusReason::Unspecified,
                    "secondary".into()
                ),
            ]
        );
        assert_eq!(primary.count_with_header("Idempotency-Key", "otp-1"), 1);
        assert_eq!(secondary.count_with_header("Idempotency-Key", "otp-1"), 1);
        let delivered = &secondary.requests()[0];
        assert_eq!(delivered.json()["text"], "Your code is 1234");
        assert_eq!(sent.provider_message_id, "sink-1");

        // Both down: attempts run out and the message is kept as a dead letter.
        secondary.set_mode(HttpMode::Down);
        let doomed = send(&mut client, sms("otp-2")).await;
        let failed = wait_for(&mut client, &doomed.name, MessageStatus::Failed).await;
        assert_eq!(failed.attempt_count, 3);
        assert_eq!(
            history(&failed).last().unwrap().1,
            StatusReason::AttemptsExhausted
        );
        let providers = client
            .list_providers(ListProvidersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .providers;
        let dead: i64 = providers.iter().map(|p| p.dead_letter_count).sum();
        assert_eq!(dead, 1);
        assert!(
            providers
                .iter()
                .all(|p| p.health != ProviderHealth::Healthy as i32),
            "{providers:?}"
        );

        // A permanent refusal is final after one attempt.
        primary.set_mode(HttpMode::Status(400));
        secondary.set_mode(HttpMode::Status(400));
        tokio::time::sleep(Duration::from_millis(600)).await; // both cool down
        let refused = send(&mut client, sms("otp-3")).await;
        let failed = wait_for(&mut client, &refused.name, MessageStatus::Failed).await;
        assert_eq!(failed.attempt_count, 1);
        assert_eq!(
            history(&failed).last().unwrap().1,
            StatusReason::ProviderRejected
        );
        suite.stop().await;
    }
);

on_both_databases!(
    after_an_outage_everything_is_delivered_once_in_order_of_priority,
    |test_db: TestDatabase| async move {
        let sink = HttpSink::start().await;
        sink.set_mode(HttpMode::Down);
        let mut config_provider = http_provider(&sink, 0, 0.0);
        config_provider.channels = vec!["sms".into()];
        let mut config = TestSuite::config(&["distribution"], &test_db, &[]);
        config.distribution.providers = [("sms".to_owned(), config_provider)].into();
        let delivery = &mut config.distribution.delivery;
        // One at a time, so the order of arrival is the order of claiming.
        delivery.concurrency = 1;
        delivery.backoff_base = Duration::from_millis(50);
        delivery.backoff_max = Duration::from_millis(100);
        delivery.poll_interval = Duration::from_millis(50);
        delivery.failure_threshold = 2;
        delivery.cooldown = Duration::from_secs(2);
        delivery.max_attempts = 10;
        let suite = TestSuite::start_config(config).await;
        let mut client = client(&suite).await;
        create_templates(&mut client).await;

        // Two messages trip the provider's breaker.
        for index in 0..2 {
            send(&mut client, sms(&format!("probe-{index}"))).await;
        }
        sink.wait_for(2, Duration::from_secs(5)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // While it is down, low-priority messages queue first, then high-priority ones.
        let mut names = Vec::new();
        for index in 0..8 {
            let mut low = sms(&format!("low-{index}"));
            low.priority = Priority::Low as i32;
            names.push(send(&mut client, low).await.name);
        }
        for index in 0..8 {
            let mut high = sms(&format!("high-{index}"));
            high.priority = Priority::High as i32;
            names.push(send(&mut client, high).await.name);
        }
        let during_outage = sink.count();
        sink.set_mode(HttpMode::Up);
        for name in &names {
            wait_for(&mut client, name, MessageStatus::Sent).await;
        }
        let after: Vec<String> = sink
            .requests()
            .into_iter()
            .skip(during_outage)
            .filter(|r| r.status == 200)
            .filter_map(|r| r.header("Idempotency-Key").map(str::to_owned))
            .filter(|key| !key.starts_with("probe"))
            .collect();
        assert_eq!(after.len(), 16, "{after:?}");
        let first_low = after.iter().position(|key| key.starts_with("low")).unwrap();
        let last_high = after
            .iter()
            .rposition(|key| key.starts_with("high"))
            .unwrap();
        assert!(last_high < first_low, "high before low: {after:?}");
        for index in 0..8 {
            for kind in ["low", "high"] {
                let key = format!("{kind}-{index}");
                assert_eq!(sink.count_with_header("Idempotency-Key", &key), 1, "{key}");
            }
        }
        suite.stop().await;
    }
);

on_both_databases!(
    a_provider_rate_limit_spaces_messages_out,
    |test_db: TestDatabase| async move {
        let sink = HttpSink::start().await;
        let suite = start(&test_db, vec![("sms", http_provider(&sink, 0, 20.0))]).await;
        let mut client = client(&suite).await;
        create_templates(&mut client).await;
        let started = Instant::now();
        for index in 0..21 {
            send(&mut client, sms(&format!("limited-{index}"))).await;
        }
        sink.wait_for(21, Duration::from_secs(10)).await.unwrap();
        // 21 messages at 20 per second cannot all arrive within one second.
        let requests = sink.requests();
        assert_eq!(requests.len(), 21);
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "{:?}",
            started.elapsed()
        );
        suite.stop().await;
    }
);
