//! With the profile service deployed, an interaction recorded by identifier lands on the
//! profile that identifier belongs to (created when none holds it), so the timeline by profile
//! and the timeline by identifier are one story. Without it, identifiers are stored as given
//! (the interaction tests that run the interaction service alone show that).
#![allow(clippy::unwrap_used)]

mod interaction_support;

use interaction_support::*;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, token};
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::common::v1::{Channel, CustomerRef, Identifier, IdentifierType};
use throughline_proto::interaction::v1::{ContextPart, GetCustomerContextRequest};
use throughline_proto::profile::v1::{
    CreateProfileRequest, Preferences, Profile, ResolutionOutcome, ResolveIdentityRequest,
};

fn by_email(address: &str) -> CustomerRef {
    CustomerRef {
        customer: Some(Customer::Identifier(Identifier {
            r#type: IdentifierType::Email as i32,
            value: address.into(),
            source: String::new(),
        })),
    }
}

on_both_databases!(
    identifiers_resolve_to_profiles_when_the_profile_service_is_deployed,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["profile", "interaction"], &test_db).await;
        let clients = suite
            .clients(&token(
                "acme",
                &[
                    "interaction:read",
                    "interaction:write",
                    "profile:read",
                    "profile:write",
                ],
            ))
            .await;
        let (mut interactions, mut profiles) = (clients.interaction, clients.profile);

        // Nobody holds the address yet: recording creates the profile.
        let first = interactions
            .record_interaction(item("web-1", by_email("Ada@Example.com"), Channel::Web, 10))
            .await
            .unwrap()
            .into_inner()
            .interaction
            .unwrap();
        assert!(first.profile.starts_with("profiles/"), "{first:?}");
        let known = profiles
            .resolve_identity(ResolveIdentityRequest {
                identifiers: vec![Identifier {
                    r#type: IdentifierType::Email as i32,
                    value: "ada@example.com".into(),
                    source: String::new(),
                }],
                lookup_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(known.outcome, ResolutionOutcome::Matched as i32);
        assert_eq!(known.profile.unwrap().name, first.profile);

        // A later touchpoint by the same address, and one by the profile itself, join it.
        let second = interactions
            .record_interaction(item(
                "call-1",
                by_email("ada@example.com"),
                Channel::Phone,
                20,
            ))
            .await
            .unwrap()
            .into_inner()
            .interaction
            .unwrap();
        assert_eq!(second.profile, first.profile);
        let id = first.profile.trim_start_matches("profiles/").to_owned();
        interactions
            .record_interaction(item("chat-1", profile(&id), Channel::Chat, 30))
            .await
            .unwrap();

        let on_profile = |name: &str| (name.to_owned(), first.profile.clone());
        assert_eq!(
            timeline(&mut interactions, &id).await,
            [
                on_profile("interactions/chat-1"),
                on_profile("interactions/call-1"),
                on_profile("interactions/web-1")
            ]
        );

        // A customer the profile service knows: the context greets them by name.
        let grace = profiles
            .create_profile(CreateProfileRequest {
                profile: Some(Profile {
                    email: "grace@example.com".into(),
                    given_name: "Grace".into(),
                    preferences: Some(Preferences {
                        language: "en-GB".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap();
        let call = interactions
            .record_interaction(item(
                "call-2",
                by_email("grace@example.com"),
                Channel::Phone,
                40,
            ))
            .await
            .unwrap()
            .into_inner()
            .interaction
            .unwrap();
        assert_eq!(call.profile, grace.name);
        let context = interactions
            .get_customer_context(GetCustomerContextRequest {
                customer: Some(by_email("grace@example.com")),
            })
            .await
            .unwrap()
            .into_inner()
            .context
            .unwrap();
        assert_eq!(context.profile, grace.name);
        let summary = context.profile_summary.unwrap();
        assert_eq!(
            (summary.given_name.as_str(), summary.language.as_str()),
            ("Grace", "en-GB")
        );
        assert_eq!(
            context.unavailable_parts,
            [ContextPart::Journeys as i32, ContextPart::Feedback as i32]
        );

        // Another tenant's identical address is another customer.
        let other = suite
            .clients(&token("globex", &["interaction:write"]))
            .await
            .interaction
            .record_interaction(item("web-1", by_email("ada@example.com"), Channel::Web, 10))
            .await
            .unwrap()
            .into_inner()
            .interaction
            .unwrap();
        assert!(other.profile.starts_with("profiles/"));
        assert_ne!(other.profile, first.profile);
    }
);
