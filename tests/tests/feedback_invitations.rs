//! Invitations through the real gRPC API on SQLite and PostgreSQL: the fatigue rule across
//! surveys (and a survey's override), idempotent requests, bad input, and, with the profile and
//! distribution services in the process, invitations sent as messages within the contact
//! budget and an SMS reply of a bare number recorded as the NPS answer.
#![allow(clippy::unwrap_used)]

mod feedback_support;

use std::time::Duration;

use feedback_support::*;
use prost_types::FieldMask;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, token};
use throughline_proto::common::v1::channel_selector::Selector;
use throughline_proto::common::v1::{
    BudgetPeriod, Channel, ChannelSelector, ConsentStatus, ContactBudget, ContactLimit, Purpose,
};
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::{
    Address, ContactPolicy, CreateTemplateRequest, GetMessageRequest, Inbound, InboundReply,
    RecordInboundRequest, SmsContent, Template, TemplateVariant, UpdateContactPolicyRequest,
    address, inbound,
};
use throughline_proto::feedback::v1::*;
use throughline_proto::profile::v1::{Consent, CreateProfileRequest, Profile, SetConsentRequest};
use tonic::Code;
use tonic_types::StatusExt;

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

fn no_fatigue(display_name: &str) -> Survey {
    Survey {
        fatigue_interval: Some(prost_types::Duration::default()),
        ..survey(display_name)
    }
}

on_both_databases!(
    the_fatigue_rule_throttles_across_surveys_unless_a_survey_overrides_it,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        publish(&mut client, "post-call", survey("Post-call")).await;
        publish(&mut client, "onboarding", survey("Onboarding")).await;
        publish(&mut client, "in-app", no_fatigue("In app")).await;

        let first = invite(&mut client, "surveys/post-call", profile("ada"), "i-1").await;
        assert_eq!(first.state, InvitationState::Pending as i32);
        assert_eq!(first.survey_version, 1);
        assert_eq!(first.language, "en", "the survey's default language");
        // A retry is the same invitation, not a throttled second one.
        let retry = invite(&mut client, "surveys/post-call", profile("ada"), "i-1").await;
        assert_eq!(retry, first);
        // Another survey within the interval is throttled; another customer is not.
        let second = invite(&mut client, "surveys/onboarding", profile("ada"), "i-2").await;
        assert_eq!(
            (second.state, second.state_reason.as_str()),
            (InvitationState::Throttled as i32, "fatigue")
        );
        let other = invite(&mut client, "surveys/onboarding", profile("bo"), "i-3").await;
        assert_eq!(other.state, InvitationState::Pending as i32);
        // A survey whose fatigue interval is zero is not held back.
        let in_app = invite(&mut client, "surveys/in-app", profile("ada"), "i-4").await;
        assert_eq!(in_app.state, InvitationState::Pending as i32);
        // A throttled invitation cannot be answered.
        let status = answer(&mut client, &second.name, vec![score("nps", 9)], "a-1")
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "INVITATION_NOT_SENT");

        let listed = client
            .list_invitations(ListInvitationsRequest {
                customer: Some(profile("ada")),
                states: vec![InvitationState::Throttled as i32],
                ..ListInvitationsRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .invitations;
        assert_eq!(listed, vec![second]);
        let page = client
            .list_invitations(ListInvitationsRequest {
                page_size: 2,
                ..ListInvitationsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.invitations.len(), 2);
        let rest = client
            .list_invitations(ListInvitationsRequest {
                page_size: 2,
                page_token: page.next_page_token,
                ..ListInvitationsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rest.invitations.len(), 2);
        assert!(rest.next_page_token.is_empty());
        suite.stop().await;
    }
);

on_both_databases!(
    bad_requests_name_their_fields_and_unpublished_surveys_invite_no_one,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        let status = client
            .request_feedback(RequestFeedbackRequest {
                survey: "post-call".into(),
                customer: None,
                context: Some(FeedbackContext {
                    channel: 999,
                    interaction: "call-1".into(),
                    ..FeedbackContext::default()
                }),
                delivery: Some(InvitationDelivery::default()),
                language: "not a tag".into(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "survey",
                "customer",
                "context.interaction",
                "context.channel",
                "delivery.channel",
                "language",
                "request_id"
            ]
        );

        client
            .create_survey(CreateSurveyRequest {
                survey: Some(survey("Draft only")),
                survey_id: "draft".into(),
                request_id: String::new(),
            })
            .await
            .unwrap();
        let request = |survey: &str, delivery: Option<InvitationDelivery>| RequestFeedbackRequest {
            survey: survey.into(),
            customer: Some(profile("ada")),
            delivery,
            request_id: format!("r-{survey}"),
            ..RequestFeedbackRequest::default()
        };
        let status = client
            .request_feedback(request("surveys/draft", None))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "SURVEY_NOT_PUBLISHED");
        let status = client
            .request_feedback(request("surveys/missing", None))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        // Delivery needs the distribution service, which this process does not run.
        publish(&mut client, "post-call", survey("Post-call")).await;
        let by_sms = InvitationDelivery {
            channel: Some(ChannelSelector {
                selector: Some(Selector::Channel(Channel::Sms as i32)),
            }),
            template: "templates/invite".into(),
        };
        let status = client
            .request_feedback(request("surveys/post-call", Some(by_sms)))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "DISTRIBUTION_NOT_DEPLOYED");
        // Nothing was stored and the fatigue slot is still free.
        let pending = invite(&mut client, "surveys/post-call", profile("ada"), "after").await;
        assert_eq!(pending.state, InvitationState::Pending as i32);
        suite.stop().await;
    }
);

const SCOPES: [&str; 7] = [
    "feedback:read",
    "feedback:write",
    "distribution:read",
    "distribution:write",
    "distribution:send",
    "profile:read",
    "profile:write",
];

on_both_databases!(
    invitations_are_sent_within_the_contact_budget_and_an_sms_reply_answers_them,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["profile", "distribution", "feedback"], &db).await;
        let clients = suite.clients(&token("acme", &SCOPES)).await;
        let (mut feedback, mut distribution, mut profiles) =
            (clients.feedback, clients.distribution, clients.profile);
        distribution
            .create_template(CreateTemplateRequest {
                template: Some(Template {
                    display_name: "Survey invitation".into(),
                    variants: vec![TemplateVariant {
                        channel: Channel::Sms as i32,
                        locale: String::new(),
                        content: Some(Content::Sms(SmsContent {
                            body: "{{ survey_name }}: how likely are you to recommend us, 0-10? \
                                   Reply with a number or answer at {{ survey_url }}"
                                .into(),
                            max_segments: 0,
                        })),
                    }],
                    ..Template::default()
                }),
                template_id: "survey-invite".into(),
                request_id: String::new(),
            })
            .await
            .unwrap();
        let ada = profiles
            .create_profile(CreateProfileRequest {
                profile: Some(Profile {
                    given_name: "Ada".into(),
                    phone: "+447700900123".into(),
                    ..Profile::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap()
            .name;
        profiles
            .set_consent(SetConsentRequest {
                profile: ada.clone(),
                consent: Some(Consent {
                    channel: Channel::Sms as i32,
                    purpose: Purpose::Survey as i32,
                    status: ConsentStatus::Granted as i32,
                    source: "test".into(),
                    ..Consent::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
        // One survey contact a day, across every source.
        distribution
            .update_contact_policy(UpdateContactPolicyRequest {
                contact_policy: Some(ContactPolicy {
                    default_budget: Some(ContactBudget {
                        limits: vec![ContactLimit {
                            channel: Channel::Unspecified as i32,
                            purpose: Purpose::Survey as i32,
                            max_contacts: 1,
                            period: BudgetPeriod::Day as i32,
                        }],
                    }),
                    ..ContactPolicy::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["default_budget".into()],
                }),
            })
            .await
            .unwrap();
        let mut post_call = no_fatigue("Post-call");
        post_call.invitation_template = "templates/survey-invite".into();
        publish(&mut feedback, "post-call", post_call).await;

        let by_sms = || RequestFeedbackRequest {
            survey: "surveys/post-call".into(),
            customer: Some(throughline_proto::common::v1::CustomerRef {
                customer: Some(
                    throughline_proto::common::v1::customer_ref::Customer::Profile(ada.clone()),
                ),
            }),
            context: Some(FeedbackContext {
                interaction: "interactions/call-7".into(),
                channel: Channel::Phone as i32,
                touchpoint: "ivr-billing".into(),
                ..FeedbackContext::default()
            }),
            delivery: Some(InvitationDelivery {
                channel: Some(ChannelSelector {
                    selector: Some(Selector::Channel(Channel::Sms as i32)),
                }),
                template: String::new(),
            }),
            ..RequestFeedbackRequest::default()
        };
        let sent = feedback
            .request_feedback(RequestFeedbackRequest {
                request_id: "call-7-survey".into(),
                ..by_sms()
            })
            .await
            .unwrap()
            .into_inner()
            .invitation
            .unwrap();
        assert_eq!(sent.state, InvitationState::Sent as i32, "{sent:?}");
        let message = distribution
            .get_message(GetMessageRequest {
                name: sent.message.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        assert_eq!(message.origin, sent.name);
        assert_eq!(message.idempotency_key, "feedback:call-7-survey");
        assert_eq!(message.purpose, Purpose::Survey as i32);

        // The day's survey contact is spent: the next invitation is throttled by the budget.
        let second = feedback
            .request_feedback(RequestFeedbackRequest {
                request_id: "call-8-survey".into(),
                ..by_sms()
            })
            .await
            .unwrap()
            .into_inner()
            .invitation
            .unwrap();
        assert_eq!(
            (second.state, second.state_reason.as_str()),
            (InvitationState::Throttled as i32, "contact_budget")
        );

        // The customer replies "3" to the first message: it is their NPS answer.
        distribution
            .record_inbound(RecordInboundRequest {
                inbound: Some(Inbound {
                    provider: "sms".into(),
                    kind: Some(inbound::Kind::Reply(InboundReply {
                        channel: Channel::Sms as i32,
                        sender: Some(Address {
                            address: Some(address::Address::Phone("+447700900123".into())),
                        }),
                        body: " 3 ".into(),
                        provider_message_id: "reply-1".into(),
                        in_reply_to: sent.message.clone(),
                        ..InboundReply::default()
                    })),
                }),
            })
            .await
            .unwrap();
        let mut answered = None;
        for _ in 0..100 {
            let invitation = feedback
                .get_invitation(GetInvitationRequest {
                    name: sent.name.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .invitation
                .unwrap();
            if invitation.state == InvitationState::Answered as i32 {
                answered = Some(invitation);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answered = answered.expect("the reply was recorded as the answer");
        let response = feedback
            .get_response(GetResponseRequest {
                name: answered.response.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .response
            .unwrap();
        assert_eq!(response.response_channel, Channel::Sms as i32);
        assert_eq!(response.answers, vec![score("nps", 3)]);
        assert!(response.detractor && !response.follow_up.is_empty());
        assert_eq!(response.context.unwrap().touchpoint, "ivr-billing");
        suite.stop().await;
    }
);
