//! Verifies the credentials a request carries: a JWT bearer token or a static API key.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthOptions, Claims, Principal};
use crate::config::ConfigError;
use crate::error::Error;

/// Header carrying a static API key.
pub const API_KEY_HEADER: &str = "x-api-key";

struct VerificationKey {
    key: DecodingKey,
    algorithm: Algorithm,
    /// `kid` of a JWKS key; `None` for configured keys, tried for any token.
    key_id: Option<String>,
}

struct StoredApiKey {
    digest: [u8; 32],
    principal: Principal,
}

/// Most tokens [`VerifiedTokens`] remembers; when full it starts again from empty.
const VERIFIED_TOKENS: usize = 4096;

/// Tokens already verified, by their full text, each with the last second it may be used in
/// (its `exp` plus the leeway). A client sends the same token with every call for the token's
/// lifetime, and verifying it again (base64, the signature, two JSON parses) took ~5 % of a
/// busy server's time. Identical text verifies identically, so only expiry needs checking.
#[derive(Default)]
struct VerifiedTokens(Mutex<HashMap<String, (Principal, u64)>>);

impl VerifiedTokens {
    fn get(&self, token: &str, now: u64) -> Option<Principal> {
        let verified = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match verified.get(token) {
            Some((principal, last_second)) if now <= *last_second => Some(principal.clone()),
            _ => None,
        }
    }

    fn insert(&self, token: &str, principal: &Principal, last_second: u64) {
        let mut verified = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if verified.len() >= VERIFIED_TOKENS {
            verified.clear();
        }
        verified.insert(token.to_owned(), (principal.clone(), last_second));
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Built once at start-up from `[auth]`; cheap to share behind an `Arc`.
pub struct Authenticator {
    keys: Vec<VerificationKey>,
    api_keys: Vec<StoredApiKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    verified: VerifiedTokens,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys.len())
            .field("api_keys", &self.api_keys.len())
            .finish()
    }
}

impl Authenticator {
    /// Fails when nothing could verify a caller: a server that accepted every call would be
    /// the wrong default.
    pub fn new(options: &AuthOptions) -> Result<Self, ConfigError> {
        if !options.has_any_credential() {
            return Err(ConfigError(
                "auth: no credentials configured; set auth.hs256_secret, auth.public_key_files, \
                 auth.jwks_file or auth.api_keys (every call is authenticated)"
                    .to_owned(),
            ));
        }
        let mut keys = Vec::new();
        if !options.hs256_secret.is_empty() {
            keys.push(VerificationKey {
                key: DecodingKey::from_secret(options.hs256_secret.expose().as_bytes()),
                algorithm: Algorithm::HS256,
                key_id: None,
            });
        }
        for (index, path) in options.public_key_files.iter().enumerate() {
            let at = format!("auth.public_key_files[{index}]");
            let pem = std::fs::read(path)
                .map_err(|e| ConfigError::invalid(&at, format!("{}: {e}", path.display())))?;
            let (key, algorithm) = match DecodingKey::from_rsa_pem(&pem) {
                Ok(key) => (key, Algorithm::RS256),
                Err(_) => DecodingKey::from_ec_pem(&pem)
                    .map(|key| (key, Algorithm::ES256))
                    .map_err(|_| {
                        ConfigError::invalid(&at, "not an RSA or EC public key in PEM format")
                    })?,
            };
            keys.push(VerificationKey {
                key,
                algorithm,
                key_id: None,
            });
        }
        if let Some(path) = &options.jwks_file {
            keys.extend(load_jwks(path)?);
        }
        let api_keys = options
            .api_keys
            .iter()
            .map(|api_key| StoredApiKey {
                digest: Sha256::digest(api_key.key.expose().as_bytes()).into(),
                principal: Principal {
                    tenant: api_key.tenant.clone(),
                    subject: format!("api-key:{}", api_key.name),
                    scopes: api_key.scopes.clone(),
                },
            })
            .collect();
        Ok(Self {
            keys,
            api_keys,
            issuer: options.issuer.clone(),
            audience: options.audience.clone(),
            leeway: options.leeway_seconds,
            verified: VerifiedTokens::default(),
        })
    }

    /// The caller of a request, from `authorization: Bearer …` or `x-api-key`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Error> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| Error::Unauthenticated("malformed authorization header".into()))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| Error::Unauthenticated("expected a Bearer token".into()))?;
            return self.verify_token(token.trim());
        }
        if let Some(value) = headers.get(API_KEY_HEADER) {
            return self.verify_api_key(value.as_bytes());
        }
        Err(Error::Unauthenticated(
            "missing credentials: send authorization: Bearer <token> or x-api-key".into(),
        ))
    }

    fn verify_token(&self, token: &str) -> Result<Principal, Error> {
        if let Some(principal) = self.verified.get(token, unix_now()) {
            return Ok(principal);
        }
        let invalid = || Error::Unauthenticated("invalid token".into());
        let header = decode_header(token).map_err(|_| invalid())?;
        let candidates = self.keys.iter().filter(|key| {
            key.algorithm == header.alg
                && match (&key.key_id, &header.kid) {
                    (Some(key_id), Some(kid)) => key_id == kid,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
        });
        for candidate in candidates {
            let mut validation = Validation::new(candidate.algorithm);
            validation.leeway = self.leeway;
            validation.required_spec_claims = HashSet::from(["exp".to_owned()]);
            validation.validate_aud = self.audience.is_some();
            if let Some(audience) = &self.audience {
                validation.set_audience(&[audience]);
            }
            if let Some(issuer) = &self.issuer {
                validation.set_issuer(&[issuer]);
            }
            let Ok(data) = decode::<Claims>(token, &candidate.key, &validation) else {
                continue;
            };
            let claims = data.claims;
            if claims.tenant.is_empty() {
                return Err(Error::Unauthenticated("token has no tenant".into()));
            }
            let principal = Principal {
                tenant: claims.tenant,
                subject: claims.sub,
                scopes: claims.scope,
            };
            self.verified
                .insert(token, &principal, claims.exp.saturating_add(self.leeway));
            return Ok(principal);
        }
        Err(invalid())
    }

    fn verify_api_key(&self, presented: &[u8]) -> Result<Principal, Error> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        // Compare against every key in constant time so timing tells nothing about which
        // keys exist or how much of one matched.
        let mut found = None;
        for stored in &self.api_keys {
            if bool::from(stored.digest.ct_eq(&digest)) {
                found = Some(&stored.principal);
            }
        }
        found
            .cloned()
            .ok_or_else(|| Error::Unauthenticated("invalid API key".into()))
    }
}

fn load_jwks(path: &std::path::Path) -> Result<Vec<VerificationKey>, ConfigError> {
    let at = "auth.jwks_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(at, format!("{}: {e}", path.display())))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| ConfigError::invalid(at, e.to_string()))?;
    let mut keys = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| ConfigError::invalid(&format!("{at} keys[{index}]"), e.to_string()))?;
        let algorithm = match jwk.common.key_algorithm.map(|a| a.to_string()) {
            Some(name) => name.parse::<Algorithm>().map_err(|e| {
                ConfigError::invalid(&format!("{at} keys[{index}].alg"), e.to_string())
            })?,
            None => match key.family() {
                jsonwebtoken::AlgorithmFamily::Rsa => Algorithm::RS256,
                jsonwebtoken::AlgorithmFamily::Ec => Algorithm::ES256,
                _ => {
                    return Err(ConfigError::invalid(
                        &format!("{at} keys[{index}]"),
                        "only RSA and EC keys are supported",
                    ));
                }
            },
        };
        keys.push(VerificationKey {
            key,
            algorithm,
            key_id: jwk.common.key_id.clone(),
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::{ApiKey, issue_token};
    use crate::config::Secret;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    fn authenticator() -> Authenticator {
        Authenticator::new(&AuthOptions {
            hs256_secret: Secret::new(SECRET),
            api_keys: vec![ApiKey {
                name: "crm-sync".into(),
                key: Secret::new("tl_0123456789abcdefghijklmn"),
                tenant: "acme".into(),
                scopes: vec!["profile:write".into()],
            }],
            ..AuthOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn a_signed_token_gives_its_tenant_and_scopes() {
        let token = issue_token(
            SECRET,
            "svc",
            "acme",
            &["profile:read".into(), "interaction:*".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        let principal = authenticator().authenticate(&bearer(&token)).unwrap();
        assert_eq!(principal.tenant, "acme");
        assert_eq!(principal.scopes, ["profile:read", "interaction:*"]);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = issue_token(
            "another-secret-another-secret-xx",
            "svc",
            "acme",
            &["*".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        let error = authenticator().authenticate(&bearer(&token)).unwrap_err();
        assert!(matches!(error, Error::Unauthenticated(_)));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let expired = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &Claims {
                sub: "svc".into(),
                tenant: "acme".into(),
                scope: vec!["*".into()],
                exp: 1_000,
                iat: 0,
                iss: None,
                aud: None,
            },
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(authenticator().authenticate(&bearer(&expired)).is_err());
    }

    #[test]
    fn a_remembered_token_is_used_only_until_its_expiry() {
        let verified = VerifiedTokens::default();
        let principal = Principal {
            tenant: "acme".into(),
            subject: "svc".into(),
            scopes: vec!["*".into()],
        };
        verified.insert("token", &principal, 1_000);
        assert_eq!(verified.get("token", 1_000), Some(principal));
        assert_eq!(verified.get("token", 1_001), None);
        assert_eq!(verified.get("other", 1_000), None);
    }

    #[test]
    fn a_token_verified_once_is_refused_with_one_character_changed() {
        let auth = authenticator();
        let token = issue_token(
            SECRET,
            "svc",
            "acme",
            &["*".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(auth.authenticate(&bearer(&token)).is_ok());
        assert!(auth.authenticate(&bearer(&token)).is_ok());
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(auth.authenticate(&bearer(&tampered)).is_err());
    }

    #[test]
    fn api_keys_and_missing_credentials() {
        let auth = authenticator();
        let mut headers = HeaderMap::new();
        headers.insert(
            API_KEY_HEADER,
            "tl_0123456789abcdefghijklmn".parse().unwrap(),
        );
        let principal = auth.authenticate(&headers).unwrap();
        assert_eq!(principal.subject, "api-key:crm-sync");
        headers.insert(
            API_KEY_HEADER,
            "tl_0123456789abcdefghijklmX".parse().unwrap(),
        );
        assert!(auth.authenticate(&headers).is_err());
        assert!(auth.authenticate(&HeaderMap::new()).is_err());
    }
}
