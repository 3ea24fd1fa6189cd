//! Invitation RPCs: RequestFeedback with the fatigue rule and the contact budget.

use throughline_proto::feedback::v1::*;
use throughline_runtime::Error;

use super::Api;

impl Api {
    pub(super) async fn request_feedback(
        &self,
        _tenant: &str,
        _request: RequestFeedbackRequest,
    ) -> Result<RequestFeedbackResponse, Error> {
        Err(Error::Unavailable(
            "RequestFeedback is not built yet".into(),
        ))
    }

    pub(super) async fn get_invitation(
        &self,
        _tenant: &str,
        _request: GetInvitationRequest,
    ) -> Result<GetInvitationResponse, Error> {
        Err(Error::Unavailable("GetInvitation is not built yet".into()))
    }

    pub(super) async fn list_invitations(
        &self,
        _tenant: &str,
        _request: ListInvitationsRequest,
    ) -> Result<ListInvitationsResponse, Error> {
        Err(Error::Unavailable(
            "ListInvitations is not built yet".into(),
        ))
    }
}
