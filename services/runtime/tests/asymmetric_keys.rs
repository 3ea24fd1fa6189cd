//! RS256 and ES256 tokens verified with PEM public keys, and keys selected by `kid` from a JWKS.
#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use throughline_runtime::auth::{AuthOptions, Authenticator, Claims};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(FIXTURES).join(name)
}

fn sign(algorithm: Algorithm, key: &EncodingKey, kid: Option<&str>, tenant: &str) -> HeaderMap {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        sub: "crm".into(),
        tenant: tenant.into(),
        scope: vec!["profile:read".into()],
        exp: now + 60,
        iat: now,
        iss: None,
        aud: None,
    };
    let token = jsonwebtoken::encode(&header, &claims, key).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).unwrap()).unwrap()
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).unwrap()).unwrap()
}

#[test]
fn pem_public_keys_verify_rs256_and_es256() {
    let authenticator = Authenticator::new(&AuthOptions {
        public_key_files: vec![fixture("rsa-public.pem"), fixture("ec-public.pem")],
        ..AuthOptions::default()
    })
    .unwrap();
    let rs = authenticator
        .authenticate(&sign(Algorithm::RS256, &rsa_key(), None, "acme"))
        .unwrap();
    assert_eq!(rs.tenant, "acme");
    let es = authenticator
        .authenticate(&sign(Algorithm::ES256, &ec_key(), None, "globex"))
        .unwrap();
    assert_eq!(es.tenant, "globex");
    // An HS256 token cannot pass where only public keys are configured (algorithm confusion).
    let forged = throughline_runtime::auth::issue_token(
        &std::fs::read_to_string(fixture("rsa-public.pem")).unwrap(),
        "x",
        "acme",
        &["*".into()],
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {forged}").parse().unwrap());
    assert!(authenticator.authenticate(&headers).is_err());
}

#[test]
fn jwks_keys_are_chosen_by_kid() {
    let mut rsa = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).unwrap();
    rsa.common.key_id = Some("rsa-1".into());
    let mut ec = Jwk::from_encoding_key(&ec_key(), Algorithm::ES256).unwrap();
    ec.common.key_id = Some("ec-1".into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        serde_json::to_string(&JwkSet {
            keys: vec![rsa, ec],
        })
        .unwrap(),
    )
    .unwrap();

    let authenticator = Authenticator::new(&AuthOptions {
        jwks_file: Some(path),
        ..AuthOptions::default()
    })
    .unwrap();
    assert!(
        authenticator
            .authenticate(&sign(Algorithm::RS256, &rsa_key(), Some("rsa-1"), "acme"))
            .is_ok()
    );
    assert!(
        authenticator
            .authenticate(&sign(Algorithm::ES256, &ec_key(), Some("ec-1"), "acme"))
            .is_ok()
    );
    // The right key under the wrong kid, and no kid at all, are refused.
    assert!(
        authenticator
            .authenticate(&sign(Algorithm::RS256, &rsa_key(), Some("ec-1"), "acme"))
            .is_err()
    );
    assert!(
        authenticator
            .authenticate(&sign(Algorithm::RS256, &rsa_key(), None, "acme"))
            .is_err()
    );
}
