//! ListInteractions answered with the page's encoding, made once for every caller the page's
//! read served. Callers asking for one timeline at once share one read (`timeline::Pages`);
//! tonic's generated server would then still copy and encode the page once per caller, which
//! was the largest cost left on a timeline many agents have open. This route takes
//! ListInteractions before the generated server does and answers with a message that is, on
//! the wire, a `ListInteractionsResponse`: a client sees no difference. Every other method,
//! and every layer around the server (authentication, scopes, deadlines, telemetry), is as
//! before.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::bytes::Bytes;
use throughline_proto::codec::Codec;
use throughline_proto::interaction::v1::ListInteractionsRequest;
use throughline_proto::interaction::v1::interaction_service_server::InteractionServiceServer;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::{Api, tenant};

const LIST_INTERACTIONS: &str = "/throughline.interaction.v1.InteractionService/ListInteractions";

/// `ListInteractionsResponse` with its interactions already encoded: a repeated message field
/// and a repeated `bytes` field of the same number are the same bytes on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncodedListInteractionsResponse {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub interactions: Vec<Bytes>,
    #[prost(string, tag = "2")]
    pub next_page_token: String,
}

/// The interaction service's gRPC server: the generated one, with ListInteractions answered
/// from the shared page's encoding.
#[derive(Debug, Clone)]
pub struct InteractionGrpc {
    api: Arc<Api>,
    generated: InteractionServiceServer<Api>,
}

impl InteractionGrpc {
    pub(crate) fn new(api: Api) -> Self {
        let api = Arc::new(api);
        Self {
            generated: InteractionServiceServer::from_arc(api.clone()),
            api,
        }
    }
}

impl NamedService for InteractionGrpc {
    const NAME: &'static str = <InteractionServiceServer<Api> as NamedService>::NAME;
}

impl Service<http::Request<Body>> for InteractionGrpc {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != LIST_INTERACTIONS {
            return self.generated.call(request);
        }
        let method = EncodedPages(self.api.clone());
        Box::pin(async move {
            // As the generated server does it, with the same codec and default limits.
            let mut grpc = tonic::server::Grpc::new(Codec::<
                EncodedListInteractionsResponse,
                ListInteractionsRequest,
            >::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}

struct EncodedPages(Arc<Api>);

impl UnaryService<ListInteractionsRequest> for EncodedPages {
    type Response = EncodedListInteractionsResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<ListInteractionsRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let tenant = tenant(&request)?;
            let (page, next_page_token) =
                api.interactions_page(&tenant, request.into_inner()).await?;
            Ok(Response::new(EncodedListInteractionsResponse {
                interactions: page.encoded().to_vec(),
                next_page_token,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use throughline_proto::interaction::v1::{Interaction, ListInteractionsResponse};

    use super::*;

    #[test]
    fn the_route_path_is_list_interactions_of_the_contract() {
        // A path of no method would never match, and every call would reach the generated
        // server, whose stub answers UNIMPLEMENTED.
        assert_eq!(
            LIST_INTERACTIONS,
            format!("/{}/ListInteractions", InteractionGrpc::NAME)
        );
        assert_eq!(
            throughline_proto::required_scope(LIST_INTERACTIONS),
            Some("interaction:read")
        );
    }

    #[test]
    fn an_encoded_page_is_a_list_interactions_response_on_the_wire() {
        let interactions: Vec<Interaction> = (0..3)
            .map(|n| Interaction {
                name: format!("interactions/i{n}"),
                r#type: "page_view".to_owned(),
                ..Interaction::default()
            })
            .collect();
        let response = ListInteractionsResponse {
            interactions: interactions.clone(),
            next_page_token: "next".to_owned(),
        };
        let encoded = EncodedListInteractionsResponse {
            interactions: interactions
                .iter()
                .map(|interaction| Bytes::from(interaction.encode_to_vec()))
                .collect(),
            next_page_token: "next".to_owned(),
        };
        assert_eq!(encoded.encode_to_vec(), response.encode_to_vec());
        assert_eq!(
            ListInteractionsResponse::decode(encoded.encode_to_vec().as_slice()).unwrap(),
            response
        );
    }
}
