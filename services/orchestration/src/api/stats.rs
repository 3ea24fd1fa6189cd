//! `GetJourneyStats`: per version and node, with the uplift against the holdout.

use throughline_proto::orchestration::v1::*;
use throughline_runtime::Error;
use throughline_runtime::auth::Principal;

use super::Api;

impl Api {
    pub(super) async fn get_journey_stats(
        &self,
        _caller: &Principal,
        _request: GetJourneyStatsRequest,
    ) -> Result<GetJourneyStatsResponse, Error> {
        Err(Error::internal("get_journey_stats: not written yet"))
    }
}
