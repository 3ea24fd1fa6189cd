//! Identity resolution and reversible merges, on SQLite and PostgreSQL: the deterministic
//! rules, CRM conflicts, the merge → unmerge round trip (exact, later changes kept), and many
//! concurrent callers with overlapping identifiers ending with one profile.
#![allow(clippy::unwrap_used)]

mod profile_support;

use std::collections::BTreeSet;

use profile_support::*;
use throughline_harness::{TestDatabase, on_both_databases};
use throughline_proto::common::v1::{Channel, ConsentStatus, Identifier, Purpose};
use throughline_proto::profile::v1::*;
use tonic::Code;

async fn resolve(client: &mut Client, identifiers: Vec<Identifier>) -> ResolveIdentityResponse {
    client
        .resolve_identity(ResolveIdentityRequest {
            identifiers,
            reason: "login".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn get(client: &mut Client, name: &str) -> Profile {
    client
        .get_profile(GetProfileRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap()
}

async fn create(client: &mut Client, profile: Profile) -> Profile {
    client
        .create_profile(CreateProfileRequest {
            profile: Some(profile),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap()
}

async fn consent(client: &mut Client, profile: &str, channel: Channel, status: ConsentStatus) {
    client
        .set_consent(SetConsentRequest {
            profile: profile.into(),
            consent: Some(Consent {
                channel: channel as i32,
                purpose: Purpose::Marketing as i32,
                status: status as i32,
                source: "test".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

async fn merge(client: &mut Client, source: &str, target: &str) -> MergeEvent {
    client
        .merge_profiles(MergeProfilesRequest {
            source_profile: source.into(),
            target_profile: target.into(),
            reason: "same person, confirmed by phone".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .merge_event
        .unwrap()
}

async fn unmerge(client: &mut Client, event: &str) -> UnmergeProfilesResponse {
    client
        .unmerge_profiles(UnmergeProfilesRequest {
            merge_event: event.into(),
            reason: "wrong merge".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// What a profile holds, for comparing before and after: everything but times and etags.
/// A profile's data, identifiers and current consents (channel, purpose, status).
type Held = (Profile, Vec<(i32, String, String)>, Vec<(i32, i32, i32)>);

fn held(profile: &Profile) -> Held {
    let data = Profile {
        given_name: profile.given_name.clone(),
        family_name: profile.family_name.clone(),
        email: profile.email.clone(),
        phone: profile.phone.clone(),
        attributes: profile.attributes.clone(),
        preferences: profile.preferences.clone(),
        state: profile.state,
        merged_into: profile.merged_into.clone(),
        ..Default::default()
    };
    let consents = profile
        .consents
        .iter()
        .map(|c| (c.channel, c.purpose, c.status))
        .collect();
    (data, ids(profile), consents)
}

on_both_databases!(resolution_rules, |db: TestDatabase| async move {
    let profiles = Profiles::start(db).await;
    let mut client = profiles.client.clone();
    let created = resolve(&mut client, vec![cookie("c-1")]).await;
    assert_eq!(created.outcome, ResolutionOutcome::Created as i32);
    let name = created.profile.unwrap().name;
    let matched = resolve(&mut client, vec![cookie("c-1")]).await;
    assert_eq!(matched.outcome, ResolutionOutcome::Matched as i32);
    assert_eq!(matched.profile.unwrap().name, name);
    let extended = resolve(&mut client, vec![cookie("c-1"), phone("+1 650 253 0000")]).await;
    assert_eq!(extended.outcome, ResolutionOutcome::Extended as i32);
    assert!(ids(&extended.profile.unwrap()).contains(&(2, String::new(), "+16502530000".into())));

    // An anonymous visitor with a cart logs in with an email a CRM import already knows.
    let known = client
        .upsert_profile(UpsertProfileRequest {
            crm_id: Some(crm("salesforce", "003B")),
            profile: Some(Profile {
                email: "bea@example.com".into(),
                given_name: "Bea".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    let visitor = resolve(&mut client, vec![cookie("c-2")])
        .await
        .profile
        .unwrap();
    client
        .update_profile(UpdateProfileRequest {
            profile: Some(Profile {
                name: visitor.name.clone(),
                attributes: [("cart".into(), text("shoes"))].into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["attributes.cart".into()],
            }),
        })
        .await
        .unwrap();
    let login = resolve(&mut client, vec![cookie("c-2"), email("Bea@Example.com")]).await;
    assert_eq!(login.outcome, ResolutionOutcome::Merged as i32);
    assert_eq!(login.merge_events.len(), 1);
    let survivor = login.profile.unwrap();
    assert_eq!(
        survivor.name, known.name,
        "the anonymous profile merges into the known one"
    );
    assert_eq!(survivor.attributes["cart"], text("shoes"));
    assert!(ids(&survivor).contains(&(5, String::new(), "c-2".into())));
    let merged = get(&mut client, &visitor.name).await;
    assert_eq!(merged.state, ProfileState::Merged as i32);
    assert_eq!(merged.merged_into, known.name);
    assert!(merged.identifiers.is_empty());
    let event = client
        .get_merge_event(GetMergeEventRequest {
            name: login.merge_events[0].clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .merge_event
        .unwrap();
    assert_eq!(event.trigger, MergeTrigger::IdentityResolution as i32);
    assert_eq!(event.actor, "rule:anonymous-into-known");
    assert_eq!(event.reason, "login");
    assert_eq!(event.moved_fields, vec!["attributes.cart"]);
    assert!(
        profiles
            .event_types_of(&known.name, 3)
            .await
            .contains(&"profile.merged".to_owned())
    );

    // Look-ups never write.
    let status = client
        .resolve_identity(ResolveIdentityRequest {
            identifiers: vec![email("nobody@example.com")],
            lookup_only: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .resolve_identity(ResolveIdentityRequest {
            identifiers: vec![],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["identifiers"]);
});

on_both_databases!(
    two_ids_of_one_crm_never_merge,
    |db: TestDatabase| async move {
        let profiles = Profiles::start(db).await;
        let mut client = profiles.client.clone();
        let a = create(
            &mut client,
            Profile {
                email: "a@example.com".into(),
                identifiers: vec![crm("salesforce", "1")],
                ..Default::default()
            },
        )
        .await;
        let b = create(
            &mut client,
            Profile {
                phone: "+33612345678".into(),
                identifiers: vec![crm("salesforce", "2")],
                ..Default::default()
            },
        )
        .await;
        let status = client
            .resolve_identity(ResolveIdentityRequest {
                identifiers: vec![email("a@example.com"), phone("+33 6 12 34 56 78")],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let (reason, metadata) = error_info(&status);
        assert_eq!(reason, "IDENTITY_CONFLICT");
        let named: BTreeSet<&str> = metadata["profiles"].split(',').collect();
        assert_eq!(named, BTreeSet::from([a.name.as_str(), b.name.as_str()]));
        let status = client
            .merge_profiles(MergeProfilesRequest {
                source_profile: a.name.clone(),
                target_profile: b.name.clone(),
                reason: "try".into(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(error_info(&status).0, "IDENTITY_CONFLICT");
        let status = client
            .resolve_identity(ResolveIdentityRequest {
                identifiers: vec![email("a@example.com"), crm("salesforce", "3")],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(error_info(&status).0, "IDENTITY_CONFLICT");
        // Nothing changed.
        assert_eq!(get(&mut client, &a.name).await.identifiers, a.identifiers);
        assert_eq!(get(&mut client, &b.name).await.identifiers, b.identifiers);
    }
);

/// Two customers wrongly merged: A (the target) and B (the source).
async fn two_customers(client: &mut Client) -> (Profile, Profile) {
    let a = create(
        client,
        Profile {
            email: "a@example.com".into(),
            attributes: [("tier".into(), text("gold"))].into(),
            ..Default::default()
        },
    )
    .await;
    let b = create(
        client,
        Profile {
            given_name: "Bea".into(),
            email: "b@example.com".into(),
            phone: "+33612345678".into(),
            attributes: [
                ("tier".into(), text("silver")),
                ("lifetime_value".into(), number(10.0)),
            ]
            .into(),
            preferences: Some(Preferences {
                time_zone: "Europe/Paris".into(),
                ..Default::default()
            }),
            identifiers: vec![cookie("b-cookie")],
            ..Default::default()
        },
    )
    .await;
    consent(client, &a.name, Channel::Email, ConsentStatus::Granted).await;
    consent(client, &b.name, Channel::Sms, ConsentStatus::Denied).await;
    (get(client, &a.name).await, get(client, &b.name).await)
}

on_both_databases!(
    merge_then_unmerge_restores_both,
    |db: TestDatabase| async move {
        let profiles = Profiles::start(db).await;
        let mut client = profiles.client.clone();
        let (a, b) = two_customers(&mut client).await;
        let event = merge(&mut client, &b.name, &a.name).await;
        assert_eq!(event.state, MergeEventState::Merged as i32);
        assert_eq!(event.actor, "test");
        assert_eq!(event.moved_identifiers.len(), 3);
        let merged = get(&mut client, &a.name).await;
        assert_eq!(merged.given_name, "Bea");
        assert_eq!(merged.email, "a@example.com");
        assert_eq!(merged.attributes["tier"], text("gold"));
        assert_eq!(merged.attributes["lifetime_value"], number(10.0));
        assert_eq!(merged.identifiers.len(), 4);
        assert_eq!(merged.consents.len(), 2);
        assert_eq!(
            get(&mut client, &b.name).await.state,
            ProfileState::Merged as i32
        );
        let history = client
            .list_merge_events(ListMergeEventsRequest {
                profile: a.name.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(history.merge_events, vec![event.clone()]);

        let undone = unmerge(&mut client, &event.name).await;
        assert_eq!(held(&undone.source_profile.unwrap()), held(&b));
        assert_eq!(held(&undone.target_profile.unwrap()), held(&a));
        assert_eq!(held(&get(&mut client, &a.name).await), held(&a));
        assert_eq!(held(&get(&mut client, &b.name).await), held(&b));
        let event = undone.merge_event.unwrap();
        assert_eq!(event.state, MergeEventState::Unmerged as i32);
        assert_eq!(event.unmerge_reason, "wrong merge");
        let status = client
            .unmerge_profiles(UnmergeProfilesRequest {
                merge_event: event.name.clone(),
                reason: "again".into(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(error_info(&status).0, "ALREADY_UNMERGED");
        let types = profiles.event_types_of(&a.name, 5).await;
        assert!(types.contains(&"profile.merged".to_owned()));
        assert!(types.contains(&"profile.unmerged".to_owned()));
    }
);

on_both_databases!(unmerge_keeps_later_changes, |db: TestDatabase| async move {
    let profiles = Profiles::start(db).await;
    let mut client = profiles.client.clone();
    let (a, b) = two_customers(&mut client).await;
    let event = merge(&mut client, &b.name, &a.name).await;
    // After the merge the target changes: a moved attribute, a new one, a new identifier, a
    // new consent.
    client
        .update_profile(UpdateProfileRequest {
            profile: Some(Profile {
                name: a.name.clone(),
                attributes: [
                    ("lifetime_value".into(), number(99.0)),
                    ("vip".into(), text("yes")),
                ]
                .into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["attributes.lifetime_value".into(), "attributes.vip".into()],
            }),
        })
        .await
        .unwrap();
    client
        .add_identifier(AddIdentifierRequest {
            profile: a.name.clone(),
            identifier: Some(email("a.work@example.com")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    consent(&mut client, &a.name, Channel::Push, ConsentStatus::Granted).await;

    let undone = unmerge(&mut client, &event.name).await;
    let target = undone.target_profile.unwrap();
    assert_eq!(
        target.given_name, "",
        "untouched since the merge: back to before"
    );
    assert_eq!(
        target.attributes["lifetime_value"],
        number(99.0),
        "changed since: kept"
    );
    assert_eq!(target.attributes["vip"], text("yes"));
    assert_eq!(target.attributes["tier"], text("gold"));
    assert!(
        target
            .preferences
            .as_ref()
            .is_none_or(|p| p.time_zone.is_empty())
    );
    let mut expected = ids(&a);
    expected.push((1, String::new(), "a.work@example.com".into()));
    expected.sort();
    assert_eq!(ids(&target), expected);
    let channels: Vec<i32> = target.consents.iter().map(|c| c.channel).collect();
    assert_eq!(channels, vec![Channel::Email as i32, Channel::Push as i32]);
    assert_eq!(held(&undone.source_profile.unwrap()), held(&b));
});

on_both_databases!(
    a_later_merge_is_undone_first,
    |db: TestDatabase| async move {
        let profiles = Profiles::start(db).await;
        let mut client = profiles.client.clone();
        let (a, b) = two_customers(&mut client).await;
        let c = create(
            &mut client,
            Profile {
                email: "c@example.com".into(),
                ..Default::default()
            },
        )
        .await;
        let first = merge(&mut client, &b.name, &a.name).await;
        let second = merge(&mut client, &a.name, &c.name).await;
        let status = client
            .unmerge_profiles(UnmergeProfilesRequest {
                merge_event: first.name.clone(),
                reason: "wrong".into(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let (reason, metadata) = error_info(&status);
        assert_eq!(reason, "LATER_MERGE");
        assert_eq!(metadata["merge_event"], second.name);
        unmerge(&mut client, &second.name).await;
        unmerge(&mut client, &first.name).await;
        assert_eq!(held(&get(&mut client, &a.name).await), held(&a));
        assert_eq!(held(&get(&mut client, &b.name).await), held(&b));
    }
);

on_both_databases!(
    concurrent_resolution_makes_one_profile,
    |db: TestDatabase| async move {
        // SQLite has a single writer: fewer callers keep the test quick there.
        let callers = if db.is_postgres() { 32 } else { 12 };
        let profiles =
            Profiles::start_with(db, &[("THROUGHLINE__DATABASE__MAX_CONNECTIONS", "8")]).await;
        // Everyone shares one email, each with their own cookie.
        let calls = (0..callers).map(|i| {
            let mut client = profiles.client.clone();
            async move {
                resolve(
                    &mut client,
                    vec![email("shared@example.com"), cookie(&format!("c-{i}"))],
                )
                .await
            }
        });
        let results = futures::future::join_all(calls).await;
        let names: BTreeSet<String> = results
            .iter()
            .map(|r| r.profile.clone().unwrap().name)
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // A chain: caller i links cookie d-i to d-(i+1); at the end one profile holds them all.
        let calls = (0..callers).map(|i| {
            let mut client = profiles.client.clone();
            async move {
                resolve(
                    &mut client,
                    vec![
                        cookie(&format!("d-{i}")),
                        cookie(&format!("d-{}", (i + 1) % callers)),
                    ],
                )
                .await
            }
        });
        futures::future::join_all(calls).await;
        let mut client = profiles.client.clone();
        let all = client
            .list_profiles(ListProfilesRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .profiles;
        assert_eq!(all.len(), 2, "one profile per customer");
        let chain = all
            .iter()
            .find(|p| {
                !p.name.is_empty()
                    && p.email.is_empty()
                    && p.identifiers.iter().all(|i| i.value.starts_with("d-"))
            })
            .unwrap();
        assert_eq!(chain.identifiers.len(), callers);
        let shared = all.iter().find(|p| p.name != chain.name).unwrap();
        assert_eq!(shared.identifiers.len(), callers + 1);
    }
);

on_both_databases!(
    erasing_a_merged_customer_erases_every_part,
    |db: TestDatabase| async move {
        let profiles = Profiles::start(db).await;
        let mut client = profiles.client.clone();
        let (a, b) = two_customers(&mut client).await;
        merge(&mut client, &b.name, &a.name).await;
        // Naming the merged-away profile erases the customer it is now part of.
        let erased = client
            .erase_profile(EraseProfileRequest {
                name: b.name.clone(),
                reason: "ticket 9".into(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(erased.profile.unwrap().name, a.name);
        assert_eq!(erased.erased_profiles, vec![b.name.clone()]);
        for name in [&a.name, &b.name] {
            let profile = get(&mut client, name).await;
            assert_eq!(profile.state, ProfileState::Erased as i32);
            assert!(profile.identifiers.is_empty() && profile.attributes.is_empty());
            assert!(profile.consents.is_empty() && profile.email.is_empty());
        }
        let history = client
            .list_merge_events(ListMergeEventsRequest {
                profile: a.name.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            history.merge_events.is_empty(),
            "merge history holds personal data"
        );
        let events = profiles
            .events_when(|events| events.iter().any(|e| e.r#type == "profile.erased"))
            .await;
        let erased_event = events
            .iter()
            .find(|e| e.r#type == "profile.erased")
            .unwrap();
        assert_eq!(erased_event.subject, a.name);
        // The identifiers are free again: the same email makes a new customer.
        let fresh = resolve(&mut client, vec![email("b@example.com")]).await;
        assert_eq!(fresh.outcome, ResolutionOutcome::Created as i32);
    }
);
