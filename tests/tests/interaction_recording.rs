//! Recording interactions on SQLite and PostgreSQL: idempotent by id on all three RPCs, batches
//! all or nothing with every bad item named, streamed batches acknowledged one by one with
//! their valid items stored, and timelines read back newest first in pages.
#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use prost_types::Timestamp;
use throughline_harness::{
    TestDatabase, TestSuite, on_both_databases, query_integer, token, violations,
};
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::common::v1::{Channel, CustomerRef, Direction, Identifier, IdentifierType};
use throughline_proto::event::v1::{InteractionRecorded, SubscribeRequest, subscribe_response};
use throughline_proto::google::r#type::Interval;
use throughline_proto::interaction::v1::interaction_service_client::InteractionServiceClient;
use throughline_proto::interaction::v1::*;
use throughline_runtime::db;
use tonic::Code;

type Client = InteractionServiceClient<throughline_harness::Authenticated>;

const BASE: i64 = 1_750_000_000;

async fn client(suite: &TestSuite, tenant: &str) -> Client {
    suite
        .clients(&token(tenant, &["interaction:read", "interaction:write"]))
        .await
        .interaction
}

fn profile(id: &str) -> CustomerRef {
    CustomerRef {
        customer: Some(Customer::Profile(format!("profiles/{id}"))),
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp {
        seconds: BASE + seconds,
        nanos: 0,
    }
}

fn item(
    id: &str,
    customer: CustomerRef,
    channel: Channel,
    seconds: i64,
) -> RecordInteractionRequest {
    RecordInteractionRequest {
        interaction_id: id.into(),
        interaction: Some(Interaction {
            customer: Some(customer),
            channel: channel as i32,
            direction: Direction::Inbound as i32,
            r#type: "page_view".into(),
            occur_time: Some(at(seconds)),
            ..Interaction::default()
        }),
    }
}

async fn count(test_db: &TestDatabase, sql: &str) -> i64 {
    let config = TestSuite::config(&["interaction"], test_db, &[]);
    let db = db::connect(&config.database, "interaction").await.unwrap();
    query_integer(&db, sql).await
}

on_both_databases!(
    recording_is_idempotent_by_interaction_id,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let mut request = item("web-1", profile("p1"), Channel::Web, 10);
        request.interaction.as_mut().unwrap().attributes = Some(prost_types::Struct {
            fields: [(
                "url".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("/cart".into())),
                },
            )]
            .into(),
        });
        let first = client
            .record_interaction(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(!first.duplicate);
        let stored = first.interaction.unwrap();
        assert_eq!(stored.name, "interactions/web-1");
        assert_eq!(stored.profile, "profiles/p1");
        assert!(stored.record_time.is_some());

        let again = client
            .record_interaction(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(again.duplicate);
        assert_eq!(
            again.interaction.unwrap(),
            stored,
            "the stored interaction is returned"
        );

        // The same id for different content is refused, naming the id.
        let mut different = request.clone();
        different.interaction.as_mut().unwrap().reason = "billing".into();
        let refused = client.record_interaction(different).await.unwrap_err();
        assert_eq!(violations(&refused), ["interaction_id"]);

        let fetched = client
            .get_interaction(GetInteractionRequest {
                name: "interactions/web-1".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .interaction
            .unwrap();
        assert_eq!(fetched, stored);

        // Batch and stream recognise the id too.
        let batch = client
            .batch_record_interactions(BatchRecordInteractionsRequest {
                requests: vec![
                    request.clone(),
                    item("web-2", profile("p1"), Channel::Web, 11),
                ],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(batch.duplicate_count, 1);
        assert_eq!(batch.interactions[0], stored);
        assert_eq!(batch.interactions[1].name, "interactions/web-2");
        let acks: Vec<_> = client
            .record_interactions(tokio_stream::iter([RecordInteractionsRequest {
                sequence: 1,
                requests: vec![request, item("web-2", profile("p1"), Channel::Web, 11)],
            }]))
            .await
            .unwrap()
            .into_inner()
            .collect_acks()
            .await;
        assert_eq!((acks[0].stored_count, acks[0].duplicate_count), (0, 2));

        assert_eq!(
            count(&test_db, "SELECT COUNT(*) FROM interaction_interactions").await,
            2
        );
        assert_eq!(
            count(
                &test_db,
                "SELECT COUNT(*) FROM interaction_outbox WHERE event_type = 'interaction.recorded'"
            )
            .await,
            2,
            "one event per stored interaction, none for duplicates"
        );
        // The events are readable from the service's event log, in order, with their payloads.
        let mut events = suite
            .clients(&token("acme", &["events:read"]))
            .await
            .events
            .subscribe(SubscribeRequest {
                source: "interaction".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut recorded = Vec::new();
        while recorded.len() < 2 {
            let item = events.message().await.unwrap().unwrap();
            if let Some(subscribe_response::Item::Event(event)) = item.item {
                assert_eq!(
                    (event.r#type.as_str(), event.subject.as_str()),
                    ("interaction.recorded", "profiles/p1")
                );
                let payload =
                    InteractionRecorded::decode(event.data.unwrap().value.as_slice()).unwrap();
                recorded.push((payload.interaction, payload.attributes.is_some()));
            }
        }
        // A subscription left open would hold the suite's graceful stop.
        drop(events);
        assert_eq!(
            recorded,
            [
                ("interactions/web-1".to_owned(), true),
                ("interactions/web-2".to_owned(), false)
            ]
        );
        let missing = client
            .get_interaction(GetInteractionRequest {
                name: "interactions/nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        suite.stop().await;
    }
);

trait CollectAcks {
    async fn collect_acks(self) -> Vec<RecordInteractionsResponse>;
}

impl CollectAcks for tonic::Streaming<RecordInteractionsResponse> {
    async fn collect_acks(mut self) -> Vec<RecordInteractionsResponse> {
        let mut acks = Vec::new();
        while let Some(ack) = self.message().await.unwrap() {
            acks.push(ack);
        }
        acks
    }
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

on_both_databases!(
    a_batch_is_all_or_nothing_and_names_each_bad_item,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let mut requests: Vec<_> = (0..10)
            .map(|i| item(&format!("b-{i}"), profile("p1"), Channel::Chat, i))
            .collect();
        requests[3].interaction.as_mut().unwrap().channel = 99;
        requests[5].interaction.as_mut().unwrap().occur_time = Some(Timestamp {
            seconds: now_seconds() + 3 * 365 * 86_400,
            nanos: 0,
        });
        requests[7].interaction.as_mut().unwrap().attributes = Some(prost_types::Struct {
            fields: [(
                "blob".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("x".repeat(20_000))),
                },
            )]
            .into(),
        });
        requests[8].interaction.as_mut().unwrap().customer = Some(CustomerRef {
            customer: Some(Customer::Identifier(Identifier {
                r#type: IdentifierType::CrmId as i32,
                value: "0031".into(),
                source: String::new(),
            })),
        });
        let status = client
            .batch_record_interactions(BatchRecordInteractionsRequest {
                requests: requests.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "requests[3].interaction.channel",
                "requests[5].interaction.occur_time",
                "requests[7].interaction.attributes",
                "requests[8].interaction.customer.identifier.source",
            ]
        );
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) FROM interaction_interactions").await,
            0,
            "nothing of a refused batch is stored"
        );

        let over: Vec<_> = (0..1001)
            .map(|i| item(&format!("o-{i}"), profile("p1"), Channel::Web, i))
            .collect();
        let status = client
            .batch_record_interactions(BatchRecordInteractionsRequest { requests: over })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["requests"]);
        let status = client
            .batch_record_interactions(BatchRecordInteractionsRequest { requests: vec![] })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["requests"]);

        // Exactly 1000 is accepted, with identifiers stored as given.
        let full: Vec<_> = (0..1000)
            .map(|i| {
                let customer = CustomerRef {
                    customer: Some(Customer::Identifier(Identifier {
                        r#type: IdentifierType::Email as i32,
                        value: format!("Customer{}@Example.com", i % 7),
                        source: String::new(),
                    })),
                };
                item(&format!("f-{i}"), customer, Channel::Email, i)
            })
            .collect();
        let response = client
            .batch_record_interactions(BatchRecordInteractionsRequest { requests: full })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.interactions.len(), 1000);
        assert_eq!(response.duplicate_count, 0);
        assert_eq!(
            response.interactions[3].profile, "",
            "an identifier is not resolved"
        );
        let listed = client
            .list_interactions(ListInteractionsRequest {
                customer: Some(CustomerRef {
                    customer: Some(Customer::Identifier(Identifier {
                        r#type: IdentifierType::Email as i32,
                        value: "customer3@example.com".into(),
                        source: String::new(),
                    })),
                }),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            listed.interactions.len(),
            143,
            "every 7th of 1000, from index 3"
        );
        suite.stop().await;
    }
);

fn batch(sequence: i64, ids: std::ops::Range<usize>) -> RecordInteractionsRequest {
    RecordInteractionsRequest {
        sequence,
        requests: ids
            .map(|i| {
                item(
                    &format!("s-{i}"),
                    profile(&format!("c{}", i % 5)),
                    Channel::MobileApp,
                    i as i64,
                )
            })
            .collect(),
    }
}

on_both_databases!(
    a_stream_acknowledges_each_batch_and_keeps_valid_items,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let mut second = batch(2, 100..200);
        second.requests[7].interaction.as_mut().unwrap().channel = 42;
        second.requests[9].interaction_id = "bad id".into();
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let mut acks = client
            .record_interactions(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        sender.send(batch(1, 0..100)).await.unwrap();
        let first = acks.message().await.unwrap().unwrap();
        assert_eq!((first.sequence, first.stored_count), (1, 100));
        assert!(first.rejected.is_empty());
        sender.send(second).await.unwrap();
        sender.send(batch(3, 200..300)).await.unwrap();
        let ack = acks.message().await.unwrap().unwrap();
        assert_eq!(
            (ack.sequence, ack.stored_count, ack.duplicate_count),
            (2, 98, 0)
        );
        let rejected: Vec<_> = ack
            .rejected
            .iter()
            .map(|r| {
                (
                    r.index,
                    r.violations[0].field.as_str(),
                    r.violations[0].reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rejected,
            [
                (7, "interaction.channel", "UNKNOWN_CHANNEL"),
                (9, "interaction_id", "INVALID_FORMAT")
            ]
        );
        assert_eq!(ack.rejected[0].interaction_id, "s-107");
        let third = acks.message().await.unwrap().unwrap();
        assert_eq!((third.sequence, third.stored_count), (3, 100));
        // A sequence that does not increase ends the stream; what was acknowledged stays.
        sender.send(batch(3, 300..310)).await.unwrap();
        let status = acks.message().await.unwrap_err();
        assert_eq!(violations(&status), ["sequence"]);
        drop(sender);
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) FROM interaction_interactions").await,
            298
        );

        // Resending an acknowledged batch on a new stream stores nothing twice.
        let acks = client
            .record_interactions(tokio_stream::iter([batch(1, 0..100), batch(2, 300..1301)]))
            .await
            .unwrap()
            .into_inner()
            .message_until_error()
            .await;
        assert_eq!(acks.0.len(), 1);
        assert_eq!(
            (acks.0[0].stored_count, acks.0[0].duplicate_count),
            (0, 100)
        );
        assert_eq!(
            violations(&acks.1.unwrap()),
            ["requests"],
            "over 1000 items"
        );
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) FROM interaction_interactions").await,
            298
        );
        suite.stop().await;
    }
);

on_both_databases!(
    batches_sent_ahead_are_acknowledged_in_order,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        // Forty batches sent before any acknowledgement is read: the server works on several
        // at once. Batch 10 repeats batch 9's items, every item of batch 20 is invalid, and
        // one item of batch 30 reuses an id of batch 29 for different content.
        let mut batches: Vec<_> = (1..=40)
            .map(|sequence| {
                let first = (sequence as usize - 1) * 50;
                batch(sequence, first..first + 50)
            })
            .collect();
        batches[9].requests = batches[8].requests.clone();
        for request in &mut batches[19].requests {
            request.interaction.as_mut().unwrap().channel = 42;
        }
        batches[29].requests[0].interaction_id = batches[28].requests[0].interaction_id.clone();
        let (acks, error) = client
            .record_interactions(tokio_stream::iter(batches))
            .await
            .unwrap()
            .into_inner()
            .message_until_error()
            .await;
        assert!(error.is_none(), "{error:?}");
        let seen: Vec<_> = acks
            .iter()
            .map(|ack| {
                (
                    ack.sequence,
                    ack.stored_count,
                    ack.duplicate_count,
                    ack.rejected.len(),
                )
            })
            .collect();
        let expected: Vec<_> = (1..=40)
            .map(|sequence| match sequence {
                10 => (10, 0, 50, 0),
                20 => (20, 0, 0, 50),
                30 => (30, 49, 0, 1),
                _ => (sequence, 50, 0, 0),
            })
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(acks[29].rejected[0].violations[0].reason, "ID_REUSED");
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) FROM interaction_interactions").await,
            37 * 50 + 49
        );
        suite.stop().await;
    }
);

trait UntilError {
    async fn message_until_error(self) -> (Vec<RecordInteractionsResponse>, Option<tonic::Status>);
}

impl UntilError for tonic::Streaming<RecordInteractionsResponse> {
    async fn message_until_error(
        mut self,
    ) -> (Vec<RecordInteractionsResponse>, Option<tonic::Status>) {
        let mut acks = Vec::new();
        loop {
            match self.message().await {
                Ok(Some(ack)) => acks.push(ack),
                Ok(None) => return (acks, None),
                Err(status) => return (acks, Some(status)),
            }
        }
    }
}

on_both_databases!(
    a_timeline_pages_newest_first_with_filters,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let channels = [Channel::Web, Channel::Email, Channel::Phone];
        let mut requests: Vec<_> = (0..45)
            .map(|i| {
                let mut request = item(
                    &format!("t-{i:02}"),
                    profile("ada"),
                    channels[i % 3],
                    i as i64 * 60,
                );
                if i % 5 == 0 {
                    request.interaction.as_mut().unwrap().r#type = "cart.updated".into();
                }
                request
            })
            .collect();
        // Another customer's interactions never show.
        requests.extend((0..10).map(|i| item(&format!("x-{i}"), profile("bob"), Channel::Web, i)));
        // Two at the same time: the id breaks the tie.
        requests.push(item("t-tie", profile("ada"), Channel::Web, 44 * 60));
        client
            .batch_record_interactions(BatchRecordInteractionsRequest { requests })
            .await
            .unwrap();

        let mut pages = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_interactions(ListInteractionsRequest {
                    customer: Some(profile("ada")),
                    page_size: 20,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            pages.push(
                page.interactions
                    .iter()
                    .map(|i| i.name.clone())
                    .collect::<Vec<_>>(),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [20, 20, 6]);
        let all: Vec<String> = pages.concat();
        let mut expected: Vec<String> = (0..45)
            .rev()
            .map(|i| format!("interactions/t-{i:02}"))
            .collect();
        expected.insert(0, "interactions/t-tie".into());
        assert_eq!(all, expected, "newest first, ties by id descending");

        let filtered = client
            .list_interactions(ListInteractionsRequest {
                customer: Some(profile("ada")),
                channels: vec![Channel::Email as i32],
                types: vec!["cart.updated".into()],
                occur_time_range: Some(Interval {
                    start_time: Some(at(10 * 60)),
                    end_time: Some(at(40 * 60)),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let names: Vec<_> = filtered
            .interactions
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        // Email is every third from 1; cart.updated every fifth: 10 and 25 (40 is the end).
        assert_eq!(names, ["interactions/t-25", "interactions/t-10"]);

        // A token is bound to its filters.
        let first = client
            .list_interactions(ListInteractionsRequest {
                customer: Some(profile("ada")),
                page_size: 5,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let status = client
            .list_interactions(ListInteractionsRequest {
                customer: Some(profile("ada")),
                channels: vec![Channel::Web as i32],
                page_size: 5,
                page_token: first.next_page_token,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["page_token"]);
        let status = client
            .list_interactions(ListInteractionsRequest {
                customer: Some(profile("ada")),
                channels: vec![77],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["channels[0]"]);
        let status = client
            .list_interactions(ListInteractionsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["customer"]);
        suite.stop().await;
    }
);

on_both_databases!(
    concurrent_readers_each_get_their_own_page,
    |test_db: TestDatabase| async move {
        // Concurrent ListInteractions calls are read together (one statement for many pages):
        // each caller must still get exactly the page it asked for.
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let client = client(&suite, "acme").await;
        let channels = [Channel::Web, Channel::Email, Channel::Phone];
        let requests: Vec<_> = (0..12)
            .flat_map(|c| {
                (0..(3 + c * 2)).map(move |i| {
                    item(
                        &format!("c{c}-{i:02}"),
                        profile(&format!("c{c}")),
                        channels[i % 3],
                        i as i64 * 60,
                    )
                })
            })
            .collect();
        client
            .clone()
            .batch_record_interactions(BatchRecordInteractionsRequest { requests })
            .await
            .unwrap();
        let asks: Vec<ListInteractionsRequest> = (0..48)
            .map(|n| ListInteractionsRequest {
                customer: Some(profile(&format!("c{}", n % 12))),
                page_size: 2 + n % 5,
                // One channel, two channels or all: pages of one channel at most and pages of
                // several are read on different connections, and a batch mixes them.
                channels: match n % 4 {
                    0 => vec![Channel::Email as i32],
                    2 => vec![Channel::Email as i32, Channel::Phone as i32],
                    _ => Vec::new(),
                },
                ..Default::default()
            })
            .collect();
        let names = |page: ListInteractionsResponse| {
            let names: Vec<String> = page.interactions.into_iter().map(|i| i.name).collect();
            (names, page.next_page_token.is_empty())
        };
        let mut pages = Vec::new();
        for ask in &asks {
            let page = client.clone().list_interactions(ask.clone()).await.unwrap();
            pages.push(page.into_inner());
        }
        // Each ask twice at once: two callers of one page share its read and its encoding.
        let together = futures::future::join_all(asks.iter().chain(&asks).map(|ask| {
            let mut client = client.clone();
            let ask = ask.clone();
            async move { client.list_interactions(ask).await.unwrap().into_inner() }
        }))
        .await;
        assert_eq!(together, [pages.clone(), pages.clone()].concat());
        let alone: Vec<_> = pages.into_iter().map(names).collect();
        // The pages are the customers' own: c5 has 13 (asked for 2); c8 has 19, every third
        // from the second by email (asked for 2 by email).
        assert_eq!(alone[5].0, ["interactions/c5-12", "interactions/c5-11"]);
        assert_eq!(alone[20].0, ["interactions/c8-16", "interactions/c8-13"]);
        assert!(!alone[20].1, "more of c8's email follow");
        // c2 has 7: every third from the second by email, from the third by phone (asked for 4).
        assert_eq!(
            alone[2].0,
            [
                "interactions/c2-05",
                "interactions/c2-04",
                "interactions/c2-02",
                "interactions/c2-01"
            ]
        );
        assert!(alone[2].1, "no more of c2's email or phone");
        suite.stop().await;
    }
);

on_both_databases!(
    concurrent_writers_store_each_id_once,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let client = client(&suite, "acme").await;
        // Eight callers record the same 200 interactions at once, half by batch, half by stream.
        let calls = (0..8).map(|caller| {
            let mut client = client.clone();
            async move {
                let requests: Vec<_> = (0..200)
                    .map(|i| {
                        item(
                            &format!("same-{i}"),
                            profile(&format!("c{}", i % 3)),
                            Channel::Web,
                            i,
                        )
                    })
                    .collect();
                if caller % 2 == 0 {
                    let response = client
                        .batch_record_interactions(BatchRecordInteractionsRequest { requests })
                        .await
                        .unwrap()
                        .into_inner();
                    (200 - response.duplicate_count, response.duplicate_count)
                } else {
                    let acks = client
                        .record_interactions(tokio_stream::iter([RecordInteractionsRequest {
                            sequence: 1,
                            requests,
                        }]))
                        .await
                        .unwrap()
                        .into_inner()
                        .collect_acks()
                        .await;
                    (acks[0].stored_count, acks[0].duplicate_count)
                }
            }
        });
        let outcomes = futures::future::join_all(calls).await;
        let stored: i32 = outcomes.iter().map(|(stored, _)| stored).sum();
        let duplicates: i32 = outcomes.iter().map(|(_, duplicates)| duplicates).sum();
        assert_eq!((stored, duplicates), (200, 1400));
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) FROM interaction_interactions").await,
            200
        );
        assert_eq!(
            count(&test_db, "SELECT COUNT(*) FROM interaction_outbox").await,
            200,
            "one event per interaction"
        );
        suite.stop().await;
    }
);
