//! Metric RPCs: GetMetrics and GetDriverAnalysis.

use throughline_proto::feedback::v1::*;
use throughline_runtime::Error;

use super::Api;

impl Api {
    pub(super) async fn get_metrics(
        &self,
        _tenant: &str,
        _request: GetMetricsRequest,
    ) -> Result<GetMetricsResponse, Error> {
        Err(Error::Unavailable("GetMetrics is not built yet".into()))
    }

    pub(super) async fn get_driver_analysis(
        &self,
        _tenant: &str,
        _request: GetDriverAnalysisRequest,
    ) -> Result<GetDriverAnalysisResponse, Error> {
        Err(Error::Unavailable(
            "GetDriverAnalysis is not built yet".into(),
        ))
    }
}
