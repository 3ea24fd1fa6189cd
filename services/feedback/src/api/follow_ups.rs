//! Follow-up RPCs: closing the loop with detractors.

use throughline_proto::event::v1::FollowUpUpdated;
use throughline_proto::feedback::v1::*;
use throughline_runtime::customer::is_client_id;
use throughline_runtime::db::write_transaction;
use throughline_runtime::events::new_event;
use throughline_runtime::request::{UpdateMask, page_size, resource_id};
use throughline_runtime::time::{PageToken, next_page, now_us, timestamp, timestamp_us};
use throughline_runtime::{Error, FieldViolation};

use super::{Api, violations_of};
use crate::store::follow_ups::{self, ListFilter};

const UPDATABLE: [&str; 3] = ["state", "owner", "notes"];
const MAX_OWNER_LEN: usize = 200;
const MAX_NOTES_LEN: usize = 10_000;

/// `open`, `contacted` or `resolved`, as `feedback.follow_up_updated` names states.
fn state_label(state: i32) -> &'static str {
    match FollowUpState::try_from(state) {
        Ok(FollowUpState::Open) => "open",
        Ok(FollowUpState::Contacted) => "contacted",
        Ok(FollowUpState::Resolved) => "resolved",
        _ => "",
    }
}

impl Api {
    pub(super) async fn get_follow_up(
        &self,
        tenant: &str,
        request: GetFollowUpRequest,
    ) -> Result<GetFollowUpResponse, Error> {
        let id = resource_id(&request.name, "followUps", "name")?;
        let found = follow_ups::find(&self.service.db, tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(request.name.clone()))?;
        Ok(GetFollowUpResponse {
            follow_up: Some(found),
        })
    }

    pub(super) async fn list_follow_ups(
        &self,
        tenant: &str,
        request: ListFollowUpsRequest,
    ) -> Result<ListFollowUpsResponse, Error> {
        let mut violations = Vec::new();
        let mut filter = ListFilter::default();
        for (index, state) in request.states.iter().enumerate() {
            match FollowUpState::try_from(*state) {
                Ok(state) if state != FollowUpState::Unspecified => {
                    filter.states.push(state as i32)
                }
                _ => violations.push(FieldViolation::new(
                    format!("states[{index}]"),
                    format!("unknown follow-up state {state}"),
                )),
            }
        }
        if !request.owner.is_empty() {
            filter.owner = Some(request.owner.clone());
        }
        if !request.survey.is_empty() {
            filter.survey_id = resource_id(&request.survey, "surveys", "survey")
                .map_err(|error| violations_of(error, &mut violations))
                .ok()
                .map(str::to_owned);
        }
        if !request.profile.is_empty() {
            if request
                .profile
                .strip_prefix("profiles/")
                .is_some_and(is_client_id)
            {
                filter.profile = Some(request.profile.clone());
            } else {
                violations.push(FieldViolation::new("profile", "must be profiles/{profile}"));
            }
        }
        let size = page_size(request.page_size)
            .map_err(|error| violations_of(error, &mut violations))
            .unwrap_or_default();
        let fingerprint = format!("{filter:?}");
        let token =
            PageToken::decode(&request.page_token, &fingerprint).unwrap_or_else(|problem| {
                violations.push(FieldViolation::new("page_token", problem));
                None
            });
        Error::unless_valid(violations)?;
        let mut rows =
            follow_ups::list(&self.service.db, tenant, &filter, token.as_ref(), size + 1).await?;
        let next = next_page(&mut rows, size, |row| PageToken {
            sort_us: row
                .create_time
                .as_ref()
                .and_then(timestamp_us)
                .unwrap_or_default(),
            id: row.name.rsplit('/').next().unwrap_or_default().to_owned(),
        });
        Ok(ListFollowUpsResponse {
            follow_ups: rows,
            next_page_token: next
                .map(|token| token.encode(&fingerprint))
                .unwrap_or_default(),
        })
    }

    pub(super) async fn update_follow_up(
        &self,
        tenant: &str,
        request: UpdateFollowUpRequest,
    ) -> Result<UpdateFollowUpResponse, Error> {
        let Some(change) = request.follow_up else {
            return Err(Error::invalid("follow_up", "is required"));
        };
        let mut violations = Vec::new();
        let id = resource_id(&change.name, "followUps", "follow_up.name")
            .map_err(|error| violations_of(error, &mut violations))
            .ok()
            .map(str::to_owned);
        let mask = UpdateMask::parse(request.update_mask, &UPDATABLE)
            .map_err(|error| violations_of(error, &mut violations))
            .ok();
        if mask.as_ref().is_some_and(|m| m.has("state"))
            && !matches!(FollowUpState::try_from(change.state), Ok(s) if s != FollowUpState::Unspecified)
        {
            violations.push(FieldViolation::new(
                "follow_up.state",
                "must be OPEN, CONTACTED or RESOLVED",
            ));
        }
        if change.owner.chars().count() > MAX_OWNER_LEN {
            violations.push(FieldViolation::new(
                "follow_up.owner",
                format!("at most {MAX_OWNER_LEN} characters"),
            ));
        }
        if change.notes.chars().count() > MAX_NOTES_LEN {
            violations.push(FieldViolation::new(
                "follow_up.notes",
                format!("at most {MAX_NOTES_LEN} characters"),
            ));
        }
        let etag = match change.etag.as_str() {
            "" => None,
            etag => match etag.parse::<i64>() {
                Ok(revision) => Some(revision),
                Err(_) => {
                    violations.push(FieldViolation::new("follow_up.etag", "not an etag of ours"));
                    None
                }
            },
        };
        Error::unless_valid(violations)?;
        let (Some(id), Some(mask)) = (id, mask) else {
            return Err(Error::internal("a checked update lacks its name or mask"));
        };
        let transaction = write_transaction(&self.service.db).await?;
        let mut follow_up = follow_ups::find(&transaction, tenant, &id)
            .await?
            .ok_or_else(|| Error::NotFound(change.name.clone()))?;
        let revision: i64 = follow_up.etag.parse().map_err(Error::internal)?;
        if etag.is_some_and(|etag| etag != revision) {
            return Err(Error::Aborted(format!(
                "{} has changed since the etag was read; read it again",
                change.name
            )));
        }
        let previous_state = follow_up.state;
        let now = now_us();
        if mask.has("state") {
            follow_up.state = change.state;
            follow_up.resolve_time = (change.state == FollowUpState::Resolved as i32)
                .then(|| follow_up.resolve_time.unwrap_or_else(|| timestamp(now)));
        }
        if mask.has("owner") {
            follow_up.owner = change.owner;
        }
        if mask.has("notes") {
            follow_up.notes = change.notes;
        }
        follow_up.update_time = Some(timestamp(now));
        if !follow_ups::update(&transaction, tenant, &follow_up, revision).await? {
            return Err(Error::Aborted(format!(
                "{} changed during the update; retry",
                change.name
            )));
        }
        follow_up.etag = (revision + 1).to_string();
        let payload = FollowUpUpdated {
            follow_up: follow_up.name.clone(),
            response: follow_up.response.clone(),
            profile: follow_up.profile.clone(),
            state: state_label(follow_up.state).to_owned(),
            previous_state: state_label(previous_state).to_owned(),
            owner: follow_up.owner.clone(),
        };
        let event = new_event(
            crate::NAME,
            tenant,
            "feedback.follow_up_updated",
            &follow_up.name,
            "FollowUpUpdated",
            &payload,
        );
        self.service.outbox.append(&transaction, &event).await?;
        transaction.commit().await?;
        Ok(UpdateFollowUpResponse {
            follow_up: Some(follow_up),
        })
    }
}
