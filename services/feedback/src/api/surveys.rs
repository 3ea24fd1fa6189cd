//! Survey RPCs: CRUD, publish and archive.
//!
//! The draft lives in `feedback_surveys`; PublishSurvey freezes it as the next version in
//! `feedback_survey_versions`. Every write bumps the survey's revision, which is its etag.

use futures::FutureExt;
use futures::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use throughline_proto::feedback::v1::*;
use throughline_runtime::db::write_transaction;
use throughline_runtime::idempotency::Key;
use throughline_runtime::request::{UpdateMask, is_resource_id, page_size, resource_id};
use throughline_runtime::time::{now_us, timestamp};
use throughline_runtime::{Error, FieldViolation};

use super::Api;
use crate::store::surveys::{self as store, Lookup, Stored, survey_name};
use crate::survey;

/// The fields UpdateSurvey can change.
const UPDATABLE: [&str; 8] = [
    "display_name",
    "description",
    "questions",
    "default_language",
    "invitation_ttl",
    "fatigue_interval",
    "detractor_thresholds",
    "invitation_template",
];

fn not_found(id: &str) -> Error {
    Error::NotFound(survey_name(id))
}

fn stale(id: &str) -> Error {
    Error::Aborted(format!(
        "{} has changed since the etag was read; read it again",
        survey_name(id)
    ))
}

fn archived(id: &str) -> Error {
    Error::FailedPrecondition {
        reason: "SURVEY_ARCHIVED",
        message: format!("{} is archived and can no longer change", survey_name(id)),
    }
}

/// The survey without its output-only fields, which the caller may send but does not set.
fn input(survey: Survey) -> Survey {
    Survey {
        name: String::new(),
        state: 0,
        version: 0,
        create_time: None,
        update_time: None,
        publish_time: None,
        etag: String::new(),
        ..survey
    }
}

/// A keyset page token bound to the state filter: hex of `states|display_name|id`, so that
/// it is opaque and URL-safe. The states are sorted and deduplicated, so the same filter in
/// another order takes the same tokens.
fn encode_token(states: &str, last: &Survey) -> String {
    let id = last.name.strip_prefix("surveys/").unwrap_or_default();
    let text = format!("{states}\u{1}{}\u{1}{id}", last.display_name);
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str, states: &str) -> Result<Option<(String, String)>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("page_token", "not a page token of ListSurveys");
    if !token.len().is_multiple_of(2) || token.len() > 4096 {
        return Err(invalid());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes.ok_or_else(invalid)?).map_err(|_| invalid())?;
    // The display name may hold anything, the filter and the id never the separator.
    let Some((filter, rest)) = text.split_once('\u{1}') else {
        return Err(invalid());
    };
    let Some((display_name, id)) = rest.rsplit_once('\u{1}') else {
        return Err(invalid());
    };
    if filter != states {
        return Err(Error::invalid(
            "page_token",
            "the page token was issued for a different state filter",
        ));
    }
    Ok(Some((display_name.to_owned(), id.to_owned())))
}

/// The states of a ListSurveys filter, each known, sorted and once.
fn states_filter(values: &[i32]) -> Result<Vec<i32>, Error> {
    let violations = values
        .iter()
        .enumerate()
        .filter(|(_, value)| {
            !matches!(SurveyState::try_from(**value), Ok(s) if s != SurveyState::Unspecified)
        })
        .map(|(index, value)| {
            FieldViolation::new(format!("states[{index}]"), format!("unknown state {value}"))
        })
        .collect();
    Error::unless_valid(violations)?;
    let mut states = values.to_vec();
    states.sort_unstable();
    states.dedup();
    Ok(states)
}

/// Publishes the draft of `id` as its next version, inside `transaction`.
fn publish_in(
    transaction: &DatabaseTransaction,
    tenant: String,
    id: String,
) -> BoxFuture<'_, Result<PublishSurveyResponse, Error>> {
    async move {
        let now = now_us();
        let Some(stored) = store::mark_published(transaction, &tenant, &id, now).await? else {
            return match store::find(transaction, &tenant, &id).await? {
                Some(_) => Err(archived(&id)),
                None => Err(not_found(&id)),
            };
        };
        // The draft was checked when saved; checked again in case the rules have changed
        // since. A draft that no longer passes is the survey's state, not the request's.
        let violations = survey::violations(&stored.survey);
        if !violations.is_empty() {
            let found: Vec<String> = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect();
            return Err(Error::FailedPrecondition {
                reason: "SURVEY_INVALID",
                message: format!(
                    "the draft must be corrected before it is published: {}",
                    found.join("; ")
                ),
            });
        }
        let version = stored.latest;
        let definition = Survey {
            name: String::new(),
            state: 0,
            version,
            update_time: Some(timestamp(now)),
            publish_time: None,
            etag: String::new(),
            ..stored.survey
        };
        store::insert_version(transaction, &tenant, &id, version, &definition, now).await?;
        match store::published(transaction, &tenant, &id, version).await? {
            Lookup::Found(published) => Ok(PublishSurveyResponse {
                survey: Some(published.survey),
            }),
            _ => Err(Error::internal("the version just published is missing")),
        }
    }
    .boxed()
}

impl Api {
    pub(super) async fn create_survey(
        &self,
        tenant: &str,
        request: CreateSurveyRequest,
    ) -> Result<CreateSurveyResponse, Error> {
        let Some(draft) = request.survey.clone() else {
            return Err(Error::invalid("survey", "is required"));
        };
        let mut violations = Vec::new();
        if !request.survey_id.is_empty() && !is_resource_id(&request.survey_id) {
            violations.push(FieldViolation::new(
                "survey_id",
                "must be 1 to 63 lower-case letters, digits and hyphens",
            ));
        }
        let draft = input(draft);
        violations.extend(survey::violations(&draft));
        Error::unless_valid(violations)?;
        let id = if request.survey_id.is_empty() {
            uuid::Uuid::now_v7().simple().to_string()
        } else {
            request.survey_id.clone()
        };
        let db = &self.service.db;
        if request.request_id.is_empty() {
            let stored = store::insert(db, tenant, &id, &draft, now_us()).await?;
            return Ok(CreateSurveyResponse {
                survey: Some(stored.survey),
            });
        }
        let owner = tenant.to_owned();
        let key = Key {
            tenant,
            method: "CreateSurvey",
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(db, key, &request, move |transaction| {
                async move {
                    let stored = store::insert(transaction, &owner, &id, &draft, now_us()).await?;
                    Ok(CreateSurveyResponse {
                        survey: Some(stored.survey),
                    })
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn get_survey(
        &self,
        tenant: &str,
        request: GetSurveyRequest,
    ) -> Result<GetSurveyResponse, Error> {
        let id = resource_id(&request.name, "surveys", "name")?;
        if request.version < 0 {
            return Err(Error::invalid(
                "version",
                "must be a published version, or 0 for the draft",
            ));
        }
        let db = &self.service.db;
        if request.version == 0 {
            return match store::find(db, tenant, id).await? {
                Some(stored) => Ok(GetSurveyResponse {
                    survey: Some(stored.survey),
                }),
                None => Err(not_found(id)),
            };
        }
        match store::published(db, tenant, id, request.version).await? {
            Lookup::Found(published) => Ok(GetSurveyResponse {
                survey: Some(published.survey),
            }),
            Lookup::Missing | Lookup::Unpublished => Err(Error::NotFound(format!(
                "version {} of {}",
                request.version,
                survey_name(id)
            ))),
        }
    }

    pub(super) async fn list_surveys(
        &self,
        tenant: &str,
        request: ListSurveysRequest,
    ) -> Result<ListSurveysResponse, Error> {
        let states = states_filter(&request.states)?;
        let page_size = page_size(request.page_size)?;
        let filter = states
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let after = decode_token(&request.page_token, &filter)?;
        let rows = store::list(
            &self.service.db,
            tenant,
            &states,
            after
                .as_ref()
                .map(|(name, id)| (name.as_str(), id.as_str())),
            page_size + 1,
        )
        .await?;
        let mut surveys: Vec<Survey> = rows.into_iter().map(|stored| stored.survey).collect();
        let mut next_page_token = String::new();
        if surveys.len() > page_size {
            surveys.truncate(page_size);
            if let Some(last) = surveys.last() {
                next_page_token = encode_token(&filter, last);
            }
        }
        Ok(ListSurveysResponse {
            surveys,
            next_page_token,
        })
    }

    pub(super) async fn update_survey(
        &self,
        tenant: &str,
        request: UpdateSurveyRequest,
    ) -> Result<UpdateSurveyResponse, Error> {
        let Some(changes) = request.survey else {
            return Err(Error::invalid("survey", "is required"));
        };
        let id = resource_id(&changes.name, "surveys", "survey.name")?;
        let mask = UpdateMask::parse(request.update_mask, &UPDATABLE)?;
        let masked = |field: &str| mask.has(field);

        let db = &self.service.db;
        let Some(Stored {
            survey: current,
            state,
            revision,
            ..
        }) = store::find(db, tenant, id).await?
        else {
            return Err(not_found(id));
        };
        if state == SurveyState::Archived {
            return Err(archived(id));
        }
        if !changes.etag.is_empty() && changes.etag != current.etag {
            return Err(stale(id));
        }
        let mut draft = input(current);
        if masked("display_name") {
            draft.display_name = changes.display_name;
        }
        if masked("description") {
            draft.description = changes.description;
        }
        if masked("questions") {
            draft.questions = changes.questions;
        }
        if masked("default_language") {
            draft.default_language = changes.default_language;
        }
        if masked("invitation_ttl") {
            draft.invitation_ttl = changes.invitation_ttl;
        }
        if masked("fatigue_interval") {
            draft.fatigue_interval = changes.fatigue_interval;
        }
        if masked("detractor_thresholds") {
            draft.detractor_thresholds = changes.detractor_thresholds;
        }
        if masked("invitation_template") {
            draft.invitation_template = changes.invitation_template;
        }
        Error::unless_valid(survey::violations(&draft))?;
        // Guarded by the revision read above: a concurrent write makes this one stale.
        match store::update_draft(db, tenant, id, revision, &draft, now_us()).await? {
            Some(stored) => Ok(UpdateSurveyResponse {
                survey: Some(stored.survey),
            }),
            None => match store::find(db, tenant, id).await? {
                Some(now) if now.state == SurveyState::Archived => Err(archived(id)),
                Some(_) => Err(stale(id)),
                None => Err(not_found(id)),
            },
        }
    }

    pub(super) async fn delete_survey(
        &self,
        tenant: &str,
        request: DeleteSurveyRequest,
    ) -> Result<DeleteSurveyResponse, Error> {
        let id = resource_id(&request.name, "surveys", "name")?;
        let transaction = write_transaction(&self.service.db).await?;
        let Some(current) = store::find(&transaction, tenant, id).await? else {
            return Err(not_found(id));
        };
        if !request.etag.is_empty() && request.etag != current.survey.etag {
            return Err(stale(id));
        }
        // Invitations and responses keep the version they were made with; deleting it would
        // leave them unreadable.
        if store::in_use(&transaction, tenant, id).await? {
            return Err(Error::FailedPrecondition {
                reason: "SURVEY_IN_USE",
                message: format!(
                    "{} has invitations or responses; archive it instead",
                    survey_name(id)
                ),
            });
        }
        if !store::delete(&transaction, tenant, id, Some(current.revision)).await? {
            return Err(stale(id));
        }
        transaction.commit().await?;
        self.service
            .forget_survey(tenant, id, current.survey.version);
        Ok(DeleteSurveyResponse {})
    }

    pub(super) async fn publish_survey(
        &self,
        tenant: &str,
        request: PublishSurveyRequest,
    ) -> Result<PublishSurveyResponse, Error> {
        let id = resource_id(&request.name, "surveys", "name")?.to_owned();
        let db = &self.service.db;
        let response = if request.request_id.is_empty() {
            let transaction = write_transaction(db).await?;
            let response = publish_in(&transaction, tenant.to_owned(), id.clone()).await?;
            transaction.commit().await?;
            response
        } else {
            let owner = tenant.to_owned();
            let key = Key {
                tenant,
                method: "PublishSurvey",
                request_id: &request.request_id,
            };
            let published = id.clone();
            self.service
                .idempotency
                .run(db, key, &request, move |transaction| {
                    publish_in(transaction, owner, published)
                })
                .await?
        };
        let version = response.survey.as_ref().map_or(0, |survey| survey.version);
        self.service.forget_survey(tenant, &id, version);
        Ok(response)
    }

    pub(super) async fn archive_survey(
        &self,
        tenant: &str,
        request: ArchiveSurveyRequest,
    ) -> Result<ArchiveSurveyResponse, Error> {
        let id = resource_id(&request.name, "surveys", "name")?.to_owned();
        let response = self.archive(tenant, &id, &request).await?;
        let version = response.survey.as_ref().map_or(0, |survey| survey.version);
        self.service.forget_survey(tenant, &id, version);
        Ok(response)
    }

    async fn archive(
        &self,
        tenant: &str,
        id: &str,
        request: &ArchiveSurveyRequest,
    ) -> Result<ArchiveSurveyResponse, Error> {
        let id = id.to_owned();
        let db = &self.service.db;
        // Archiving is idempotent by itself; a request_id still replays the first answer.
        if request.request_id.is_empty() {
            return match store::archive(db, tenant, &id, now_us()).await? {
                Some(stored) => Ok(ArchiveSurveyResponse {
                    survey: Some(stored.survey),
                }),
                None => Err(not_found(&id)),
            };
        }
        let owner = tenant.to_owned();
        let key = Key {
            tenant,
            method: "ArchiveSurvey",
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(db, key, request, move |transaction| {
                async move {
                    match store::archive(transaction, &owner, &id, now_us()).await? {
                        Some(stored) => Ok(ArchiveSurveyResponse {
                            survey: Some(stored.survey),
                        }),
                        None => Err(not_found(&id)),
                    }
                }
                .boxed()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_filter() {
        let last = Survey {
            name: "surveys/s-1".into(),
            display_name: "Odd \u{1} name".into(),
            ..Survey::default()
        };
        let token = encode_token("1,2", &last);
        assert_eq!(
            decode_token(&token, "1,2").unwrap(),
            Some(("Odd \u{1} name".to_owned(), "s-1".to_owned()))
        );
        assert!(decode_token(&token, "1").is_err());
        assert!(decode_token(&token[1..], "1,2").is_err());
        assert!(decode_token("zz", "1,2").is_err());
        assert_eq!(decode_token("", "1,2").unwrap(), None);
    }

    #[test]
    fn state_filters_are_checked_and_normalised() {
        assert_eq!(states_filter(&[2, 1, 2]).unwrap(), [1, 2]);
        let Err(Error::InvalidArgument(violations)) = states_filter(&[1, 0, 9]) else {
            panic!("unknown states are refused");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["states[1]", "states[2]"]);
    }
}
