//! The profile service through its gRPC API, on SQLite and PostgreSQL: profiles, validation,
//! idempotency, consent, segments, export and erasure, and the events each change emits.
#![allow(clippy::unwrap_used)]

mod profile_support;

use profile_support::*;
use throughline_harness::{TestDatabase, on_both_databases};
use throughline_proto::common::v1::{
    Channel, ConsentStatus, CustomerRef, LocalTimeWindow, Purpose, customer_ref,
};
use throughline_proto::google::r#type::TimeOfDay;
use throughline_proto::profile::v1::*;
use tonic::Code;

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
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

fn customer(profile: &str) -> Option<CustomerRef> {
    Some(CustomerRef {
        customer: Some(customer_ref::Customer::Profile(profile.into())),
    })
}

on_both_databases!(profiles_round_trip, |db: TestDatabase| async move {
    let profiles = Profiles::start(db).await;
    let mut client = profiles.client.clone();
    let ada = create(
        &mut client,
        Profile {
            given_name: "Ada".into(),
            email: "  Ada.Lovelace@Example.COM ".into(),
            phone: "+44 20 7946 0018".into(),
            attributes: [
                ("tier".into(), text("gold")),
                ("lifetime_value".into(), number(1200.0)),
            ]
            .into(),
            preferences: Some(Preferences {
                language: "en-GB".into(),
                time_zone: "Europe/London".into(),
                quiet_hours: Some(LocalTimeWindow {
                    start_time: Some(TimeOfDay {
                        hours: 21,
                        ..Default::default()
                    }),
                    end_time: Some(TimeOfDay {
                        hours: 8,
                        ..Default::default()
                    }),
                    days: vec![],
                }),
                channel_ranking: vec![Channel::Sms as i32, Channel::Email as i32],
                contact_budget: None,
            }),
            identifiers: vec![crm("salesforce", "003A")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ada.email, "ada.lovelace@example.com");
    assert_eq!(ada.phone, "+442079460018");
    assert_eq!(ada.state, ProfileState::Active as i32);
    assert_eq!(
        ids(&ada),
        vec![
            (1, String::new(), "ada.lovelace@example.com".into()),
            (2, String::new(), "+442079460018".into()),
            (3, "salesforce".into(), "003A".into()),
        ]
    );
    let got = client
        .get_profile(GetProfileRequest {
            name: ada.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(got, ada);

    // Update two fields under the current etag; a stale etag is refused.
    let updated = client
        .update_profile(UpdateProfileRequest {
            profile: Some(Profile {
                name: ada.name.clone(),
                etag: ada.etag.clone(),
                attributes: [("tier".into(), text("platinum"))].into(),
                preferences: Some(Preferences {
                    language: "fr-FR".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: mask(&["attributes.tier", "preferences.language"]),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(updated.attributes["tier"], text("platinum"));
    assert_eq!(updated.attributes["lifetime_value"], number(1200.0));
    let preferences = updated.preferences.clone().unwrap();
    assert_eq!(preferences.language, "fr-FR");
    assert_eq!(preferences.time_zone, "Europe/London");
    assert_ne!(updated.etag, ada.etag);
    let stale = client
        .update_profile(UpdateProfileRequest {
            profile: Some(Profile {
                name: ada.name.clone(),
                etag: ada.etag.clone(),
                given_name: "Augusta".into(),
                ..Default::default()
            }),
            update_mask: mask(&["given_name"]),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    // Listing: newest first, paged, by filter and by identifier.
    let grace = create(
        &mut client,
        Profile {
            given_name: "Grace".into(),
            email: "grace@example.com".into(),
            attributes: [("tier".into(), text("silver"))].into(),
            ..Default::default()
        },
    )
    .await;
    let alan = create(
        &mut client,
        Profile {
            given_name: "Alan".into(),
            identifiers: vec![cookie("c-1")],
            ..Default::default()
        },
    )
    .await;
    let first = client
        .list_profiles(ListProfilesRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = first.profiles.iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, vec![alan.name.clone(), grace.name.clone()]);
    let second = client
        .list_profiles(ListProfilesRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.profiles.len(), 1);
    assert_eq!(second.profiles[0].name, ada.name);
    assert!(second.next_page_token.is_empty());
    let silver = client
        .list_profiles(ListProfilesRequest {
            filter: r#"profile.attributes.tier == "silver""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(silver.profiles.len(), 1);
    assert_eq!(silver.profiles[0].name, grace.name);
    let by_id = client
        .list_profiles(ListProfilesRequest {
            identifier: Some(crm("crm:salesforce", "003A")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.profiles.len(), 1);
    assert_eq!(by_id.profiles[0].name, ada.name);

    // Delete.
    client
        .delete_profile(DeleteProfileRequest {
            name: grace.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    let gone = client
        .get_profile(GetProfileRequest {
            name: grace.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(
        profiles.event_types_of(&ada.name, 2).await,
        vec!["profile.created", "profile.updated"]
    );
    assert_eq!(
        profiles.event_types_of(&grace.name, 2).await,
        vec!["profile.created", "profile.deleted"]
    );
});

on_both_databases!(bad_input_names_every_field, |db: TestDatabase| async move {
    let profiles = Profiles::start(db).await;
    let mut client = profiles.client.clone();
    let status = client
        .create_profile(CreateProfileRequest {
            profile: Some(Profile {
                email: "not-an-email".into(),
                phone: "12".into(),
                attributes: [
                    ("Bad-Key".into(), text("x")),
                    ("untyped".into(), Default::default()),
                    ("huge".into(), text(&"x".repeat(5000))),
                    ("nan".into(), number(f64::NAN)),
                ]
                .into(),
                preferences: Some(Preferences {
                    time_zone: "Mars/Olympus".into(),
                    language: "not a tag".into(),
                    quiet_hours: Some(LocalTimeWindow {
                        start_time: Some(TimeOfDay {
                            hours: 25,
                            ..Default::default()
                        }),
                        end_time: None,
                        days: vec![],
                    }),
                    channel_ranking: vec![Channel::Sms as i32, Channel::Sms as i32],
                    contact_budget: None,
                }),
                identifiers: vec![crm("", "1"), email("x@")],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "profile.attributes.Bad-Key",
            "profile.attributes.huge",
            "profile.attributes.nan",
            "profile.attributes.untyped",
            "profile.email",
            "profile.identifiers[0].source",
            "profile.identifiers[1].value",
            "profile.phone",
            "profile.preferences.channel_ranking[1]",
            "profile.preferences.language",
            "profile.preferences.quiet_hours.end_time",
            "profile.preferences.quiet_hours.start_time",
            "profile.preferences.time_zone",
        ]
    );

    // Server-owned fields cannot be written through an update mask.
    let ada = create(
        &mut client,
        Profile {
            email: "ada@example.com".into(),
            ..Default::default()
        },
    )
    .await;
    let status = client
        .update_profile(UpdateProfileRequest {
            profile: Some(Profile {
                name: ada.name.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["state", "identifiers"]),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["update_mask", "update_mask"]);
    let status = client
        .get_profile(GetProfileRequest {
            name: "people/1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["name"]);

    // An identifier held by another profile: ALREADY_EXISTS naming the holder.
    let status = client
        .create_profile(CreateProfileRequest {
            profile: Some(Profile {
                email: "ADA@example.com".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    let (reason, metadata) = error_info(&status);
    assert_eq!(reason, "IDENTIFIER_TAKEN");
    assert_eq!(metadata["profile"], ada.name);

    // Segment rules and consent decisions are checked too.
    let status = client
        .create_segment(CreateSegmentRequest {
            segment: Some(Segment {
                display_name: "Broken".into(),
                rule: "profile.attributes.x >".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["segment.rule"]);
    let status = client
        .create_segment(CreateSegmentRequest {
            segment: Some(Segment {
                display_name: "Unknown name".into(),
                rule: "customer.tier == 'gold'".into(),
                ..Default::default()
            }),
            segment_id: "Bad Id".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["segment.rule", "segment_id"]);
    let status = client
        .set_consent(SetConsentRequest {
            profile: ada.name.clone(),
            consent: Some(Consent {
                channel: Channel::Web as i32,
                purpose: 0,
                status: ConsentStatus::Granted as i32,
                source: String::new(),
                evidence: "x".repeat(5000),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        vec![
            "consent.channel",
            "consent.purpose",
            "consent.source",
            "consent.evidence"
        ]
    );
});

on_both_databases!(
    idempotent_create_and_crm_upsert,
    |db: TestDatabase| async move {
        let profiles = Profiles::start(db).await;
        let mut client = profiles.client.clone();
        let request = CreateProfileRequest {
            profile: Some(Profile {
                email: "once@example.com".into(),
                ..Default::default()
            }),
            request_id: "create-1".into(),
        };
        let first = client
            .create_profile(request.clone())
            .await
            .unwrap()
            .into_inner();
        let again = client.create_profile(request).await.unwrap().into_inner();
        assert_eq!(first, again);

        let upsert = |request_id: &str, tier: &str| UpsertProfileRequest {
            crm_id: Some(crm("salesforce", "0031")),
            profile: Some(Profile {
                given_name: "Mary".into(),
                email: "mary@example.com".into(),
                attributes: [("tier".into(), text(tier))].into(),
                ..Default::default()
            }),
            update_mask: None,
            request_id: request_id.into(),
        };
        let created = client
            .upsert_profile(upsert("u-1", "gold"))
            .await
            .unwrap()
            .into_inner();
        assert!(created.created);
        let replay = client
            .upsert_profile(upsert("u-1", "gold"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(replay, created);
        let updated = client
            .upsert_profile(upsert("u-2", "silver"))
            .await
            .unwrap()
            .into_inner();
        assert!(!updated.created);
        let profile = updated.profile.unwrap();
        assert_eq!(profile.name, created.profile.unwrap().name);
        assert_eq!(profile.attributes["tier"], text("silver"));
        // The same key for another request is refused.
        let status = client
            .upsert_profile(upsert("u-2", "bronze"))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), vec!["request_id"]);
        // A CRM id of the wrong type.
        let status = client
            .upsert_profile(UpsertProfileRequest {
                crm_id: Some(email("x@example.com")),
                profile: Some(Profile::default()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), vec!["crm_id.type"]);
    }
);

on_both_databases!(
    consent_history_and_fast_check,
    |db: TestDatabase| async move {
        let profiles = Profiles::start(db).await;
        let mut client = profiles.client.clone();
        let ada = create(
            &mut client,
            Profile {
                email: "ada@example.com".into(),
                ..Default::default()
            },
        )
        .await;
        let decide = |status: ConsentStatus, source: &str| SetConsentRequest {
            profile: ada.name.clone(),
            consent: Some(Consent {
                channel: Channel::Email as i32,
                purpose: Purpose::Marketing as i32,
                status: status as i32,
                source: source.into(),
                evidence: "form 42, double opt-in".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        };
        let check = |customer: Option<CustomerRef>| CheckConsentRequest {
            customer,
            channel: Channel::Email as i32,
            purpose: Purpose::Marketing as i32,
        };
        let before = client
            .check_consent(check(customer(&ada.name)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(before.status, ConsentStatus::Unknown as i32);

        client
            .set_consent(decide(ConsentStatus::Granted, "web-preference-centre"))
            .await
            .unwrap();
        client
            .set_consent(decide(ConsentStatus::Denied, "sms-stop"))
            .await
            .unwrap();
        // The same decision again changes nothing but the history.
        client
            .set_consent(decide(ConsentStatus::Denied, "sms-stop"))
            .await
            .unwrap();

        let by_profile = client
            .check_consent(check(customer(&ada.name)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_profile.status, ConsentStatus::Denied as i32);
        assert_eq!(by_profile.consent.unwrap().source, "sms-stop");
        let by_email = client
            .check_consent(check(Some(CustomerRef {
                customer: Some(customer_ref::Customer::Identifier(email("ADA@example.com"))),
            })))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_email.status, ConsentStatus::Denied as i32);
        assert_eq!(by_email.profile, ada.name);
        let stranger = client
            .check_consent(check(Some(CustomerRef {
                customer: Some(customer_ref::Customer::Identifier(email(
                    "nobody@example.com",
                ))),
            })))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stranger.status, ConsentStatus::Unknown as i32);
        assert!(stranger.profile.is_empty());
        // Other pairs are unaffected.
        let sms = client
            .check_consent(CheckConsentRequest {
                customer: customer(&ada.name),
                channel: Channel::Sms as i32,
                purpose: Purpose::Marketing as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(sms.status, ConsentStatus::Unknown as i32);

        let history = client
            .list_consent_history(ListConsentHistoryRequest {
                profile: ada.name.clone(),
                page_size: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(history.consents.len(), 2);
        assert!(!history.next_page_token.is_empty());
        let rest = client
            .list_consent_history(ListConsentHistoryRequest {
                profile: ada.name.clone(),
                page_size: 2,
                page_token: history.next_page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let statuses: Vec<i32> = history
            .consents
            .iter()
            .chain(&rest.consents)
            .map(|c| c.status)
            .collect();
        assert_eq!(
            statuses,
            vec![
                ConsentStatus::Denied as i32,
                ConsentStatus::Denied as i32,
                ConsentStatus::Granted as i32
            ]
        );
        assert!(
            history
                .consents
                .iter()
                .all(|c| c.recorded_by == "test" && c.record_time.is_some())
        );
        let current = client
            .get_profile(GetProfileRequest {
                name: ada.name.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap()
            .consents;
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].status, ConsentStatus::Denied as i32);
        assert_eq!(
            profiles.event_types_of(&ada.name, 3).await,
            vec!["profile.created", "consent.changed", "consent.changed"]
        );
    }
);

async fn ltv(client: &mut Client, name: &str, value: f64) -> Profile {
    client
        .update_profile(UpdateProfileRequest {
            profile: Some(Profile {
                name: name.into(),
                attributes: [("lifetime_value".into(), number(value))].into(),
                ..Default::default()
            }),
            update_mask: mask(&["attributes.lifetime_value"]),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap()
}

on_both_databases!(
    segments_backfill_and_follow_changes,
    |db: TestDatabase| async move {
        let profiles = Profiles::start(db).await;
        let mut client = profiles.client.clone();
        let mut people = Vec::new();
        for (index, value) in [500.0, 1500.0, 2500.0].into_iter().enumerate() {
            people.push(
                create(
                    &mut client,
                    Profile {
                        email: format!("p{index}@example.com"),
                        attributes: [("lifetime_value".into(), number(value))].into(),
                        ..Default::default()
                    },
                )
                .await,
            );
        }
        let segment = client
            .create_segment(CreateSegmentRequest {
                segment: Some(Segment {
                    display_name: "High value".into(),
                    rule: "profile.attributes.lifetime_value > 1000.0".into(),
                    ..Default::default()
                }),
                segment_id: "high-value".into(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .segment
            .unwrap();
        assert_eq!(segment.name, "segments/high-value");
        assert_eq!(segment.state, SegmentState::Active as i32);
        assert_eq!(segment.member_count, 2);
        let members = |client: &mut Client| {
            let mut client = client.clone();
            async move {
                let mut names: Vec<String> = client
                    .list_segment_members(ListSegmentMembersRequest {
                        segment: "segments/high-value".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .members
                    .into_iter()
                    .map(|m| m.profile)
                    .collect();
                names.sort();
                names
            }
        };
        let mut expected = vec![people[1].name.clone(), people[2].name.clone()];
        expected.sort();
        assert_eq!(members(&mut client).await, expected);

        // Incremental: one enters, one leaves, a new profile enters on creation.
        let entered = ltv(&mut client, &people[0].name, 1200.0).await;
        assert_eq!(entered.segments, vec!["segments/high-value"]);
        let left = ltv(&mut client, &people[1].name, 10.0).await;
        assert!(left.segments.is_empty());
        let newcomer = create(
            &mut client,
            Profile {
                attributes: [("lifetime_value".into(), number(5000.0))].into(),
                identifiers: vec![cookie("c-9")],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(newcomer.segments, vec!["segments/high-value"]);
        let mut expected = vec![
            people[0].name.clone(),
            people[2].name.clone(),
            newcomer.name.clone(),
        ];
        expected.sort();
        assert_eq!(members(&mut client).await, expected);
        let membership = client
            .check_segment_membership(CheckSegmentMembershipRequest {
                segment: "segments/high-value".into(),
                customer: Some(CustomerRef {
                    customer: Some(customer_ref::Customer::Identifier(email("p0@example.com"))),
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(membership.member && membership.enter_time.is_some());
        let outside = client
            .check_segment_membership(CheckSegmentMembershipRequest {
                segment: "segments/high-value".into(),
                customer: customer(&people[1].name),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!outside.member);

        // The events: one entered per entry, one exited per exit.
        let events = profiles
            .events_when(|events| {
                events
                    .iter()
                    .filter(|e| e.r#type.starts_with("segment."))
                    .count()
                    >= 5
            })
            .await;
        let count = |kind: &str, who: &str| {
            events
                .iter()
                .filter(|e| e.r#type == kind && e.subject == who)
                .count()
        };
        assert_eq!(count("segment.entered", &people[0].name), 1);
        assert_eq!(count("segment.entered", &people[1].name), 1);
        assert_eq!(count("segment.exited", &people[1].name), 1);
        assert_eq!(count("segment.entered", &newcomer.name), 1);

        // A changed rule re-evaluates everyone; a deleted segment leaves no members.
        let updated = client
            .update_segment(UpdateSegmentRequest {
                segment: Some(Segment {
                    name: "segments/high-value".into(),
                    rule: "profile.attributes.lifetime_value > 2000.0".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["rule"]),
            })
            .await
            .unwrap()
            .into_inner()
            .segment
            .unwrap();
        assert_eq!(updated.member_count, 2);
        client
            .delete_segment(DeleteSegmentRequest {
                name: "segments/high-value".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        let after = client
            .get_profile(GetProfileRequest {
                name: people[2].name.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap();
        assert!(after.segments.is_empty());
    }
);

on_both_databases!(export_then_erase, |db: TestDatabase| async move {
    let profiles = Profiles::start(db).await;
    let mut client = profiles.client.clone();
    let canary = "canary-7f3a9c";
    let person = create(
        &mut client,
        Profile {
            given_name: canary.into(),
            email: format!("{canary}@example.com"),
            attributes: [("note".into(), text(canary))].into(),
            ..Default::default()
        },
    )
    .await;
    client
        .set_consent(SetConsentRequest {
            profile: person.name.clone(),
            consent: Some(Consent {
                channel: Channel::Sms as i32,
                purpose: Purpose::Service as i32,
                status: ConsentStatus::Granted as i32,
                source: "web".into(),
                evidence: canary.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let export = client
        .export_profile(ExportProfileRequest {
            name: person.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let json = format!("{:?}", export.data.unwrap());
    assert!(json.contains(&format!("{canary}@example.com")));
    assert!(json.contains("consent_history"));
    assert_eq!(json.matches(canary).count(), 5, "{json}");

    let erased = client
        .erase_profile(EraseProfileRequest {
            name: person.name.clone(),
            reason: "ticket 123".into(),
            request_id: "erase-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(erased.state, ProfileState::Erased as i32);
    assert!(erased.identifiers.is_empty() && erased.consents.is_empty());
    assert!(erased.given_name.is_empty() && erased.attributes.is_empty());
    let export = client
        .export_profile(ExportProfileRequest {
            name: person.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!format!("{:?}", export.data.unwrap()).contains(canary));
    // Erasing again succeeds without effect; the identifier is free for a new customer.
    client
        .erase_profile(EraseProfileRequest {
            name: person.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let types = profiles.event_types_of(&person.name, 3).await;
    assert_eq!(types.iter().filter(|t| *t == "profile.erased").count(), 1);
    let fresh = client
        .resolve_identity(ResolveIdentityRequest {
            identifiers: vec![email(&format!("{canary}@example.com"))],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fresh.outcome, ResolutionOutcome::Created as i32);
    // No row of the service still holds the erased person's data.
    let db = profiles.connection().await;
    use sea_orm::ConnectionTrait;
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT data FROM profile_profiles",
        ))
        .await
        .unwrap();
    for row in rows {
        let data: Vec<u8> = row.try_get("", "data").unwrap();
        assert!(!data.windows(canary.len()).any(|w| w == canary.as_bytes()));
    }
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT evidence FROM profile_consents",
        ))
        .await
        .unwrap();
    assert!(rows.is_empty());
});
