//! Who an interaction is about: customers are keyed by [`CustomerKey`] (see
//! `throughline_runtime::customer`) and read back through the *timeline key*: the profile the
//! customer resolves to (after merges), or the key itself when the customer is not resolved to
//! a profile.
//!
//! Resolution goes through a [`CustomerResolver`]. Where the profile service is not deployed,
//! the service uses [`StoreAsGiven`]. The binary plugs in a resolver backed by the profile
//! service with [`crate::Service::with_resolver`]; the store does not change.

use std::sync::Arc;

use futures::future::BoxFuture;
use throughline_proto::interaction::v1::ProfileSummary;
pub use throughline_runtime::customer::{CustomerKey, ResolveProfiles, StoreAsGiven};

pub(crate) use throughline_runtime::customer::is_client_id as is_resource_id;

/// Resolves customer keys to profiles and summarises profiles for the customer context.
pub trait CustomerResolver: ResolveProfiles {
    /// What an agent needs to greet `profile` (`profiles/{id}`), for the customer context:
    /// `Ok(None)` when there is no such profile, `Err(Unavailable)` when the profile service is
    /// not deployed or did not answer in time.
    fn summary<'a>(
        &'a self,
        _tenant: &'a str,
        _profile: &'a str,
    ) -> BoxFuture<'a, Result<Option<ProfileSummary>, Unavailable>> {
        Box::pin(async { Err(Unavailable) })
    }
}

impl CustomerResolver for StoreAsGiven {}

/// A part of the customer context whose service is not deployed or did not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

pub(crate) type SharedResolver = Arc<dyn CustomerResolver>;
