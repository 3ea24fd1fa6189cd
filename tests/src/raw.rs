//! Calls any RPC by its path with an empty request: how tests cover every method of the
//! descriptor set without writing a client call for each.

use std::str::FromStr;

use http::uri::PathAndQuery;
use tonic::transport::Channel;

use crate::bearer;

/// Credentials a raw call carries.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a str),
}

/// Calls `path` (`/pkg.Service/Method`) with an empty message, which decodes as the default
/// request of any method; returns the status the server answered (OK included).
pub async fn raw_call(channel: Channel, path: &str, credentials: Credentials<'_>) -> tonic::Status {
    // `()` is prost's google.protobuf.Empty: zero bytes on the wire.
    raw_call_with(channel, path, credentials, ()).await
}

/// Calls `path` with `message` encoded as its request, whatever the method expects: how tests
/// send a request whose bytes do not fit the method.
pub async fn raw_call_with<M>(
    channel: Channel,
    path: &str,
    credentials: Credentials<'_>,
    message: M,
) -> tonic::Status
where
    M: prost::Message + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(error) = grpc.ready().await {
        return tonic::Status::unavailable(error.to_string());
    }
    let mut request = tonic::Request::new(message);
    match credentials {
        Credentials::None => {}
        Credentials::Bearer(token) => request = bearer(request, token),
        Credentials::ApiKey(key) => {
            request
                .metadata_mut()
                .insert("x-api-key", key.parse().unwrap());
        }
    }
    let codec = tonic_prost::ProstCodec::<M, ()>::default();
    let path = PathAndQuery::from_str(path).unwrap();
    match grpc.unary(request, path, codec).await {
        Ok(_) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

/// Whether a call answered with `code` got past authentication, authorisation and admission
/// into the service itself: an empty request is refused by the handler as invalid or as
/// naming nothing, or answered by a handler not written yet.
pub fn reached_the_service(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::Unimplemented
    )
}
