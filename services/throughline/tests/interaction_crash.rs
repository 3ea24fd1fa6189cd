//! The real `throughline` binary killed with SIGKILL in the middle of a streaming ingest:
//! after a restart on the same database every acknowledged interaction is stored, and
//! resending the unacknowledged batches stores each interaction exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use throughline_harness::TestDatabase;
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::common::v1::{Channel, CustomerRef, Direction};
use throughline_proto::interaction::v1::interaction_service_client::InteractionServiceClient;
use throughline_proto::interaction::v1::{
    Interaction, ListInteractionsRequest, RecordInteractionRequest, RecordInteractionsRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const BATCH: usize = 200;
const CUSTOMERS: usize = 4;
/// Batches sent on the stream that is killed; the kill comes after the fifth acknowledgement.
const BATCHES: i64 = 20;

type Client = InteractionServiceClient<common::Authorised>;

async fn client(endpoint: String) -> Client {
    InteractionServiceClient::new(
        common::authorised(endpoint, &["interaction:read", "interaction:write"]).await,
    )
}

fn batch(sequence: i64) -> RecordInteractionsRequest {
    let first = (sequence as usize - 1) * BATCH;
    RecordInteractionsRequest {
        sequence,
        requests: (first..first + BATCH).map(item).collect(),
    }
}

fn item(i: usize) -> RecordInteractionRequest {
    let mut interaction = Interaction {
        customer: Some(CustomerRef {
            customer: Some(Customer::Profile(format!("profiles/c{}", i % CUSTOMERS))),
        }),
        channel: Channel::Web as i32,
        direction: Direction::Inbound as i32,
        r#type: "page_view".into(),
        occur_time: Some(Default::default()),
        ..Interaction::default()
    };
    if let Some(time) = interaction.occur_time.as_mut() {
        time.seconds = 1_750_000_000 + i as i64;
    }
    RecordInteractionRequest {
        interaction_id: format!("crash-{i:06}"),
        interaction: Some(interaction),
    }
}

fn ids(batch: &RecordInteractionsRequest) -> Vec<String> {
    batch
        .requests
        .iter()
        .map(|r| format!("interactions/{}", r.interaction_id))
        .collect()
}

/// Every interaction stored, by name, with how often each appears.
async fn stored(client: &mut Client) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for customer in 0..CUSTOMERS {
        let mut token = String::new();
        loop {
            let page = client
                .list_interactions(ListInteractionsRequest {
                    customer: Some(CustomerRef {
                        customer: Some(Customer::Profile(format!("profiles/c{customer}"))),
                    }),
                    page_size: 1000,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for interaction in page.interactions {
                *seen.entry(interaction.name).or_insert(0) += 1;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
    }
    seen
}

async fn killed_mid_ingest_keeps_every_acknowledged_interaction(database_url: &str) {
    let env = [("THROUGHLINE__DATABASE__URL", database_url)];
    let mut process = common::spawn(&["--services", "interaction"], &env);
    let mut ingest = client(process.endpoint()).await;

    let (sender, receiver) = mpsc::channel(4);
    let mut acks = ingest
        .record_interactions(ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    // The client sends ahead of the acknowledgements, as a real ingester does, then holds
    // the stream open.
    let feeder = tokio::spawn(async move {
        for sequence in 1..=BATCHES {
            sender.send(batch(sequence)).await.unwrap();
        }
        sender.closed().await;
    });
    let mut acknowledged = BTreeSet::new();
    let mut last_acknowledged = 0;
    let mut killed = false;
    loop {
        match acks.message().await {
            Ok(Some(ack)) => {
                assert!(ack.rejected.is_empty());
                assert_eq!(ack.stored_count as usize, BATCH);
                last_acknowledged = ack.sequence;
                acknowledged.extend(ids(&batch(ack.sequence)));
                if ack.sequence == 5 && !killed {
                    // Mid-stream: batches are in flight behind this acknowledgement.
                    process.signal("KILL");
                    killed = true;
                }
            }
            Ok(None) => panic!("the stream ended without an error"),
            Err(_) => break,
        }
    }
    assert!(killed);
    feeder.abort();
    let sent = BATCHES;
    assert!(
        sent > last_acknowledged,
        "some batches were never acknowledged"
    );
    let status = process.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), None, "killed by a signal: {status:?}");

    let restarted = common::spawn(&["--services", "interaction"], &env);
    let mut client = client(restarted.endpoint()).await;
    let after_restart = stored(&mut client).await;
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !after_restart.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged interactions lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // The unacknowledged batches are resent: each interaction is then stored exactly once.
    let resend: Vec<_> = (last_acknowledged + 1..=sent).collect();
    let mut acks = client
        .record_interactions(tokio_stream::iter(
            resend
                .iter()
                .enumerate()
                .map(|(index, sequence)| {
                    let mut request = batch(*sequence);
                    request.sequence = index as i64 + 1;
                    request
                })
                .collect::<Vec<_>>(),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut resent = 0;
    while let Some(ack) = acks.message().await.unwrap() {
        assert!(ack.rejected.is_empty());
        resent += (ack.stored_count + ack.duplicate_count) as usize;
    }
    assert_eq!(resent, resend.len() * BATCH);
    let finally = stored(&mut client).await;
    assert_eq!(finally.len(), sent as usize * BATCH);
    assert!(finally.values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/throughline.db", data.path().display());
    killed_mid_ingest_keeps_every_acknowledged_interaction(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let database = TestDatabase::postgres().await;
    killed_mid_ingest_keeps_every_acknowledged_interaction(database.url()).await;
}
