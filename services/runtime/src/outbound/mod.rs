//! Calls to customers' own HTTP endpoints (webhook subscriptions, journey webhook nodes): one
//! client set up the same way everywhere, the SSRF [`guard`] and the [`signature`] scheme.

pub mod guard;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use crate::Error;

/// TLS through rustls on ring with the system's roots.
fn tls() -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "outbound calls: a system root certificate did not load");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("outbound calls: no system root certificates; https calls will fail");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(Error::internal)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

/// An HTTP client for customers' endpoints: names resolve through the guard, redirects are not
/// followed (they could lead past it), environment proxies are ignored (they would decide where
/// a customer's URL is fetched from), and each request ends after `timeout`.
pub fn client(
    user_agent: &str,
    timeout: Duration,
    policy: guard::Policy,
) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls()?)
        .dns_resolver(Arc::new(guard::GuardedResolver {
            allow_private_addresses: policy.allow_private_addresses,
        }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(user_agent)
        .build()
        .map_err(Error::internal)
}
