//! GetProfile, CheckConsent by identifier and ResolveIdentity of a known customer share
//! queries among concurrent callers. Many callers at once, of two tenants holding the very same
//! email addresses, must each get exactly their own answer.
#![allow(clippy::unwrap_used)]

mod profile_support;

use futures::future::join_all;
use profile_support::*;
use throughline_harness::{TestDatabase, on_both_databases};
use throughline_proto::common::v1::{Channel, ConsentStatus, CustomerRef, Purpose, customer_ref};
use throughline_proto::profile::v1::*;

const CUSTOMERS: usize = 24;

fn address(i: usize) -> String {
    format!("customer{i}@example.com")
}

/// Creates the customers of one tenant; the ones `granted` picks get email marketing consent.
async fn seed(client: &mut Client, granted: impl Fn(usize) -> bool) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..CUSTOMERS {
        let profile = client
            .create_profile(CreateProfileRequest {
                profile: Some(Profile {
                    email: address(i),
                    given_name: format!("Customer {i}"),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap();
        let status = if granted(i) {
            ConsentStatus::Granted
        } else {
            ConsentStatus::Denied
        };
        client
            .set_consent(SetConsentRequest {
                profile: profile.name.clone(),
                consent: Some(Consent {
                    channel: Channel::Email as i32,
                    purpose: Purpose::Marketing as i32,
                    status: status as i32,
                    source: "web".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
        names.push(profile.name);
    }
    names
}

/// CheckConsent of the email `address` for `purpose`.
fn email_consent(address: &str, purpose: Purpose) -> CheckConsentRequest {
    CheckConsentRequest {
        customer: Some(CustomerRef {
            customer: Some(customer_ref::Customer::Identifier(email(address))),
        }),
        channel: Channel::Email as i32,
        purpose: purpose as i32,
    }
}

on_both_databases!(
    concurrent_reads_of_two_tenants_get_their_own_answers,
    |db: TestDatabase| async move {
        let profiles = Profiles::start(db).await;
        let mut a = profiles.client.clone();
        let mut b = profiles.client_of("globex").await;
        let names_a = seed(&mut a, |i| i % 2 == 0).await;
        let names_b = seed(&mut b, |_| false).await;

        // Every read of both tenants at once, so that the loaders see mixed batches.
        let mut calls = Vec::new();
        for (client, names, tenant_a) in [(&a, &names_a, true), (&b, &names_b, false)] {
            for (i, name) in names.iter().enumerate() {
                let mut client = client.clone();
                let name = name.clone();
                calls.push(tokio::spawn(async move {
                    let got = client
                        .get_profile(GetProfileRequest { name: name.clone() })
                        .await
                        .unwrap()
                        .into_inner()
                        .profile
                        .unwrap();
                    assert_eq!(
                        (got.name.as_str(), got.email.as_str()),
                        (name.as_str(), address(i).as_str())
                    );
                    assert_eq!(got.consents.len(), 1, "{name}");

                    let consent = client
                        .check_consent(email_consent(&address(i), Purpose::Marketing))
                        .await
                        .unwrap()
                        .into_inner();
                    let expected = if tenant_a && i % 2 == 0 {
                        ConsentStatus::Granted
                    } else {
                        ConsentStatus::Denied
                    };
                    assert_eq!(consent.profile, name);
                    assert_eq!(consent.status, expected as i32, "{name}");

                    // A purpose nobody decided on is UNKNOWN, still for the right profile.
                    let undecided = client
                        .check_consent(email_consent(&address(i), Purpose::Survey))
                        .await
                        .unwrap()
                        .into_inner();
                    assert_eq!(
                        (undecided.profile.as_str(), undecided.status),
                        (name.as_str(), ConsentStatus::Unknown as i32)
                    );

                    let resolved = client
                        .resolve_identity(ResolveIdentityRequest {
                            identifiers: vec![email(&address(i))],
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    assert_eq!(resolved.outcome, ResolutionOutcome::Matched as i32);
                    assert_eq!(resolved.profile.unwrap().name, name);
                }));
            }
        }
        for call in join_all(calls).await {
            call.unwrap();
        }

        // An email neither tenant holds: UNKNOWN and no profile, not someone else's answer.
        let stranger = a
            .check_consent(email_consent("nobody@example.com", Purpose::Marketing))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (stranger.profile.as_str(), stranger.status),
            ("", ConsentStatus::Unknown as i32)
        );
    }
);
