//! Tokens: the claims Throughline reads, and issuing HS256 tokens for development and tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde::{Deserialize, Deserializer, Serialize};

/// The claims of a Throughline token. `scope` is space-separated (RFC 8693) or a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    #[serde(deserialize_with = "scopes_from_string_or_list")]
    pub scope: Vec<String>,
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

fn scopes_from_string_or_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scopes {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Scopes::deserialize(deserializer)? {
        Scopes::Text(text) => text.split_whitespace().map(str::to_owned).collect(),
        Scopes::List(list) => list,
    })
}

/// Signs an HS256 token for `tenant` with `scopes`, valid for `ttl`.
pub fn issue_token(
    secret: &str,
    subject: &str,
    tenant: &str,
    scopes: &[String],
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        sub: subject.to_owned(),
        tenant: tenant.to_owned(),
        scope: scopes.to_vec(),
        exp: now + ttl.as_secs(),
        iat: now,
        iss: None,
        aud: None,
    };
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}
