//! ExportProfile, EraseProfile.

use throughline_proto::event::v1::ProfileErased;
use throughline_proto::profile::v1::*;
use tonic::{Request, Status};

use super::{Api, caller, work};
use crate::error::Result;
use crate::store::{self, PROFILES};
use crate::{events, privacy};

impl Api {
    pub(super) async fn export(
        &self,
        request: Request<ExportProfileRequest>,
    ) -> Result<ExportProfileResponse, Status> {
        let caller = caller(&request)?;
        let id = store::parse_name(&request.get_ref().name, PROFILES, "name")?;
        let db = &self.service.db;
        let row = store::require_profile(db, &caller.tenant, id, false).await?;
        let document = privacy::export(db, &row).await?;
        Ok(ExportProfileResponse {
            data: Some(throughline_runtime::json::json_to_struct(document)),
            export_time: Some(store::timestamp(store::now_us())),
        })
    }

    pub(super) async fn erase(
        &self,
        request: Request<EraseProfileRequest>,
    ) -> Result<EraseProfileResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = store::parse_name(&request.name, PROFILES, "name")?.to_owned();
        if request.reason.len() > 1024 {
            return Err(crate::error::Error::invalid("reason", "at most 1024 bytes").into());
        }
        let tenant = caller.tenant.clone();
        self.write(
            &caller,
            "EraseProfile",
            &request.request_id,
            &request,
            work!(|tx| {
                let (tenant, id) = (tenant.clone(), id.clone());
                async move {
                    // A merged profile is part of the customer it was merged into: erasing
                    // it erases that customer (and every profile merged into them).
                    let mut row = store::require_profile(tx, &tenant, &id, true).await?;
                    for _ in 0..16 {
                        match row.merged_into.clone() {
                            Some(next) => {
                                row = store::require_profile(tx, &tenant, &next, true).await?
                            }
                            None => break,
                        }
                    }
                    let id = row.id.clone();
                    let already = row.state == ProfileState::Erased as i32;
                    let erased = privacy::erase(tx, &row).await?;
                    if !already {
                        events::erased(
                            tx,
                            &tenant,
                            &id,
                            ProfileErased {
                                profile: store::profile_name(&id),
                                merged_profiles: erased
                                    .iter()
                                    .map(|p| store::profile_name(p))
                                    .collect(),
                            },
                        )
                        .await?;
                    }
                    let row = store::require_profile(tx, &tenant, &id, false).await?;
                    Ok(EraseProfileResponse {
                        profile: Some(store::assemble(tx, &row).await?),
                        erased_profiles: erased.iter().map(|p| store::profile_name(p)).collect(),
                    })
                }
            }),
        )
        .await
    }
}
