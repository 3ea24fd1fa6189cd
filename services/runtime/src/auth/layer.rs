//! The tower layer that authenticates each call and checks the scope its RPC declares.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

use super::{Authenticator, PLATFORM_ACT, Principal, TENANT_HEADER};
use crate::error::Error;

/// Services anyone may call: Kubernetes probes and tooling (grpcurl, buf curl) need them
/// before they hold credentials, and they reveal nothing about any tenant.
const PUBLIC_SERVICES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S> Service<Request<Body>> for AuthService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if PUBLIC_SERVICES
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            return self.inner.call(request).boxed();
        }
        let mut principal = match self.authenticator.authenticate(request.headers()) {
            Ok(principal) => principal,
            Err(error) => return refuse(error),
        };
        if let Some(tenant) = request.headers().get(TENANT_HEADER) {
            match act_for(&principal, tenant) {
                Ok(tenant) => principal.tenant = tenant,
                Err(error) => return refuse(error),
            }
        }
        // An RPC without a declared scope cannot be authorised: refuse rather than guess.
        let Some(required) = throughline_proto::required_scope(path) else {
            return refuse(Error::PermissionDenied(format!(
                "no scope is declared for {path}"
            )));
        };
        if !principal.has_scope(required) {
            return refuse(Error::PermissionDenied(format!(
                "this call requires the scope {required}"
            )));
        }
        tracing::Span::current().record("tenant", principal.tenant.as_str());
        request.extensions_mut().insert(principal);
        self.inner.call(request).boxed()
    }
}

/// The tenant a platform caller acts for; anyone else naming a tenant is refused, so a
/// tenant's token can never reach another tenant by adding a header.
fn act_for(principal: &Principal, tenant: &http::HeaderValue) -> Result<String, Error> {
    if !principal.has_scope(PLATFORM_ACT) {
        return Err(Error::PermissionDenied(format!(
            "{TENANT_HEADER} requires the scope {PLATFORM_ACT}"
        )));
    }
    match tenant.to_str() {
        Ok(tenant) if !tenant.trim().is_empty() => Ok(tenant.to_owned()),
        _ => Err(Error::invalid(TENANT_HEADER, "must name a tenant")),
    }
}

fn refuse<E: Send + 'static>(error: Error) -> BoxFuture<'static, Result<Response<Body>, E>> {
    let status: tonic::Status = error.into();
    futures::future::ready(Ok(status.into_http())).boxed()
}
