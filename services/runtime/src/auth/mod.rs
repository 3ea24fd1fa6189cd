//! Authentication (JWT bearer or static API key) and authorisation by scope.
//!
//! Every call carries a tenant and scopes; every RPC declares the scope it needs in the
//! contract (`throughline.common.v1.required_scope`), so the check lives in one layer and a
//! new RPC cannot be added without one.

mod credentials;
mod layer;
mod token;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Secret, Validate};

pub use credentials::Authenticator;
pub use layer::AuthLayer;
pub use token::{Claims, issue_token};

/// Reads every tenant's events: what a service consuming another's event log holds.
pub const PLATFORM_EVENTS: &str = "platform:events";
/// Acts for the tenant named in [`TENANT_HEADER`]: what a service calling another on a
/// tenant's behalf (a journey sending a message, say) holds.
pub const PLATFORM_ACT: &str = "platform:act";
/// The tenant a [`PLATFORM_ACT`] caller acts for.
pub const TENANT_HEADER: &str = "x-throughline-tenant";

/// Who is calling: the tenant every resource of the call belongs to, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    /// The token's `sub`, or the API key's name; safe to log (never personal data).
    pub subject: String,
    pub scopes: Vec<String>,
}

impl Principal {
    /// `profile:read` is granted by `profile:read`, by `profile:*` and by `*`. Platform scopes
    /// cross tenants, so a tenant's `*` does not grant them: only `platform:…` itself does.
    pub fn has_scope(&self, required: &str) -> bool {
        let area = required.split_once(':').map(|(area, _)| area);
        let platform = area == Some("platform");
        self.scopes.iter().any(|granted| {
            granted == required
                || (granted == "*" && !platform)
                || granted
                    .strip_suffix(":*")
                    .is_some_and(|granted_area| Some(granted_area) == area)
        })
    }
}

/// The caller of a request, as the auth layer left it; a handler that finds none refuses.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<&Principal, tonic::Status> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| tonic::Status::unauthenticated("no credentials"))
}

/// `[auth]`: the keys that verify tokens, and static API keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthOptions {
    /// Shared secret for HS256 tokens (also what `throughline token issue` signs with).
    pub hs256_secret: Secret,
    /// PEM public keys for RS256 (RSA keys) or ES256 (P-256 keys).
    pub public_key_files: Vec<PathBuf>,
    /// A JWKS document (JSON) whose keys are selected by the token's `kid`.
    #[serde(default, deserialize_with = "crate::config::empty_as_none")]
    pub jwks_file: Option<PathBuf>,
    /// Expected `iss`, checked when set.
    #[serde(default, deserialize_with = "crate::config::empty_as_none")]
    pub issuer: Option<String>,
    /// Expected `aud`, checked when set.
    #[serde(default, deserialize_with = "crate::config::empty_as_none")]
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// Static API keys for small deployments, sent as `x-api-key`.
    pub api_keys: Vec<ApiKey>,
    /// The bearer token this process presents to other services (with the `platform:events`
    /// and `platform:act` scopes). Unset with an HS256 secret, the process signs its own.
    pub service_token: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// A name for logs and audit; never the key itself.
    pub name: String,
    pub key: Secret,
    pub tenant: String,
    pub scopes: Vec<String>,
}

impl AuthOptions {
    pub(crate) fn has_any_credential(&self) -> bool {
        !self.hs256_secret.is_empty()
            || !self.public_key_files.is_empty()
            || self.jwks_file.is_some()
            || !self.api_keys.is_empty()
    }
}

impl Validate for AuthOptions {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.hs256_secret.is_empty() && self.hs256_secret.expose().len() < 32 {
            problems.push(format!(
                "{prefix}.hs256_secret: must be at least 32 bytes long"
            ));
        }
        for (index, key) in self.api_keys.iter().enumerate() {
            let at = format!("{prefix}.api_keys[{index}]");
            if key.key.expose().len() < 24 {
                problems.push(format!("{at}.key: must be at least 24 characters long"));
            }
            if key.tenant.is_empty() {
                problems.push(format!("{at}.tenant: must not be empty"));
            }
            if key.scopes.is_empty() {
                problems.push(format!("{at}.scopes: must grant at least one scope"));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scopes: &[&str]) -> Principal {
        Principal {
            tenant: "acme".into(),
            subject: "test".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn scopes_match_exactly_or_by_area_wildcard() {
        assert!(principal(&["profile:read"]).has_scope("profile:read"));
        assert!(!principal(&["profile:read"]).has_scope("profile:write"));
        assert!(principal(&["profile:*"]).has_scope("profile:admin"));
        assert!(!principal(&["profile:*"]).has_scope("interaction:read"));
        assert!(!principal(&["prof:*"]).has_scope("profile:read"));
        assert!(principal(&["*"]).has_scope("distribution:send"));
        assert!(!principal(&[]).has_scope("profile:read"));
    }

    #[test]
    fn platform_scopes_are_never_granted_by_a_tenant_wildcard() {
        assert!(!principal(&["*"]).has_scope(PLATFORM_EVENTS));
        assert!(!principal(&["*"]).has_scope(PLATFORM_ACT));
        assert!(principal(&[PLATFORM_EVENTS]).has_scope(PLATFORM_EVENTS));
        assert!(!principal(&[PLATFORM_EVENTS]).has_scope(PLATFORM_ACT));
        assert!(principal(&["platform:*"]).has_scope(PLATFORM_ACT));
    }

    #[test]
    fn serving_without_credentials_is_refused() {
        let error = Authenticator::new(&AuthOptions::default()).unwrap_err();
        assert!(
            error.to_string().contains("auth: no credentials"),
            "{error}"
        );
    }
}
