//! The interaction service's customers, resolved through the profile service when it is
//! deployed (hosted here or at `endpoints.profile`): an identifier becomes the profile it
//! belongs to, created when none holds it, by `ResolveIdentity` and its rules (a cookie
//! profile merges into a known one, conflicting CRM ids are refused). Where the profile service
//! is not deployed, identifiers are stored as given. The same resolver fills the profile part
//! of the customer context.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use throughline_interaction::customer::{
    CustomerKey, CustomerResolver, ResolveProfiles, StoreAsGiven, Unavailable,
};
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::interaction::v1::ProfileSummary;
use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use throughline_proto::profile::v1::{GetProfileRequest, ResolveIdentityRequest};
use throughline_runtime::Error;
use throughline_runtime::peers::{PeerChannel, Peers};
use tonic::Code;

/// Distinct customers of one batch resolved at once.
const CONCURRENT_RESOLUTIONS: usize = 16;
/// How long the customer context waits for the profile part before listing it unavailable.
const SUMMARY_DEADLINE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ProfileResolver {
    peers: Peers,
}

impl ProfileResolver {
    pub fn new(peers: Peers) -> Self {
        Self { peers }
    }
}

impl ResolveProfiles for ProfileResolver {
    fn resolve<'a>(
        &'a self,
        tenant: &'a str,
        keys: &'a [CustomerKey],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, Error>> {
        Box::pin(async move {
            let Some(channel) = self
                .peers
                .channel(throughline_profile::NAME, Some(tenant))?
            else {
                return StoreAsGiven.resolve(tenant, keys).await;
            };
            let lookups: Vec<_> = keys
                .iter()
                .map(|key| resolve_one(channel.clone(), key))
                .collect();
            stream::iter(lookups)
                .buffered(CONCURRENT_RESOLUTIONS)
                .try_collect()
                .await
        })
    }
}

impl CustomerResolver for ProfileResolver {
    fn summary<'a>(
        &'a self,
        tenant: &'a str,
        profile: &'a str,
    ) -> BoxFuture<'a, Result<Option<ProfileSummary>, Unavailable>> {
        Box::pin(async move {
            let Ok(Some(channel)) = self.peers.channel(throughline_profile::NAME, Some(tenant))
            else {
                return Err(Unavailable);
            };
            let request = GetProfileRequest {
                name: profile.to_owned(),
            };
            let mut client = ProfileServiceClient::new(channel);
            match tokio::time::timeout(SUMMARY_DEADLINE, client.get_profile(request)).await {
                Ok(Ok(response)) => Ok(response.into_inner().profile.map(|profile| {
                    let preferences = profile.preferences.unwrap_or_default();
                    ProfileSummary {
                        given_name: profile.given_name,
                        family_name: profile.family_name,
                        language: preferences.language,
                        time_zone: preferences.time_zone,
                        segments: profile.segments,
                    }
                })),
                Ok(Err(status)) if status.code() == Code::NotFound => Ok(None),
                Ok(Err(_)) | Err(_) => Err(Unavailable),
            }
        })
    }
}

async fn resolve_one(channel: PeerChannel, key: &CustomerKey) -> Result<Option<String>, Error> {
    if let Some(profile) = key.profile() {
        return Ok(Some(profile.to_owned()));
    }
    let Some(Customer::Identifier(identifier)) = key.to_ref().customer else {
        return Ok(None);
    };
    let request = ResolveIdentityRequest {
        identifiers: vec![identifier],
        reason: "interaction recorded".to_owned(),
        ..Default::default()
    };
    match ProfileServiceClient::new(channel)
        .resolve_identity(request)
        .await
    {
        Ok(response) => Ok(response.into_inner().profile.map(|profile| profile.name)),
        // The profile service's rules are stricter (E.164 phones, for one) or the identifier
        // is in conflict: the interaction is still recorded, keyed as given.
        Err(status)
            if matches!(
                status.code(),
                Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists
            ) =>
        {
            Ok(None)
        }
        // Anything else fails the batch: the caller's retry records it resolved, rather than
        // stored unresolved for good.
        Err(status) => Err(Error::Unavailable(format!(
            "the profile service could not resolve a customer: {}",
            status.code().description()
        ))),
    }
}
