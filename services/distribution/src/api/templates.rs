//! Template RPCs: CRUD and RenderTemplate.

use throughline_proto::distribution::v1::*;
use throughline_runtime::Error;

use super::Api;

fn not_yet() -> Error {
    Error::Unavailable("templates are not served yet".to_owned())
}

impl Api {
    pub(super) async fn create_template(
        &self,
        _tenant: &str,
        _request: CreateTemplateRequest,
    ) -> Result<CreateTemplateResponse, Error> {
        Err(not_yet())
    }

    pub(super) async fn get_template(
        &self,
        _tenant: &str,
        _request: GetTemplateRequest,
    ) -> Result<GetTemplateResponse, Error> {
        Err(not_yet())
    }

    pub(super) async fn list_templates(
        &self,
        _tenant: &str,
        _request: ListTemplatesRequest,
    ) -> Result<ListTemplatesResponse, Error> {
        Err(not_yet())
    }

    pub(super) async fn update_template(
        &self,
        _tenant: &str,
        _request: UpdateTemplateRequest,
    ) -> Result<UpdateTemplateResponse, Error> {
        Err(not_yet())
    }

    pub(super) async fn delete_template(
        &self,
        _tenant: &str,
        _request: DeleteTemplateRequest,
    ) -> Result<DeleteTemplateResponse, Error> {
        Err(not_yet())
    }

    pub(super) async fn render_template(
        &self,
        _tenant: &str,
        _request: RenderTemplateRequest,
    ) -> Result<RenderTemplateResponse, Error> {
        Err(not_yet())
    }
}
