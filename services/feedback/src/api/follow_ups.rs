//! Follow-up RPCs: closing the loop with detractors.

use throughline_proto::feedback::v1::*;
use throughline_runtime::Error;

use super::Api;

impl Api {
    pub(super) async fn get_follow_up(
        &self,
        _tenant: &str,
        _request: GetFollowUpRequest,
    ) -> Result<GetFollowUpResponse, Error> {
        Err(Error::Unavailable("GetFollowUp is not built yet".into()))
    }

    pub(super) async fn list_follow_ups(
        &self,
        _tenant: &str,
        _request: ListFollowUpsRequest,
    ) -> Result<ListFollowUpsResponse, Error> {
        Err(Error::Unavailable("ListFollowUps is not built yet".into()))
    }

    pub(super) async fn update_follow_up(
        &self,
        _tenant: &str,
        _request: UpdateFollowUpRequest,
    ) -> Result<UpdateFollowUpResponse, Error> {
        Err(Error::Unavailable("UpdateFollowUp is not built yet".into()))
    }
}
