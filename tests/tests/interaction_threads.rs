//! Threads across channels, customer context and contact analytics, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod interaction_support;

use interaction_support::*;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, violations};
use throughline_proto::common::v1::Channel;
use throughline_proto::google::r#type::Interval;
use throughline_proto::interaction::v1::*;
use tonic::Code;

fn new_thread(customer: &str, display_name: &str) -> Thread {
    Thread {
        customer: Some(profile(customer)),
        display_name: display_name.into(),
        reason: "loan".into(),
        ..Thread::default()
    }
}

fn in_thread(
    mut request: RecordInteractionRequest,
    thread: &str,
    step: &str,
) -> RecordInteractionRequest {
    let interaction = request.interaction.as_mut().unwrap();
    interaction.thread = thread.into();
    interaction.step = step.into();
    request
}

on_both_databases!(
    a_thread_spans_channels_and_is_resolved_and_reopened,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let create = CreateThreadRequest {
            thread: Some(new_thread("ada", "Loan application")),
            thread_id: "loan-42".into(),
            request_id: "req-1".into(),
        };
        let created = client
            .create_thread(create.clone())
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();
        assert_eq!(created.name, "threads/loan-42");
        assert_eq!(created.state, ThreadState::Open as i32);
        assert_eq!(created.profile, "profiles/ada");
        // A retry with the same request id replays the first answer.
        let replay = client
            .create_thread(create.clone())
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();
        assert_eq!(replay, created);
        let mut different = create.clone();
        different.thread.as_mut().unwrap().display_name = "Mortgage".into();
        let status = client.create_thread(different).await.unwrap_err();
        assert_eq!(violations(&status), ["request_id"]);
        let mut taken = create.clone();
        taken.request_id = "req-2".into();
        assert_eq!(
            client.create_thread(taken).await.unwrap_err().code(),
            Code::AlreadyExists
        );
        let other = client
            .create_thread(CreateThreadRequest {
                thread: Some(new_thread("ada", "Missing parcel")),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();
        assert!(other.name.starts_with("threads/"));
        let status = client
            .create_thread(CreateThreadRequest {
                thread: Some(new_thread("ada", " ")),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["thread.display_name"]);

        // Opened on the web, continued by phone; a chat from before arrives late.
        for request in [
            in_thread(
                item("w1", profile("ada"), Channel::Web, 100),
                "threads/loan-42",
                "loan-application/income",
            ),
            in_thread(
                item("p1", profile("ada"), Channel::Phone, 200),
                "threads/loan-42",
                "",
            ),
            in_thread(
                item("c1", profile("ada"), Channel::Chat, 50),
                "threads/loan-42",
                "loan-application/start",
            ),
        ] {
            client.record_interaction(request).await.unwrap();
        }
        let status = client
            .record_interaction(in_thread(
                item("u1", profile("ada"), Channel::Web, 1),
                "threads/unknown",
                "",
            ))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["interaction.thread"]);

        let thread = client
            .get_thread(GetThreadRequest {
                name: "threads/loan-42".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();
        assert_eq!(thread.interaction_count, 3);
        assert_eq!(
            thread.opened_channel,
            Channel::Chat as i32,
            "the earliest interaction's"
        );
        assert_eq!(thread.last_channel, Channel::Phone as i32);
        assert_eq!(thread.last_interaction_time, Some(at(200)));
        assert_eq!(
            thread.current_step, "loan-application/income",
            "the latest step, not the last to arrive"
        );
        let in_thread: Vec<_> = client
            .list_interactions(ListInteractionsRequest {
                thread: "threads/loan-42".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .interactions
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(
            in_thread,
            ["interactions/p1", "interactions/w1", "interactions/c1"]
        );

        // Updates go through the mask, guarded by the etag.
        let updated = client
            .update_thread(UpdateThreadRequest {
                thread: Some(Thread {
                    name: thread.name.clone(),
                    display_name: "Loan application (gold)".into(),
                    etag: thread.etag.clone(),
                    state: ThreadState::Resolved as i32,
                    ..Thread::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();
        assert_eq!(updated.display_name, "Loan application (gold)");
        assert_eq!(
            updated.state,
            ThreadState::Open as i32,
            "fields outside the mask stay"
        );
        assert_eq!(updated.current_step, thread.current_step);
        let stale = client
            .update_thread(UpdateThreadRequest {
                thread: Some(Thread {
                    name: thread.name.clone(),
                    etag: thread.etag.clone(),
                    ..Thread::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["reason".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
        let status = client
            .update_thread(UpdateThreadRequest {
                thread: Some(Thread {
                    name: thread.name.clone(),
                    ..Thread::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["state".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["update_mask.paths[0]"]);

        let resolve = ResolveThreadRequest {
            name: "threads/loan-42".into(),
            resolution: "approved".into(),
            request_id: "resolve-1".into(),
        };
        let resolved = client
            .resolve_thread(resolve.clone())
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();
        assert_eq!(resolved.state, ThreadState::Resolved as i32);
        assert_eq!(resolved.resolution, "approved");
        assert!(resolved.resolve_time.is_some());
        assert_eq!(
            client
                .resolve_thread(resolve.clone())
                .await
                .unwrap()
                .into_inner()
                .thread
                .unwrap(),
            resolved
        );
        let again = client
            .resolve_thread(ResolveThreadRequest {
                request_id: String::new(),
                ..resolve.clone()
            })
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::FailedPrecondition);

        let listed = |states: Vec<i32>| {
            let mut client = client.clone();
            async move {
                client
                    .list_threads(ListThreadsRequest {
                        customer: Some(profile("ada")),
                        states,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .threads
                    .into_iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            listed(vec![ThreadState::Open as i32]).await,
            [other.name.as_str()]
        );
        assert_eq!(
            listed(vec![ThreadState::Resolved as i32]).await,
            ["threads/loan-42"]
        );
        assert_eq!(listed(vec![]).await.len(), 2);

        // Where Ada left off: the latest per channel, and open threads only.
        let context = client
            .get_customer_context(GetCustomerContextRequest {
                customer: Some(profile("ada")),
            })
            .await
            .unwrap()
            .into_inner()
            .context
            .unwrap();
        let last: Vec<_> = context
            .last_interactions
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(
            last,
            ["interactions/p1", "interactions/w1", "interactions/c1"]
        );
        let open: Vec<_> = context
            .open_threads
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(open, [other.name.as_str()]);
        assert_eq!(context.profile, "profiles/ada");
        assert_eq!(
            context.unavailable_parts,
            [
                ContextPart::Profile as i32,
                ContextPart::Journeys as i32,
                ContextPart::Feedback as i32
            ]
        );
        assert!(context.profile_summary.is_none() && context.active_journeys.is_empty());

        let reopened = client
            .reopen_thread(ReopenThreadRequest {
                name: "threads/loan-42".into(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .thread
            .unwrap();
        assert_eq!(reopened.state, ThreadState::Open as i32);
        assert_eq!(reopened.resolution, "");
        let status = client
            .reopen_thread(ReopenThreadRequest {
                name: "threads/loan-42".into(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let context = client
            .get_customer_context(GetCustomerContextRequest {
                customer: Some(profile("ada")),
            })
            .await
            .unwrap()
            .into_inner()
            .context
            .unwrap();
        let open: Vec<_> = context
            .open_threads
            .iter()
            .map(|t| (t.name.as_str(), t.current_step.as_str()))
            .collect();
        assert_eq!(open.len(), 2);
        assert!(open.contains(&("threads/loan-42", "loan-application/income")));

        let events = |kind: &'static str| {
            let test_db = &test_db;
            async move {
                count(
                    test_db,
                    &format!("SELECT COUNT(*) FROM interaction_outbox WHERE event_type = '{kind}'"),
                )
                .await
            }
        };
        assert_eq!(events("thread.opened").await, 3, "two opened, one reopened");
        assert_eq!(events("thread.resolved").await, 1);
        let missing = client
            .get_thread(GetThreadRequest {
                name: "threads/nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        suite.stop().await;
    }
);

fn range(from_hours: f64, until_hours: f64) -> Option<Interval> {
    Some(Interval {
        start_time: Some(at(hours(from_hours))),
        end_time: Some(at(hours(until_hours))),
    })
}

fn days(days: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: days * 86_400,
        nanos: 0,
    })
}

on_both_databases!(
    contact_analytics_find_reasons_repeats_and_switches,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["interaction"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let mut outbound = contact("c2", "c", Channel::Email, "billing", hours(6.0));
        outbound.interaction.as_mut().unwrap().direction =
            throughline_proto::common::v1::Direction::Outbound as i32;
        let requests = vec![
            contact("a1", "a", Channel::Phone, "billing", hours(0.0)),
            contact("a2", "a", Channel::Chat, "billing", hours(48.0)),
            contact("a3", "a", Channel::Phone, "delivery", hours(100.0)),
            // After the window's end, but within a week of a3: a3 was repeated.
            contact("a4", "a", Channel::Phone, "delivery", hours(210.0)),
            contact("b1", "b", Channel::Web, "billing", hours(10.0)),
            contact("b2", "b", Channel::Phone, "billing", hours(10.5)),
            // More than a week after b2.
            contact("b3", "b", Channel::Phone, "billing", hours(300.0)),
            contact("c1", "c", Channel::Phone, "delivery", hours(5.0)),
            outbound,
            contact("c3", "c", Channel::Phone, "", hours(7.0)),
        ];
        client
            .batch_record_interactions(BatchRecordInteractionsRequest { requests })
            .await
            .unwrap();

        let reasons = client
            .get_contact_reasons(GetContactReasonsRequest {
                time_range: range(0.0, 200.0),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let rows: Vec<_> = reasons
            .reasons
            .iter()
            .map(|r| {
                (
                    Channel::try_from(r.channel).unwrap(),
                    r.reason.as_str(),
                    r.count,
                    r.share,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (Channel::Phone, "billing", 2, 0.4),
                (Channel::Phone, "delivery", 2, 0.4),
                (Channel::Phone, "", 1, 0.2),
                (Channel::Web, "billing", 1, 1.0),
                (Channel::Chat, "billing", 1, 1.0),
            ]
        );
        assert_eq!(reasons.total_contacts, 7);
        let top = client
            .get_contact_reasons(GetContactReasonsRequest {
                time_range: range(0.0, 200.0),
                channels: vec![Channel::Phone as i32],
                limit: 1,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(top.reasons.len(), 1);
        assert_eq!(
            (top.reasons[0].reason.as_str(), top.total_contacts),
            ("billing", 5)
        );

        let repeats = client
            .get_repeat_contact_rate(GetRepeatContactRateRequest {
                time_range: range(0.0, 200.0),
                repeat_window: days(7),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let groups: Vec<_> = repeats
            .groups
            .iter()
            .map(|g| {
                (
                    g.reason.as_str(),
                    Channel::try_from(g.channel).unwrap(),
                    g.contacts,
                    g.repeats,
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("billing", Channel::Phone, 2, 1),
                ("delivery", Channel::Phone, 2, 1),
                ("billing", Channel::Web, 1, 1),
                ("billing", Channel::Chat, 1, 0),
            ]
        );
        assert_eq!(
            (repeats.contacts, repeats.repeats, repeats.rate),
            (6, 3, 0.5)
        );
        let billing = client
            .get_repeat_contact_rate(GetRepeatContactRateRequest {
                time_range: range(0.0, 200.0),
                repeat_window: days(7),
                reason: "billing".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((billing.contacts, billing.repeats), (4, 2));
        let status = client
            .get_repeat_contact_rate(GetRepeatContactRateRequest {
                time_range: range(0.0, 200.0),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["repeat_window"]);

        let paths = client
            .get_channel_switch_paths(GetChannelSwitchPathsRequest {
                time_range: range(0.0, 200.0),
                switch_window: days(3),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let transitions: Vec<_> = paths
            .transitions
            .iter()
            .map(|t| {
                (
                    Channel::try_from(t.from_channel).unwrap(),
                    Channel::try_from(t.to_channel).unwrap(),
                    t.count,
                    t.share,
                )
            })
            .collect();
        assert_eq!(
            transitions,
            [
                (Channel::Phone, Channel::Phone, 1, 0.5),
                (Channel::Phone, Channel::Chat, 1, 0.5),
                (Channel::Web, Channel::Phone, 1, 1.0),
                (Channel::Chat, Channel::Phone, 1, 1.0),
            ]
        );
        // The default window is a day: only the quick switches remain.
        let quick = client
            .get_channel_switch_paths(GetChannelSwitchPathsRequest {
                time_range: range(0.0, 200.0),
                from_channels: vec![Channel::Web as i32, Channel::Chat as i32],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let transitions: Vec<_> = quick
            .transitions
            .iter()
            .map(|t| (t.from_channel, t.to_channel, t.count))
            .collect();
        assert_eq!(
            transitions,
            [(Channel::Web as i32, Channel::Phone as i32, 1)]
        );
        let status = client
            .get_channel_switch_paths(GetChannelSwitchPathsRequest {
                time_range: range(5.0, 1.0),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["time_range"]);
        suite.stop().await;
    }
);
