//! Calls from one service to another: where each service runs, and the credential a process
//! presents to the others.
//!
//! A service hosted by this process is reached through the process's own listener, so a
//! call between services takes the same path (auth, scopes, tenancy) whether they share a
//! process or not. Other services are reached at their configured endpoint; a service with
//! neither is not deployed, and callers leave its part out.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{AuthOptions, PLATFORM_ACT, PLATFORM_EVENTS, TENANT_HEADER, issue_token};
use crate::config::Secret;
use crate::error::Error;

/// How long a token the process signs for itself lives, and how long before its end it is
/// replaced.
const SIGNED_TOKEN_TTL: Duration = Duration::from_secs(3600);
const SIGNED_TOKEN_RENEWAL: Duration = Duration::from_secs(300);

/// The bearer token this process presents to other services.
#[derive(Debug)]
pub struct ServiceCredential {
    source: CredentialSource,
    signed: Mutex<Option<(String, Instant)>>,
}

#[derive(Debug)]
enum CredentialSource {
    /// `auth.service_token`, issued by the deployment's identity provider.
    Configured(Secret),
    /// Signed here with the HS256 secret the services share.
    SelfSigned(Secret),
}

impl ServiceCredential {
    /// The credential `auth` provides, if any.
    pub fn from_options(auth: &AuthOptions) -> Option<Self> {
        let source = if !auth.service_token.is_empty() {
            CredentialSource::Configured(auth.service_token.clone())
        } else if !auth.hs256_secret.is_empty() {
            CredentialSource::SelfSigned(auth.hs256_secret.clone())
        } else {
            return None;
        };
        Some(Self {
            source,
            signed: Mutex::new(None),
        })
    }

    /// The token to send now.
    pub fn token(&self) -> Result<String, Error> {
        let secret = match &self.source {
            CredentialSource::Configured(token) => return Ok(token.expose().to_owned()),
            CredentialSource::SelfSigned(secret) => secret,
        };
        let mut signed = self
            .signed
            .lock()
            .map_err(|_| Error::internal("service credential lock poisoned"))?;
        if let Some((token, renew_at)) = signed.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        // Platform scopes to read every tenant's events and act for one tenant at a time;
        // `*` for the tenant-level scopes of the RPCs it calls while acting.
        let scopes = [PLATFORM_EVENTS, PLATFORM_ACT, "*"].map(str::to_owned);
        let token = issue_token(
            secret.expose(),
            "throughline-service",
            "*",
            &scopes,
            SIGNED_TOKEN_TTL,
        )
        .map_err(Error::internal)?;
        *signed = Some((
            token.clone(),
            Instant::now() + SIGNED_TOKEN_TTL - SIGNED_TOKEN_RENEWAL,
        ));
        Ok(token)
    }
}

/// Adds the service credential, and the tenant acted for, to each call.
#[derive(Debug, Clone)]
pub struct PeerAuth {
    credential: Arc<ServiceCredential>,
    tenant: Option<String>,
}

impl Interceptor for PeerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let token = self.credential.token()?;
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| tonic::Status::internal("service token is not valid metadata"))?;
        request.metadata_mut().insert("authorization", bearer);
        if let Some(tenant) = &self.tenant {
            let tenant = MetadataValue::try_from(tenant.as_str())
                .map_err(|_| tonic::Status::invalid_argument("tenant is not valid metadata"))?;
            request.metadata_mut().insert(TENANT_HEADER, tenant);
        }
        Ok(request)
    }
}

/// A channel to another service that authenticates as this process.
pub type PeerChannel = InterceptedService<Channel, PeerAuth>;

/// Where the services are, as this process knows it.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// Configured endpoints of services this process does not host.
    endpoints: BTreeMap<String, String>,
    /// The services this process hosts.
    hosted: Vec<String>,
    /// This process's own endpoint, known once it listens.
    own_endpoint: Arc<OnceLock<String>>,
    credential: Option<Arc<ServiceCredential>>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Peers {
    pub fn new(
        endpoints: BTreeMap<String, String>,
        hosted: Vec<String>,
        credential: Option<ServiceCredential>,
    ) -> Self {
        Self {
            endpoints,
            hosted,
            credential: credential.map(Arc::new),
            ..Self::default()
        }
    }

    /// Called once the process listens on `address`.
    pub fn set_own_address(&self, address: std::net::SocketAddr) {
        let host = if address.ip().is_unspecified() {
            // A wildcard listener is reached through loopback.
            match address {
                std::net::SocketAddr::V4(_) => "127.0.0.1".to_owned(),
                std::net::SocketAddr::V6(_) => "[::1]".to_owned(),
            }
        } else {
            match address {
                std::net::SocketAddr::V4(v4) => v4.ip().to_string(),
                std::net::SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
            }
        };
        let _ = self
            .own_endpoint
            .set(format!("http://{host}:{}", address.port()));
    }

    /// Where `service` is reached; `None` when it is not deployed (or this process does not
    /// listen yet).
    pub fn endpoint(&self, service: &str) -> Option<String> {
        if self.hosted.iter().any(|hosted| hosted == service) {
            return self.own_endpoint.get().cloned();
        }
        self.endpoints.get(service).cloned()
    }

    pub fn is_deployed(&self, service: &str) -> bool {
        self.hosted.iter().any(|hosted| hosted == service) || self.endpoints.contains_key(service)
    }

    /// A channel to `service` authenticated as this process, acting for `tenant` when given;
    /// `Ok(None)` when the service is not deployed.
    pub fn channel(
        &self,
        service: &str,
        tenant: Option<&str>,
    ) -> Result<Option<PeerChannel>, Error> {
        let Some(endpoint) = self.endpoint(service) else {
            return Ok(None);
        };
        let credential = self.credential.clone().ok_or_else(|| {
            Error::internal("calling another service needs auth.service_token or auth.hs256_secret")
        })?;
        let channel = {
            let mut channels = self
                .channels
                .lock()
                .map_err(|_| Error::internal("peer channel lock poisoned"))?;
            match channels.get(&endpoint) {
                Some(channel) => channel.clone(),
                None => {
                    let channel = Endpoint::from_shared(endpoint.clone())
                        .map_err(Error::internal)?
                        .connect_timeout(Duration::from_secs(5))
                        .tcp_nodelay(true)
                        .connect_lazy();
                    channels.insert(endpoint, channel.clone());
                    channel
                }
            }
        };
        Ok(Some(InterceptedService::new(
            channel,
            PeerAuth {
                credential,
                tenant: tenant.map(str::to_owned),
            },
        )))
    }
}

/// How long a call to another service may take.
const DEADLINE: Duration = Duration::from_secs(2);

/// The answer of `service` to `call`: `None` for NOT_FOUND; UNAVAILABLE for what a retry may
/// cure (the service down, slow, busy); FAILED_PRECONDITION (`PEER_REFUSED`) for a refusal.
pub async fn call<T>(
    service: &str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<Option<T>, Error> {
    match tokio::time::timeout(DEADLINE, call).await {
        Ok(Ok(response)) => Ok(Some(response.into_inner())),
        Ok(Err(status)) => match status.code() {
            tonic::Code::NotFound => Ok(None),
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
            | tonic::Code::Internal
            | tonic::Code::Unknown
            | tonic::Code::Cancelled => Err(Error::Unavailable(format!(
                "the {service} service answered {:?}",
                status.code()
            ))),
            code => Err(Error::FailedPrecondition {
                reason: "PEER_REFUSED",
                message: format!("the {service} service refused the call: {code:?}"),
            }),
        },
        Err(_) => Err(Error::Unavailable(format!(
            "the {service} service did not answer within {DEADLINE:?}"
        ))),
    }
}
