//! GetThemes: recurring key phrases of free-text answers.

use throughline_proto::feedback::v1::*;
use throughline_runtime::Error;

use super::Api;

impl Api {
    pub(super) async fn get_themes(
        &self,
        _tenant: &str,
        _request: GetThemesRequest,
    ) -> Result<GetThemesResponse, Error> {
        Err(Error::Unavailable("GetThemes is not built yet".into()))
    }
}
