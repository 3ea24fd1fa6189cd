//! No call reaches another tenant's data: a tenant-B caller naming tenant A's profiles,
//! segments and merge events gets NOT_FOUND from every RPC that takes a name, and the RPCs
//! that take identifiers or list only ever see tenant B's own data.
#![allow(clippy::unwrap_used)]

mod profile_support;

use profile_support::*;
use throughline_harness::{TestDatabase, on_both_databases};
use throughline_proto::common::v1::{Channel, ConsentStatus, CustomerRef, Purpose, customer_ref};
use throughline_proto::profile::v1::*;
use tonic::Code;

fn not_found<T: std::fmt::Debug>(rpc: &str, result: Result<tonic::Response<T>, tonic::Status>) {
    match result {
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{rpc}: {status:?}"),
        Ok(response) => panic!("{rpc} answered {response:?}"),
    }
}

on_both_databases!(another_tenant_sees_nothing, |db: TestDatabase| async move {
    let profiles = Profiles::start(db).await;
    let mut a = profiles.client.clone();
    let mut b = profiles.client_of("globex").await;

    // Tenant A: two profiles, merged; a consent; a segment.
    let alice = a
        .create_profile(CreateProfileRequest {
            profile: Some(Profile {
                email: "alice@example.com".into(),
                attributes: [("tier".into(), text("gold"))].into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let other = a
        .create_profile(CreateProfileRequest {
            profile: Some(Profile {
                email: "alice.other@example.com".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let merge_event = a
        .merge_profiles(MergeProfilesRequest {
            source_profile: other.name.clone(),
            target_profile: alice.name.clone(),
            reason: "duplicate".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .merge_event
        .unwrap()
        .name;
    a.set_consent(SetConsentRequest {
        profile: alice.name.clone(),
        consent: Some(Consent {
            channel: Channel::Email as i32,
            purpose: Purpose::Marketing as i32,
            status: ConsentStatus::Granted as i32,
            source: "web".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .unwrap();
    a.create_segment(CreateSegmentRequest {
        segment: Some(Segment {
            display_name: "Gold".into(),
            rule: r#"profile.attributes.tier == "gold""#.into(),
            ..Default::default()
        }),
        segment_id: "gold".into(),
        request_id: String::new(),
    })
    .await
    .unwrap();
    let alice = a
        .get_profile(GetProfileRequest {
            name: alice.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let segment = "segments/gold".to_owned();
    let name = alice.name.clone();
    let by_name = || {
        Some(CustomerRef {
            customer: Some(customer_ref::Customer::Profile(name.clone())),
        })
    };

    // Every RPC that names one of A's resources.
    not_found(
        "GetProfile",
        b.get_profile(GetProfileRequest { name: name.clone() })
            .await,
    );
    not_found(
        "UpdateProfile",
        b.update_profile(UpdateProfileRequest {
            profile: Some(Profile {
                name: name.clone(),
                given_name: "x".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["given_name".into()],
            }),
        })
        .await,
    );
    not_found(
        "DeleteProfile",
        b.delete_profile(DeleteProfileRequest {
            name: name.clone(),
            etag: String::new(),
        })
        .await,
    );
    not_found(
        "AddIdentifier",
        b.add_identifier(AddIdentifierRequest {
            profile: name.clone(),
            identifier: Some(cookie("b-cookie")),
            request_id: String::new(),
        })
        .await,
    );
    not_found(
        "RemoveIdentifier",
        b.remove_identifier(RemoveIdentifierRequest {
            profile: name.clone(),
            identifier: Some(email("alice@example.com")),
            request_id: String::new(),
        })
        .await,
    );
    let own = b
        .create_profile(CreateProfileRequest {
            profile: Some(Profile {
                email: "bob@example.com".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    not_found(
        "MergeProfiles (A's source)",
        b.merge_profiles(MergeProfilesRequest {
            source_profile: name.clone(),
            target_profile: own.name.clone(),
            reason: "steal".into(),
            request_id: String::new(),
        })
        .await,
    );
    not_found(
        "MergeProfiles (A's target)",
        b.merge_profiles(MergeProfilesRequest {
            source_profile: own.name.clone(),
            target_profile: name.clone(),
            reason: "plant".into(),
            request_id: String::new(),
        })
        .await,
    );
    not_found(
        "UnmergeProfiles",
        b.unmerge_profiles(UnmergeProfilesRequest {
            merge_event: merge_event.clone(),
            reason: "x".into(),
            request_id: String::new(),
        })
        .await,
    );
    not_found(
        "GetMergeEvent",
        b.get_merge_event(GetMergeEventRequest {
            name: merge_event.clone(),
        })
        .await,
    );
    not_found(
        "ListMergeEvents",
        b.list_merge_events(ListMergeEventsRequest {
            profile: name.clone(),
            ..Default::default()
        })
        .await,
    );
    not_found(
        "SetConsent",
        b.set_consent(SetConsentRequest {
            profile: name.clone(),
            consent: Some(Consent {
                channel: Channel::Email as i32,
                purpose: Purpose::Marketing as i32,
                status: ConsentStatus::Denied as i32,
                source: "x".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await,
    );
    not_found(
        "CheckConsent",
        b.check_consent(CheckConsentRequest {
            customer: by_name(),
            channel: Channel::Email as i32,
            purpose: Purpose::Marketing as i32,
        })
        .await,
    );
    not_found(
        "ListConsentHistory",
        b.list_consent_history(ListConsentHistoryRequest {
            profile: name.clone(),
            ..Default::default()
        })
        .await,
    );
    not_found(
        "GetSegment",
        b.get_segment(GetSegmentRequest {
            name: segment.clone(),
        })
        .await,
    );
    not_found(
        "UpdateSegment",
        b.update_segment(UpdateSegmentRequest {
            segment: Some(Segment {
                name: segment.clone(),
                display_name: "x".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await,
    );
    not_found(
        "ListSegmentMembers",
        b.list_segment_members(ListSegmentMembersRequest {
            segment: segment.clone(),
            ..Default::default()
        })
        .await,
    );
    not_found(
        "CheckSegmentMembership",
        b.check_segment_membership(CheckSegmentMembershipRequest {
            segment: segment.clone(),
            customer: by_name(),
        })
        .await,
    );
    not_found(
        "ExportProfile",
        b.export_profile(ExportProfileRequest { name: name.clone() })
            .await,
    );
    not_found(
        "EraseProfile",
        b.erase_profile(EraseProfileRequest {
            name: name.clone(),
            ..Default::default()
        })
        .await,
    );
    not_found(
        "DeleteSegment",
        b.delete_segment(DeleteSegmentRequest {
            name: segment.clone(),
            etag: String::new(),
        })
        .await,
    );

    // The RPCs that take identifiers or list see only B's own data.
    let listed = b
        .list_profiles(ListProfilesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .profiles;
    assert_eq!(
        listed.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        vec![own.name.clone()]
    );
    let filtered = b
        .list_profiles(ListProfilesRequest {
            identifier: Some(email("alice@example.com")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(filtered.profiles.is_empty());
    assert!(
        b.list_segments(ListSegmentsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .segments
            .is_empty()
    );
    let check = b
        .check_consent(CheckConsentRequest {
            customer: Some(CustomerRef {
                customer: Some(customer_ref::Customer::Identifier(email(
                    "alice@example.com",
                ))),
            }),
            channel: Channel::Email as i32,
            purpose: Purpose::Marketing as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check.status, ConsentStatus::Unknown as i32);
    let resolved = b
        .resolve_identity(ResolveIdentityRequest {
            identifiers: vec![email("alice@example.com")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.outcome, ResolutionOutcome::Created as i32);
    assert_ne!(resolved.profile.unwrap().name, name);
    let upserted = b
        .upsert_profile(UpsertProfileRequest {
            crm_id: Some(crm("salesforce", "1")),
            profile: Some(Profile {
                email: "alice.other@example.com".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(upserted.created);
    let created = b
        .create_segment(CreateSegmentRequest {
            segment: Some(Segment {
                display_name: "Gold".into(),
                rule: "true".into(),
                ..Default::default()
            }),
            segment_id: "gold".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap();
    assert_eq!(created.member_count, 3, "B's own three profiles only");

    // A's data is untouched.
    let after = a
        .get_profile(GetProfileRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(after, alice);
});
