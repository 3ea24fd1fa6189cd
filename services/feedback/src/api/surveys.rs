//! Survey RPCs: CRUD, publish and archive.

use throughline_proto::feedback::v1::*;
use throughline_runtime::Error;

use super::Api;

impl Api {
    pub(super) async fn create_survey(
        &self,
        _tenant: &str,
        _request: CreateSurveyRequest,
    ) -> Result<CreateSurveyResponse, Error> {
        Err(Error::Unavailable("CreateSurvey is not built yet".into()))
    }

    pub(super) async fn get_survey(
        &self,
        _tenant: &str,
        _request: GetSurveyRequest,
    ) -> Result<GetSurveyResponse, Error> {
        Err(Error::Unavailable("GetSurvey is not built yet".into()))
    }

    pub(super) async fn list_surveys(
        &self,
        _tenant: &str,
        _request: ListSurveysRequest,
    ) -> Result<ListSurveysResponse, Error> {
        Err(Error::Unavailable("ListSurveys is not built yet".into()))
    }

    pub(super) async fn update_survey(
        &self,
        _tenant: &str,
        _request: UpdateSurveyRequest,
    ) -> Result<UpdateSurveyResponse, Error> {
        Err(Error::Unavailable("UpdateSurvey is not built yet".into()))
    }

    pub(super) async fn delete_survey(
        &self,
        _tenant: &str,
        _request: DeleteSurveyRequest,
    ) -> Result<DeleteSurveyResponse, Error> {
        Err(Error::Unavailable("DeleteSurvey is not built yet".into()))
    }

    pub(super) async fn publish_survey(
        &self,
        _tenant: &str,
        _request: PublishSurveyRequest,
    ) -> Result<PublishSurveyResponse, Error> {
        Err(Error::Unavailable("PublishSurvey is not built yet".into()))
    }

    pub(super) async fn archive_survey(
        &self,
        _tenant: &str,
        _request: ArchiveSurveyRequest,
    ) -> Result<ArchiveSurveyResponse, Error> {
        Err(Error::Unavailable("ArchiveSurvey is not built yet".into()))
    }
}
