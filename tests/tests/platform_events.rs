//! Services consuming each other's events with the platform identity: a tenant reads only
//! its own events, the platform reads every tenant's, and a merge in the profile service
//! reaches the interaction timeline through the live subscription the process keeps.
#![allow(clippy::unwrap_used)]

mod interaction_support;

use std::time::Duration;

use interaction_support::{item, profile};
use sea_orm::TransactionTrait;
use throughline_harness::{
    Credentials, TestDatabase, TestSuite, bearer, on_both_databases, raw_call, token,
};
use throughline_proto::common::v1::Channel;
use throughline_proto::event::v1::event_log_service_client::EventLogServiceClient;
use throughline_proto::event::v1::subscribe_response::Item;
use throughline_proto::event::v1::{Event, SubscribeRequest};
use throughline_proto::interaction::v1::ListInteractionsRequest;
use throughline_proto::profile::v1::{
    CreateProfileRequest, GetProfileRequest, MergeProfilesRequest, Profile, UnmergeProfilesRequest,
};
use throughline_runtime::auth::{PLATFORM_ACT, PLATFORM_EVENTS, TENANT_HEADER};
use throughline_runtime::db;
use throughline_runtime::events::Outbox;
use tonic::Code;

/// The tenants of the first `count` events a subscriber with `token` receives. (A CaughtUp
/// may come before them on PostgreSQL, where rows wait behind any older transaction still
/// running in the cluster.)
async fn tenants_seen(suite: &TestSuite, token: &str, count: usize) -> Vec<String> {
    let mut client = EventLogServiceClient::new(suite.channel().await);
    let request = bearer(
        tonic::Request::new(SubscribeRequest {
            source: "profile".into(),
            ..SubscribeRequest::default()
        }),
        token,
    );
    let mut stream = client.subscribe(request).await.unwrap().into_inner();
    let mut tenants = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while tenants.len() < count {
            if let Some(Item::Event(event)) = stream.message().await.unwrap().unwrap().item {
                tenants.push(event.tenant);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {tenants:?} arrived"));
    tenants
}

on_both_databases!(
    the_platform_reads_every_tenant_and_a_tenant_only_its_own,
    |test_db: TestDatabase| async move {
        let config = TestSuite::config(&["profile"], &test_db, &[]);
        let suite = TestSuite::start_config(config.clone()).await;
        let producer = db::connect(&config.database, "profile").await.unwrap();
        let transaction = producer.begin().await.unwrap();
        for (index, tenant) in ["acme", "globex", "acme"].iter().enumerate() {
            let event = Event {
                id: format!("evt-{index}"),
                source: "profile".into(),
                spec_version: "1.0".into(),
                r#type: "profile.created".into(),
                tenant: (*tenant).into(),
                ..Event::default()
            };
            Outbox::new("profile")
                .append(&transaction, &event)
                .await
                .unwrap();
        }
        transaction.commit().await.unwrap();

        let tenant_admin = token("acme", &["*"]);
        assert_eq!(
            tenants_seen(&suite, &tenant_admin, 2).await,
            ["acme", "acme"]
        );
        let platform = token("acme", &["events:read", PLATFORM_EVENTS]);
        assert_eq!(
            tenants_seen(&suite, &platform, 3).await,
            ["acme", "globex", "acme"]
        );

        // Naming another tenant takes the platform scope; a tenant's `*` is not it.
        let path = "/throughline.profile.v1.ProfileService/GetProfile";
        let mut request = tonic::Request::new(GetProfileRequest {
            name: "profiles/unknown".into(),
        });
        request
            .metadata_mut()
            .insert(TENANT_HEADER, "globex".parse().unwrap());
        let mut client = suite.clients(&tenant_admin).await.profile;
        let refused = client.get_profile(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert_eq!(
            raw_call(
                suite.channel().await,
                path,
                Credentials::Bearer(&token("acme", &[PLATFORM_ACT]))
            )
            .await
            .code(),
            Code::PermissionDenied,
            "acting for a tenant grants none of its scopes"
        );
        suite.stop().await;
    }
);

async fn timeline(client: &mut interaction_support::Client, profile_name: &str) -> Vec<String> {
    let id = profile_name.trim_start_matches("profiles/");
    let mut names: Vec<String> = client
        .list_interactions(ListInteractionsRequest {
            customer: Some(profile(id)),
            page_size: 100,
            ..ListInteractionsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .interactions
        .into_iter()
        .map(|interaction| interaction.name)
        .collect();
    names.sort();
    names
}

/// Polls `profile_name`'s timeline until it holds `expected` interactions.
async fn wait_for_timeline(
    client: &mut interaction_support::Client,
    profile_name: &str,
    expected: usize,
) -> Vec<String> {
    for _ in 0..500 {
        let names = timeline(client, profile_name).await;
        if names.len() == expected {
            return names;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{profile_name}'s timeline never reached {expected} interactions");
}

on_both_databases!(
    a_merge_reaches_the_timeline_through_the_subscription,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["profile", "interaction"], &test_db).await;
        let mut profiles = suite.clients(&token("acme", &["profile:*"])).await.profile;
        let mut interactions = interaction_support::client(&suite, "acme").await;

        let create = |given_name: &str| CreateProfileRequest {
            profile: Some(Profile {
                given_name: given_name.into(),
                ..Profile::default()
            }),
            ..CreateProfileRequest::default()
        };
        let source = profiles
            .create_profile(create("Ada"))
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap()
            .name;
        let target = profiles
            .create_profile(create("Grace"))
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap()
            .name;
        for (index, (owner, channel)) in [
            (&source, Channel::Web),
            (&source, Channel::Email),
            (&target, Channel::Phone),
        ]
        .into_iter()
        .enumerate()
        {
            let id = owner.trim_start_matches("profiles/");
            interactions
                .record_interaction(item(
                    &format!("i-{index}"),
                    profile(id),
                    channel,
                    index as i64,
                ))
                .await
                .unwrap();
        }
        // A platform caller acting for acme finds acme's profile; without naming the tenant it
        // is in its own token's tenant, where there is none.
        let platform = token("platform", &[PLATFORM_ACT, "profile:read"]);
        let mut platform_profiles = suite.clients(&platform).await.profile;
        let mut acting = tonic::Request::new(GetProfileRequest {
            name: source.clone(),
        });
        acting
            .metadata_mut()
            .insert(TENANT_HEADER, "acme".parse().unwrap());
        assert!(platform_profiles.get_profile(acting).await.is_ok());
        let own_tenant = platform_profiles
            .get_profile(GetProfileRequest {
                name: source.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(own_tenant.code(), Code::NotFound);

        let before_source = timeline(&mut interactions, &source).await;
        let before_target = timeline(&mut interactions, &target).await;
        assert_eq!((before_source.len(), before_target.len()), (2, 1));

        let merged = profiles
            .merge_profiles(MergeProfilesRequest {
                source_profile: source.clone(),
                target_profile: target.clone(),
                reason: "same customer".into(),
                ..MergeProfilesRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        let together = wait_for_timeline(&mut interactions, &target, 3).await;
        let mut expected: Vec<String> = [before_source.clone(), before_target.clone()].concat();
        expected.sort();
        assert_eq!(together, expected);

        profiles
            .unmerge_profiles(UnmergeProfilesRequest {
                merge_event: merged.merge_event.unwrap().name,
                reason: "different people".into(),
                ..UnmergeProfilesRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(
            wait_for_timeline(&mut interactions, &target, 1).await,
            before_target
        );
        assert_eq!(timeline(&mut interactions, &source).await, before_source);
        suite.stop().await;
    }
);
