//! Response RPCs: SubmitResponse (idempotent, partial answers kept) and reading responses.

use throughline_proto::feedback::v1::*;
use throughline_runtime::Error;

use super::Api;

impl Api {
    pub(super) async fn submit_response(
        &self,
        _tenant: &str,
        _request: SubmitResponseRequest,
    ) -> Result<SubmitResponseResponse, Error> {
        Err(Error::Unavailable("SubmitResponse is not built yet".into()))
    }

    pub(super) async fn get_response(
        &self,
        _tenant: &str,
        _request: GetResponseRequest,
    ) -> Result<GetResponseResponse, Error> {
        Err(Error::Unavailable("GetResponse is not built yet".into()))
    }

    pub(super) async fn list_responses(
        &self,
        _tenant: &str,
        _request: ListResponsesRequest,
    ) -> Result<ListResponsesResponse, Error> {
        Err(Error::Unavailable("ListResponses is not built yet".into()))
    }
}
