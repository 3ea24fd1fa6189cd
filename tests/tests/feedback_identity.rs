//! The profile service's identity and segment events applied to feedback, on SQLite and
//! PostgreSQL: a merge puts the merged customer's responses, invitations and follow-ups on the
//! surviving profile, an unmerge gives back exactly what was recorded for the restored one, an
//! erasure deletes everything held on the customer, and segment membership is kept over time.
#![allow(clippy::unwrap_used)]

mod feedback_support;

use feedback_support::*;
use prost::Message;
use throughline_feedback::{
    PROFILE_EVENTS_CONSUMER, PROFILE_EVENTS_SOURCE, profile_events_handler,
};
use throughline_harness::{TestDatabase, TestSuite, on_both_databases};
use throughline_proto::event::v1::{
    Event, ProfileErased, ProfileMerged, ProfileUnmerged, SegmentEntered, SegmentExited,
};
use throughline_proto::feedback::v1::*;
use throughline_runtime::events::Consumer;

fn event<M: Message>(id: &str, kind: &str, name: &str, payload: &M) -> Event {
    Event {
        id: id.into(),
        source: "profile".into(),
        spec_version: "1.0".into(),
        r#type: kind.into(),
        tenant: "acme".into(),
        data_content_type: "application/protobuf".into(),
        data: Some(prost_types::Any {
            type_url: format!("type.googleapis.com/throughline.event.v1.{name}"),
            value: payload.encode_to_vec(),
        }),
        ..Event::default()
    }
}

async fn responses_of(client: &mut Client, customer: &str) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_responses(ListResponsesRequest {
            customer: Some(profile(customer)),
            include_partial: true,
            ..ListResponsesRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .responses
        .into_iter()
        .map(|r| r.name)
        .collect();
    names.sort();
    names
}

async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    throughline_harness::query_integer(db, sql).await
}

on_both_databases!(
    merges_unmerges_and_erasure_follow_the_profile_service,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        publish(&mut client, "post-call", survey("Post-call")).await;
        let db = database(&test_db).await;
        let consumer = Consumer::new("feedback", PROFILE_EVENTS_CONSUMER, db.clone());
        let handler = profile_events_handler();
        let mut cursor = 0;
        let mut apply = |event: Event| {
            cursor += 1;
            let (consumer, handler) = (consumer.clone(), handler.clone());
            let position = format!("0-{cursor}");
            async move {
                consumer
                    .apply(PROFILE_EVENTS_SOURCE, &event, &position, &handler)
                    .await
                    .unwrap()
            }
        };
        let responder = client.clone();
        let respond = |customer: &'static str, nps: i32, request_id: &'static str| {
            let mut client = responder.clone();
            async move {
                submit(
                    &mut client,
                    uninvited(
                        "surveys/post-call",
                        profile(customer),
                        FeedbackContext::default(),
                        vec![score("nps", nps), free_text("reason", "It was fine")],
                    ),
                    request_id,
                )
                .await
                .unwrap()
                .name
            }
        };
        let anon = respond("anon", 2, "r-anon").await;
        let known = respond("known", 9, "r-known").await;

        apply(event(
            "m1",
            "profile.merged",
            "ProfileMerged",
            &ProfileMerged {
                merge_event: "mergeEvents/m1".into(),
                source_profile: "profiles/anon".into(),
                target_profile: "profiles/known".into(),
            },
        ))
        .await;
        let mut both = vec![anon.clone(), known.clone()];
        both.sort();
        assert_eq!(responses_of(&mut client, "known").await, both);
        assert!(responses_of(&mut client, "anon").await.is_empty());
        let follow_ups = client
            .list_follow_ups(ListFollowUpsRequest {
                profile: "profiles/known".into(),
                ..ListFollowUpsRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .follow_ups;
        assert_eq!(follow_ups.len(), 1, "the merged customer's follow-up moved");
        // Metrics rows moved with their responses.
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM feedback_scores WHERE profile = 'profiles/known'"
            )
            .await,
            2
        );
        // Answered after the merge: the surviving profile's own.
        let later = respond("known", 10, "r-later").await;

        apply(event(
            "u1",
            "profile.unmerged",
            "ProfileUnmerged",
            &ProfileUnmerged {
                merge_event: "mergeEvents/m1".into(),
                source_profile: "profiles/anon".into(),
                target_profile: "profiles/known".into(),
                merge_time: None,
            },
        ))
        .await;
        assert_eq!(responses_of(&mut client, "anon").await, vec![anon.clone()]);
        let mut known_now = vec![known.clone(), later];
        known_now.sort();
        assert_eq!(responses_of(&mut client, "known").await, known_now);
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM feedback_texts WHERE profile = 'profiles/anon'"
            )
            .await,
            1
        );

        apply(event(
            "s1",
            "segment.entered",
            "SegmentEntered",
            &SegmentEntered {
                segment: "segments/vip".into(),
                profile: "profiles/known".into(),
            },
        ))
        .await;
        apply(event(
            "s2",
            "segment.exited",
            "SegmentExited",
            &SegmentExited {
                segment: "segments/vip".into(),
                profile: "profiles/known".into(),
            },
        ))
        .await;
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM feedback_segment_members \
                 WHERE segment = 'segments/vip' AND exit_us IS NOT NULL"
            )
            .await,
            1
        );

        apply(event(
            "e1",
            "profile.erased",
            "ProfileErased",
            &ProfileErased {
                profile: "profiles/known".into(),
                merged_profiles: vec![],
            },
        ))
        .await;
        assert!(responses_of(&mut client, "known").await.is_empty());
        assert_eq!(responses_of(&mut client, "anon").await, vec![anon]);
        // Metrics stop counting what was erased.
        let now = throughline_runtime::time::now_us();
        let day = 86_400_000_000;
        let counted = client
            .get_metrics(GetMetricsRequest {
                filter: Some(MetricFilter {
                    time_range: Some(throughline_proto::google::r#type::Interval {
                        start_time: Some(throughline_runtime::time::timestamp(now - day)),
                        end_time: Some(throughline_runtime::time::timestamp(now + day)),
                    }),
                    ..MetricFilter::default()
                }),
                ..GetMetricsRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .overall
            .unwrap();
        assert_eq!(
            counted.response_count, 1,
            "only the anonymous response is left"
        );
        for table in [
            "feedback_scores",
            "feedback_texts",
            "feedback_responses",
            "feedback_follow_ups",
            "feedback_segment_members",
        ] {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE profile = 'profiles/known'");
            assert_eq!(count(&db, &sql).await, 0, "{table}");
        }
        suite.stop().await;
    }
);
