//! No interaction RPC reaches another tenant's interactions or threads: ids, customers and
//! threads of tenant A, used by tenant B, find nothing (NOT_FOUND or empty), and B's writes
//! cannot join A's threads.
#![allow(clippy::unwrap_used)]

mod interaction_support;

use interaction_support::*;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, violations};
use throughline_proto::common::v1::Channel;
use throughline_proto::google::r#type::Interval;
use throughline_proto::interaction::v1::*;
use tonic::Code;

fn threaded(id: &str, customer: &str) -> RecordInteractionRequest {
    let mut request = item(id, profile(customer), Channel::Chat, 60);
    request.interaction.as_mut().unwrap().thread = "threads/case-1".into();
    request.interaction.as_mut().unwrap().reason = "billing".into();
    request
}

fn window() -> Option<Interval> {
    Some(Interval {
        start_time: Some(at(0)),
        end_time: Some(at(86_400)),
    })
}

on_both_databases!(
    another_tenant_reaches_nothing_on_any_rpc,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut a = client(&suite, "tenant-a").await;
        let mut b = client(&suite, "tenant-b").await;

        a.create_thread(CreateThreadRequest {
            thread: Some(Thread {
                customer: Some(profile("ada")),
                display_name: "Case".into(),
                ..Thread::default()
            }),
            thread_id: "case-1".into(),
            request_id: "create-1".into(),
        })
        .await
        .unwrap();
        a.record_interaction(threaded("a-1", "ada")).await.unwrap();
        a.record_interaction(contact("a-2", "ada", Channel::Phone, "billing", 120))
            .await
            .unwrap();
        let before = a
            .get_thread(GetThreadRequest {
                name: "threads/case-1".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();

        // Reads.
        let status = b
            .get_interaction(GetInteractionRequest {
                name: "interactions/a-1".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let listed = b
            .list_interactions(ListInteractionsRequest {
                customer: Some(profile("ada")),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(listed.interactions.is_empty());
        let listed = b
            .list_interactions(ListInteractionsRequest {
                thread: "threads/case-1".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(listed.interactions.is_empty());
        let status = b
            .get_thread(GetThreadRequest {
                name: "threads/case-1".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let threads = b
            .list_threads(ListThreadsRequest {
                customer: Some(profile("ada")),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(threads.threads.is_empty());
        let context = b
            .get_customer_context(GetCustomerContextRequest {
                customer: Some(profile("ada")),
            })
            .await
            .unwrap()
            .into_inner()
            .context
            .unwrap();
        assert!(context.last_interactions.is_empty() && context.open_threads.is_empty());
        let reasons = b
            .get_contact_reasons(GetContactReasonsRequest {
                time_range: window(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(reasons.reasons.is_empty());
        assert_eq!(reasons.total_contacts, 0);
        let repeats = b
            .get_repeat_contact_rate(GetRepeatContactRateRequest {
                time_range: window(),
                repeat_window: Some(prost_types::Duration {
                    seconds: 86_400,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((repeats.contacts, repeats.groups.len()), (0, 0));
        let paths = b
            .get_channel_switch_paths(GetChannelSwitchPathsRequest {
                time_range: window(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(paths.transitions.is_empty());

        // Changes to A's thread.
        let status = b
            .update_thread(UpdateThreadRequest {
                thread: Some(Thread {
                    name: "threads/case-1".into(),
                    display_name: "Mine".into(),
                    ..Thread::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = b
            .resolve_thread(ResolveThreadRequest {
                name: "threads/case-1".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = b
            .reopen_thread(ReopenThreadRequest {
                name: "threads/case-1".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        // Writes that name A's thread, on all three recording RPCs.
        let status = b
            .record_interaction(threaded("b-1", "bob"))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["interaction.thread"]);
        let status = b
            .batch_record_interactions(BatchRecordInteractionsRequest {
                requests: vec![threaded("b-1", "bob")],
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["requests[0].interaction.thread"]);
        let mut acks = b
            .record_interactions(tokio_stream::iter([RecordInteractionsRequest {
                sequence: 1,
                requests: vec![threaded("b-1", "bob")],
            }]))
            .await
            .unwrap()
            .into_inner();
        let ack = acks.message().await.unwrap().unwrap();
        assert_eq!(ack.stored_count, 0);
        assert_eq!(ack.rejected[0].violations[0].field, "interaction.thread");

        // Ids are per tenant: B's "a-1" is B's own, and A's is untouched.
        let own = b
            .record_interaction(contact("a-1", "ada", Channel::Web, "other", 5))
            .await
            .unwrap()
            .into_inner();
        assert!(!own.duplicate);
        // B's idempotency key of the same name is B's own, too.
        let own_thread = b
            .create_thread(CreateThreadRequest {
                thread: Some(Thread {
                    customer: Some(profile("bob")),
                    display_name: "B".into(),
                    ..Thread::default()
                }),
                thread_id: "case-1".into(),
                request_id: "create-1".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();
        assert_eq!(own_thread.display_name, "B");

        let a_one = a
            .get_interaction(GetInteractionRequest {
                name: "interactions/a-1".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .interaction
            .unwrap();
        assert_eq!(a_one.channel, Channel::Chat as i32);
        let after = a
            .get_thread(GetThreadRequest {
                name: "threads/case-1".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();
        assert_eq!(after, before, "A's thread unchanged");
        let a_timeline = a
            .list_interactions(ListInteractionsRequest {
                customer: Some(profile("ada")),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a_timeline.interactions.len(), 2);
        suite.stop().await;
    }
);
