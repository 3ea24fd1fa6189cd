//! Responses and follow-ups through the real gRPC API on SQLite and PostgreSQL: uninvited and
//! invited answers, partial responses completed over several calls, idempotent retries,
//! sentiment, answers refused with the field named, expired invitations, detractor follow-ups
//! with their events, and tenant isolation.
#![allow(clippy::unwrap_used)]

mod feedback_support;

use std::time::Duration;

use feedback_support::*;
use prost::Message;
use prost_types::FieldMask;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, violations};
use throughline_proto::common::v1::Channel;
use throughline_proto::event::v1::{FeedbackDetractor, FeedbackResponded, FollowUpUpdated};
use throughline_proto::feedback::v1::answer::Value;
use throughline_proto::feedback::v1::*;
use tonic::Code;
use tonic_types::StatusExt;

fn call_centre() -> FeedbackContext {
    FeedbackContext {
        interaction: "interactions/call-1".into(),
        channel: Channel::Phone as i32,
        touchpoint: "ivr-billing".into(),
        ..FeedbackContext::default()
    }
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

on_both_databases!(
    concurrent_submissions_written_together_each_count_once,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        publish(&mut client, "post-call", survey("Post-call")).await;
        // 60 submissions at once, each sent twice at the same moment under its request id;
        // every fifth a detractor, so follow-ups open in the same transactions.
        let calls = (0..120).map(|call| {
            let mut client = client.clone();
            let index = call / 2;
            async move {
                let nps = if index % 5 == 0 { 2 } else { 9 };
                let response = uninvited(
                    "surveys/post-call",
                    profile(&format!("c-{index}")),
                    call_centre(),
                    vec![score("nps", nps)],
                );
                (
                    index,
                    submit(&mut client, response, &format!("burst-{index}")).await,
                )
            }
        });
        let answers = futures::future::join_all(calls).await;
        let mut by_request = std::collections::HashMap::new();
        for (index, answer) in answers {
            // A twin still in flight may be told to retry; none may fail otherwise.
            match answer {
                Ok(response) => {
                    let first = by_request.entry(index).or_insert_with(|| response.clone());
                    assert_eq!(*first, response, "both twins get the one response");
                }
                Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
            }
        }
        assert_eq!(
            by_request.len(),
            60,
            "every submission answered at least once"
        );

        // The same request id with a different request is refused.
        let other = uninvited(
            "surveys/post-call",
            profile("someone-else"),
            call_centre(),
            vec![score("nps", 10)],
        );
        let refused = submit(&mut client, other.clone(), "burst-0")
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        // So is a request id longer than a key takes, named as the field at fault.
        let too_long = submit(&mut client, other, &"x".repeat(129))
            .await
            .unwrap_err();
        assert_eq!(too_long.code(), Code::InvalidArgument);
        assert_eq!(violations(&too_long), ["request_id"]);

        let feedback_db = database(&db).await;
        assert_eq!(
            events(&feedback_db, "acme", "feedback.responded")
                .await
                .len(),
            60
        );
        assert_eq!(
            events(&feedback_db, "acme", "feedback.detractor")
                .await
                .len(),
            12
        );
        let follow_ups = client
            .list_follow_ups(ListFollowUpsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .follow_ups;
        assert_eq!(follow_ups.len(), 12);
        suite.stop().await;
    }
);

on_both_databases!(
    uninvited_responses_are_recorded_once_with_sentiment,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        publish(&mut client, "post-call", survey("Post-call")).await;

        let response = uninvited(
            "surveys/post-call",
            profile("ada"),
            call_centre(),
            vec![
                score("nps", 10),
                free_text("reason", "The agent was wonderful and so helpful!"),
            ],
        );
        let first = submit(&mut client, response.clone(), "r-1").await.unwrap();
        assert!(first.name.starts_with("responses/"));
        assert!(first.complete, "the only required question is answered");
        assert!(!first.detractor);
        assert_eq!(first.survey_version, 1);
        assert_eq!(first.profile, "profiles/ada");
        assert_eq!(first.context.as_ref().unwrap().touchpoint, "ivr-billing");
        let sentiment = first.answers[1].sentiment.unwrap();
        assert_eq!(sentiment.label, SentimentLabel::Positive as i32);
        assert!(sentiment.score > 0.5, "{sentiment:?}");

        // A retry is answered with the first response; a new request is a new response.
        let retry = submit(&mut client, response.clone(), "r-1").await.unwrap();
        assert_eq!(retry, first);
        let second = submit(&mut client, response, "r-2").await.unwrap();
        assert_ne!(second.name, first.name);
        let listed = client
            .list_responses(ListResponsesRequest {
                survey: "surveys/post-call".into(),
                ..ListResponsesRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .responses;
        assert_eq!(listed.len(), 2);
        let fetched = client
            .get_response(GetResponseRequest {
                name: first.name.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .response
            .unwrap();
        assert_eq!(fetched, first);

        let feedback_db = database(&db).await;
        let responded = events(&feedback_db, "acme", "feedback.responded").await;
        assert_eq!(
            responded.len(),
            2,
            "one event per response, none for the retry"
        );
        let payload =
            FeedbackResponded::decode(responded[0].data.as_ref().unwrap().value.as_slice())
                .unwrap();
        assert_eq!(payload.nps_score, Some(10));
        assert_eq!(payload.interaction, "interactions/call-1");
        assert!(payload.complete);
        suite.stop().await;
    }
);

on_both_databases!(
    invited_answers_accumulate_until_the_response_is_complete,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        publish(&mut client, "post-call", survey("Post-call")).await;
        let invitation = invite(&mut client, "surveys/post-call", profile("ada"), "i-1").await;
        assert_eq!(invitation.state, InvitationState::Pending as i32);
        assert!(
            invitation
                .survey_url
                .ends_with(invitation.name.trim_start_matches("invitations/"))
        );

        let partial = answer(&mut client, &invitation.name, vec![score("csat", 4)], "a-1")
            .await
            .unwrap();
        assert!(!partial.complete);
        assert_eq!(partial.invitation, invitation.name);
        assert_eq!(partial.profile, "profiles/ada", "taken from the invitation");
        let state = |client: &mut Client| {
            let mut client = client.clone();
            let name = invitation.name.clone();
            async move {
                client
                    .get_invitation(GetInvitationRequest { name })
                    .await
                    .unwrap()
                    .into_inner()
                    .invitation
                    .unwrap()
            }
        };
        let seen = state(&mut client).await;
        assert_eq!(seen.state, InvitationState::PartiallyAnswered as i32);
        assert_eq!(seen.response, partial.name);
        // Partial responses are listed only on request.
        let list = |include_partial| ListResponsesRequest {
            include_partial,
            ..ListResponsesRequest::default()
        };
        let complete_only = client.list_responses(list(false)).await.unwrap();
        assert!(complete_only.into_inner().responses.is_empty());
        let with_partial = client.list_responses(list(true)).await.unwrap();
        assert_eq!(with_partial.into_inner().responses.len(), 1);

        // A later call adds its answers and replaces an earlier answer to the same question.
        let done = answer(
            &mut client,
            &invitation.name,
            vec![score("nps", 9), score("csat", 5)],
            "a-2",
        )
        .await
        .unwrap();
        assert_eq!(done.name, partial.name, "one response per invitation");
        assert!(done.complete);
        assert!(done.complete_time.is_some());
        let values: Vec<_> = done
            .answers
            .iter()
            .map(|a| (a.question_id.as_str(), a.value.clone()))
            .collect();
        assert_eq!(
            values,
            [
                ("nps", Some(Value::Score(9))),
                ("csat", Some(Value::Score(5)))
            ]
        );
        assert_eq!(
            state(&mut client).await.state,
            InvitationState::Answered as i32
        );

        let again = answer(&mut client, &invitation.name, vec![score("ces", 2)], "a-3")
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::FailedPrecondition);
        assert_eq!(reason(&again), "RESPONSE_COMPLETE");
        suite.stop().await;
    }
);

on_both_databases!(
    bad_answers_and_expired_invitations_are_refused_with_the_field_named,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        publish(&mut client, "post-call", survey("Post-call")).await;

        let bad = uninvited(
            "surveys/post-call",
            profile("ada"),
            call_centre(),
            vec![
                score("nps", 11),
                score("unknown", 1),
                free_text("csat", "great"),
                Answer {
                    question_id: "topic".into(),
                    value: Some(Value::ChoiceId("weather".into())),
                    sentiment: None,
                },
            ],
        );
        let status = submit(&mut client, bad, "bad-1").await.unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "response.answers[0]",
                "response.answers[1].question_id",
                "response.answers[2]",
                "response.answers[3]"
            ]
        );
        let mut no_customer = uninvited("surveys/post-call", profile("ada"), call_centre(), vec![]);
        no_customer.customer = None;
        no_customer.response_channel = 999;
        let status = submit(&mut client, no_customer, "bad-2").await.unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "response.response_channel",
                "response.answers",
                "response.customer"
            ]
        );
        let status = submit(
            &mut client,
            uninvited(
                "surveys/post-call",
                profile("ada"),
                call_centre(),
                vec![score("nps", 1)],
            ),
            "",
        )
        .await
        .unwrap_err();
        assert_eq!(violations(&status), ["request_id"]);
        // A response to a survey that does not exist.
        let status = submit(
            &mut client,
            uninvited(
                "surveys/nope",
                profile("ada"),
                call_centre(),
                vec![score("nps", 1)],
            ),
            "bad-3",
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        // An invitation that has expired accepts no answers.
        let mut short = survey("Short-lived");
        short.invitation_ttl = Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        });
        publish(&mut client, "short", short).await;
        let invitation = invite(&mut client, "surveys/short", profile("bo"), "i-short").await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let status = answer(&mut client, &invitation.name, vec![score("nps", 9)], "late")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(reason(&status), "INVITATION_EXPIRED");
        // It shows as expired, and lists by state as it shows.
        let shown = client
            .get_invitation(GetInvitationRequest {
                name: invitation.name.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .invitation
            .unwrap();
        assert_eq!(shown.state, InvitationState::Expired as i32);
        let listed = |state: InvitationState| ListInvitationsRequest {
            states: vec![state as i32],
            ..ListInvitationsRequest::default()
        };
        let expired = client
            .list_invitations(listed(InvitationState::Expired))
            .await;
        assert_eq!(expired.unwrap().into_inner().invitations, vec![shown]);
        let pending = client
            .list_invitations(listed(InvitationState::Pending))
            .await;
        assert!(pending.unwrap().into_inner().invitations.is_empty());
        suite.stop().await;
    }
);

on_both_databases!(
    a_detractor_opens_a_follow_up_worked_until_resolved,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        publish(&mut client, "post-call", survey("Post-call")).await;
        let response = submit(
            &mut client,
            uninvited(
                "surveys/post-call",
                profile("ada"),
                call_centre(),
                vec![
                    score("nps", 3),
                    free_text("reason", "I waited forty minutes, awful."),
                ],
            ),
            "d-1",
        )
        .await
        .unwrap();
        assert!(response.detractor);
        assert_eq!(
            response.answers[1].sentiment.unwrap().label,
            SentimentLabel::Negative as i32
        );
        let follow_up = client
            .get_follow_up(GetFollowUpRequest {
                name: response.follow_up.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .follow_up
            .unwrap();
        assert_eq!(follow_up.state, FollowUpState::Open as i32);
        assert_eq!(
            (follow_up.question_id.as_str(), follow_up.score),
            ("nps", 3)
        );
        assert_eq!(follow_up.response, response.name);
        assert_eq!(follow_up.profile, "profiles/ada");
        // A passive answer opens none.
        let passive = submit(
            &mut client,
            uninvited(
                "surveys/post-call",
                profile("bo"),
                call_centre(),
                vec![score("nps", 8)],
            ),
            "d-2",
        )
        .await
        .unwrap();
        assert!(!passive.detractor && passive.follow_up.is_empty());

        let update = |follow_up: FollowUp, paths: &[&str]| UpdateFollowUpRequest {
            follow_up: Some(follow_up),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| (*p).into()).collect(),
            }),
        };
        let contacted = client
            .update_follow_up(update(
                FollowUp {
                    state: FollowUpState::Contacted as i32,
                    owner: "team-care".into(),
                    ..follow_up.clone()
                },
                &["state", "owner"],
            ))
            .await
            .unwrap()
            .into_inner()
            .follow_up
            .unwrap();
        assert_eq!(contacted.owner, "team-care");
        assert_ne!(contacted.etag, follow_up.etag);
        assert!(contacted.resolve_time.is_none());
        let stale = client
            .update_follow_up(update(follow_up.clone(), &["notes"]))
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
        let bad = client
            .update_follow_up(update(
                FollowUp {
                    state: 42,
                    ..contacted.clone()
                },
                &["state", "priority"],
            ))
            .await
            .unwrap_err();
        assert_eq!(
            violations(&bad),
            ["update_mask.paths[1]", "follow_up.state"]
        );
        let resolved = client
            .update_follow_up(update(
                FollowUp {
                    state: FollowUpState::Resolved as i32,
                    notes: "Refunded the call charge.".into(),
                    ..contacted.clone()
                },
                &["state", "notes"],
            ))
            .await
            .unwrap()
            .into_inner()
            .follow_up
            .unwrap();
        assert!(resolved.resolve_time.is_some());
        assert_eq!(resolved.owner, "team-care", "not in the mask, kept");

        let listed = |states: Vec<FollowUpState>| ListFollowUpsRequest {
            states: states.into_iter().map(|s| s as i32).collect(),
            ..ListFollowUpsRequest::default()
        };
        let open = client
            .list_follow_ups(listed(vec![FollowUpState::Open]))
            .await;
        assert!(open.unwrap().into_inner().follow_ups.is_empty());
        let done = client
            .list_follow_ups(listed(vec![FollowUpState::Resolved]))
            .await;
        assert_eq!(
            done.unwrap().into_inner().follow_ups,
            vec![resolved.clone()]
        );

        let feedback_db = database(&db).await;
        let detractors = events(&feedback_db, "acme", "feedback.detractor").await;
        assert_eq!(detractors.len(), 1);
        let detractor =
            FeedbackDetractor::decode(detractors[0].data.as_ref().unwrap().value.as_slice())
                .unwrap();
        assert_eq!(
            (
                detractor.metric.as_str(),
                detractor.score,
                detractor.touchpoint.as_str()
            ),
            ("nps", 3, "ivr-billing")
        );
        assert_eq!(detractor.follow_up, follow_up.name);
        let updates = events(&feedback_db, "acme", "feedback.follow_up_updated").await;
        let states: Vec<(String, String)> = updates
            .iter()
            .map(|e| {
                let u = FollowUpUpdated::decode(e.data.as_ref().unwrap().value.as_slice()).unwrap();
                (u.previous_state, u.state)
            })
            .collect();
        assert_eq!(
            states,
            [
                ("open".to_owned(), "contacted".to_owned()),
                ("contacted".to_owned(), "resolved".to_owned())
            ]
        );
        suite.stop().await;
    }
);

on_both_databases!(
    another_tenant_sees_none_of_it,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut acme = client(&suite, "acme").await;
        let mut globex = client(&suite, "globex").await;
        publish(&mut acme, "post-call", survey("Post-call")).await;
        let invitation = invite(&mut acme, "surveys/post-call", profile("ada"), "i-1").await;
        let response = answer(&mut acme, &invitation.name, vec![score("nps", 2)], "a-1")
            .await
            .unwrap();

        let not_found =
            |status: tonic::Status| assert_eq!(status.code(), Code::NotFound, "{status:?}");
        not_found(
            globex
                .get_invitation(GetInvitationRequest {
                    name: invitation.name.clone(),
                })
                .await
                .unwrap_err(),
        );
        not_found(
            globex
                .get_response(GetResponseRequest {
                    name: response.name.clone(),
                })
                .await
                .unwrap_err(),
        );
        not_found(
            globex
                .get_follow_up(GetFollowUpRequest {
                    name: response.follow_up.clone(),
                })
                .await
                .unwrap_err(),
        );
        // Answering acme's invitation or survey from globex finds neither.
        not_found(
            answer(&mut globex, &invitation.name, vec![score("nps", 9)], "x")
                .await
                .unwrap_err(),
        );
        not_found(
            submit(
                &mut globex,
                uninvited(
                    "surveys/post-call",
                    profile("ada"),
                    call_centre(),
                    vec![score("nps", 9)],
                ),
                "y",
            )
            .await
            .unwrap_err(),
        );
        let lists = (
            globex
                .list_invitations(ListInvitationsRequest::default())
                .await
                .unwrap(),
            globex
                .list_responses(ListResponsesRequest {
                    include_partial: true,
                    ..ListResponsesRequest::default()
                })
                .await
                .unwrap(),
            globex
                .list_follow_ups(ListFollowUpsRequest::default())
                .await
                .unwrap(),
        );
        assert!(lists.0.into_inner().invitations.is_empty());
        assert!(lists.1.into_inner().responses.is_empty());
        assert!(lists.2.into_inner().follow_ups.is_empty());
        suite.stop().await;
    }
);
