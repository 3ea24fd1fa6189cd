//! `GetJourneyStats`: per version and node, with the uplift against the holdout.

use throughline_proto::orchestration::v1::*;
use throughline_runtime::auth::Principal;
use throughline_runtime::time::timestamp_us;
use throughline_runtime::{Error, FieldViolation};

use super::Api;
use crate::stats::{self, Scope};

impl Api {
    pub(super) async fn get_journey_stats(
        &self,
        caller: &Principal,
        request: GetJourneyStatsRequest,
    ) -> Result<GetJourneyStatsResponse, Error> {
        let mut violations = Vec::new();
        if request.version < 0 {
            violations.push(FieldViolation::new(
                "version",
                "must be a published version, or 0 for every version",
            ));
        }
        let (mut from, mut until) = (None, None);
        if let Some(range) = &request.entry_time_range {
            from = range.start_time.as_ref().and_then(timestamp_us);
            until = range.end_time.as_ref().and_then(timestamp_us);
            if let (Some(from), Some(until)) = (from, until)
                && from > until
            {
                violations.push(FieldViolation::new(
                    "entry_time_range.end_time",
                    "must not be before start_time",
                ));
            }
        }
        let journey = self
            .stored(&caller.tenant, &request.journey, "journey")
            .await
            .map_err(|error| super::collect(error, &mut violations));
        Error::unless_valid(violations)?;
        let journey = journey?;
        let tenant = caller.tenant.as_str();
        let db = self.service.db();
        // The nodes in definition order: of the version asked for, or of every version, the
        // newest first.
        let versions = if request.version > 0 {
            request.version..=request.version
        } else {
            1..=journey.published_version
        };
        let mut node_order: Vec<String> = Vec::new();
        for version in versions.rev() {
            let definition = self
                .service
                .version(db, tenant, &journey.id, version)
                .await?;
            for node in &definition.nodes {
                if !node_order.contains(&node.id) {
                    node_order.push(node.id.clone());
                }
            }
        }
        let scope = Scope {
            tenant: tenant.to_owned(),
            journey: journey.id.clone(),
            version: request.version,
            entered_from_us: from,
            entered_until_us: until,
        };
        Ok(GetJourneyStatsResponse {
            stats: Some(stats::journey_stats(db, &scope, &node_order).await?),
        })
    }
}
