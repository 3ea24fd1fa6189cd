//! The real `throughline` binary killed with SIGKILL during a burst of sends: after a restart
//! on the same database, a real local HTTP provider has received every accepted message, and
//! exactly one distinct delivery per idempotency key. A crash can make the provider see a
//! message twice (taken by the provider, killed before its outcome was recorded); the raw
//! repeats are counted and printed, and the key lets the provider drop them.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use throughline_harness::{HttpSink, TestDatabase};
use throughline_proto::common::v1::{Channel, ChannelSelector, Purpose, channel_selector};
use throughline_proto::distribution::v1::distribution_service_client::DistributionServiceClient;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::*;
use tokio::sync::Mutex;

const SENDS: usize = 1500;
const SENDERS: usize = 16;
/// The kill comes once this many sends were accepted.
const KILL_AFTER: usize = 600;

type Client = DistributionServiceClient<common::Authorised>;

async fn client(endpoint: String) -> Client {
    DistributionServiceClient::new(
        common::authorised(
            endpoint,
            &[
                "distribution:read",
                "distribution:write",
                "distribution:send",
            ],
        )
        .await,
    )
}

fn send(index: usize) -> SendRequest {
    SendRequest {
        recipient: Some(Recipient {
            recipient: Some(recipient::Recipient::Address(Address {
                address: Some(address::Address::Phone(format!(
                    "+3361{:07}",
                    index % 10_000_000
                ))),
            })),
            ..Recipient::default()
        }),
        channel: Some(ChannelSelector {
            selector: Some(channel_selector::Selector::Channel(Channel::Sms as i32)),
        }),
        purpose: Purpose::Service as i32,
        template: "templates/code".into(),
        request_id: format!("burst-{index:05}"),
        ..SendRequest::default()
    }
}

fn config_file(dir: &std::path::Path, sink: &HttpSink) -> String {
    let path = dir.join("providers.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[distribution.providers.sink]
kind = "http"
channels = ["sms"]

[distribution.providers.sink.http]
url = "{}/messages"
body = '{{"to": {{{{ address|tojson }}}}}}'
idempotency_header = "Idempotency-Key"
response_id_pointer = "/id"

[distribution.delivery]
# A killed worker's claims come back quickly.
lease = "3s"
poll_interval = "100ms"
"#,
            sink.url()
        ),
    )
    .unwrap();
    path.display().to_string()
}

async fn killed_mid_burst_delivers_every_accepted_message_once(database_url: &str) {
    let sink = HttpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &sink);
    let env = [
        ("THROUGHLINE__DATABASE__URL", database_url),
        ("THROUGHLINE_CONFIG", config.as_str()),
    ];
    let mut process = common::spawn(&["--services", "distribution"], &env);
    let mut setup = client(process.endpoint()).await;
    setup
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: "Code".into(),
                variants: vec![TemplateVariant {
                    channel: Channel::Sms as i32,
                    locale: String::new(),
                    content: Some(Content::Sms(SmsContent {
                        body: "Your code is 4711".into(),
                        max_segments: 0,
                    })),
                }],
                ..Template::default()
            }),
            template_id: "code".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();

    // Senders share a counter of accepted sends; the test kills the process mid-burst.
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let mut client = client(process.endpoint()).await;
        let accepted = accepted.clone();
        let next = next.clone();
        senders.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if index >= SENDS {
                    return;
                }
                match client.send(send(index)).await {
                    Ok(_) => {
                        accepted.lock().await.insert(format!("burst-{index:05}"));
                    }
                    // The process is gone: the rest of the burst is not accepted.
                    Err(_) => return,
                }
            }
        }));
    }
    loop {
        if accepted.lock().await.len() >= KILL_AFTER {
            process.signal("KILL");
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let status = process.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), None, "killed by a signal: {status:?}");
    let accepted = accepted.lock().await.clone();
    let delivered_before_restart = sink.count();
    assert!(
        accepted.len() < SENDS,
        "the kill came after the burst: nothing was in flight"
    );

    let _restarted = common::spawn(&["--services", "distribution"], &env);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let keys = loop {
        let keys: BTreeSet<String> = sink
            .requests()
            .iter()
            .filter(|request| request.status == 200)
            .filter_map(|request| request.header("Idempotency-Key").map(str::to_owned))
            .collect();
        if accepted.is_subset(&keys) {
            break keys;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} accepted messages never reached the provider",
            accepted.difference(&keys).count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let total = sink.count();
    let repeats = total - keys.len();
    // Every delivery carries a key of the burst, and each key was delivered at least once.
    assert!(keys.iter().all(|key| key.starts_with("burst-")));
    eprintln!(
        "distribution crash: {} sends accepted before SIGKILL, {} delivered before the kill, \
         {} distinct deliveries after restart, {} raw repeats caused by the crash",
        accepted.len(),
        delivered_before_restart,
        keys.len(),
        repeats
    );
    // A repeat can only come from a message in flight at the kill: at most a worker's
    // concurrency of them.
    assert!(repeats <= 64, "{repeats} repeats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/throughline.db", data.path().display());
    killed_mid_burst_delivers_every_accepted_message_once(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let database = TestDatabase::postgres().await;
    killed_mid_burst_delivers_every_accepted_message_once(database.url()).await;
}
