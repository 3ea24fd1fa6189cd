//! Journeys and their published versions: CRUD of the draft, publish, pause, resume, archive.

use futures::FutureExt;
use prost::Message;
use sea_orm::DatabaseTransaction;
use throughline_proto::orchestration::v1::*;
use throughline_runtime::auth::Principal;
use throughline_runtime::db::write_transaction;
use throughline_runtime::idempotency::Key;
use throughline_runtime::request::{UpdateMask, is_resource_id, page_size, resource_id};
use throughline_runtime::{Error, FieldViolation};

use super::Api;
use crate::definition::{self, references, validate};
use crate::store::journeys::{self as store, Stored, journey_name};
use crate::store::versions;

/// The fields UpdateJourney can change.
const UPDATABLE: [&str; 3] = ["display_name", "description", "definition"];

fn not_found(id: &str) -> Error {
    Error::NotFound(journey_name(id))
}

fn stale(id: &str) -> Error {
    Error::Aborted(format!(
        "{} has changed since the etag was read; read it again",
        journey_name(id)
    ))
}

fn archived(id: &str) -> Error {
    Error::FailedPrecondition {
        reason: "JOURNEY_ARCHIVED",
        message: format!("{} is archived and can no longer change", journey_name(id)),
    }
}

/// The field violations of a journey's own fields and its definition (not its references).
fn violations(journey: &Journey) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    let name = journey.display_name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        violations.push(FieldViolation::new(
            "journey.display_name",
            "required, at most 200 characters",
        ));
    }
    if journey.description.chars().count() > 2000 {
        violations.push(FieldViolation::new(
            "journey.description",
            "at most 2000 characters",
        ));
    }
    match &journey.definition {
        Some(definition) => {
            violations.extend(validate::definition(definition, "journey.definition"));
        }
        None => violations.push(FieldViolation::new("journey.definition", "required")),
    }
    violations
}

/// A journey's states filter: each known, sorted, once.
fn states_filter(values: &[i32]) -> Result<Vec<i32>, Error> {
    let violations = values
        .iter()
        .enumerate()
        .filter(|(_, value)| {
            !matches!(JourneyState::try_from(**value), Ok(s) if s != JourneyState::Unspecified)
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

/// A ListJourneys page token: hex of `states|display_name|id`, bound to the filter.
fn encode_token(states: &str, last: &Stored) -> String {
    let text = format!("{states}\u{1}{}\u{1}{}", last.display_name, last.id);
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str, states: &str) -> Result<Option<(String, String)>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("page_token", "not a page token of ListJourneys");
    if !token.len().is_multiple_of(2) || token.len() > 4096 {
        return Err(invalid());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes.ok_or_else(invalid)?).map_err(|_| invalid())?;
    let (filter, rest) = text.split_once('\u{1}').ok_or_else(invalid)?;
    let (display_name, id) = rest.rsplit_once('\u{1}').ok_or_else(invalid)?;
    if filter != states {
        return Err(Error::invalid(
            "page_token",
            "the page token was issued for a different state filter",
        ));
    }
    Ok(Some((display_name.to_owned(), id.to_owned())))
}

impl Api {
    /// Every violation of `journey`, its references included.
    async fn check(&self, tenant: &str, journey: &Journey) -> Result<(), Error> {
        let mut found = violations(journey);
        if let Some(definition) = &journey.definition {
            found.extend(
                references::check(
                    &self.service.peers,
                    tenant,
                    definition,
                    "journey.definition",
                )
                .await?,
            );
            found.extend(
                self.service
                    .webhooks
                    .check(definition, "journey.definition")
                    .await,
            );
        }
        Error::unless_valid(found)
    }

    pub(super) async fn stored(
        &self,
        tenant: &str,
        name: &str,
        field: &str,
    ) -> Result<Stored, Error> {
        let id = resource_id(name, "journeys", field)?;
        store::get(self.service.db(), tenant, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub(super) async fn create_journey(
        &self,
        caller: &Principal,
        request: CreateJourneyRequest,
    ) -> Result<CreateJourneyResponse, Error> {
        let tenant = caller.tenant.as_str();
        let journey = request.journey.clone().unwrap_or_default();
        if !request.journey_id.is_empty() && !is_resource_id(&request.journey_id) {
            return Err(Error::invalid(
                "journey_id",
                "must be 1 to 63 lower-case letters, digits and hyphens",
            ));
        }
        self.check(tenant, &journey).await?;
        let id = if request.journey_id.is_empty() {
            uuid::Uuid::now_v7().simple().to_string()
        } else {
            request.journey_id.clone()
        };
        let now = self.service.now_us();
        let stored = Stored {
            tenant: tenant.to_owned(),
            id,
            display_name: journey.display_name.trim().to_owned(),
            description: journey.description.clone(),
            state: JourneyState::Draft as i32,
            draft: journey.definition.clone().unwrap_or_default(),
            published_version: 0,
            draft_changed: true,
            trigger_key: String::new(),
            revision: 1,
            create_us: now,
            update_us: now,
        };
        if request.validate_only {
            return Ok(CreateJourneyResponse {
                journey: Some(stored.to_proto()),
            });
        }
        let db = self.service.db();
        if request.request_id.is_empty() {
            store::insert(db, &stored).await?;
            return Ok(CreateJourneyResponse {
                journey: Some(stored.to_proto()),
            });
        }
        let key = Key {
            tenant,
            method: "CreateJourney",
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(db, key, &request, move |transaction| {
                async move {
                    store::insert(transaction, &stored).await?;
                    Ok(CreateJourneyResponse {
                        journey: Some(stored.to_proto()),
                    })
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn get_journey(
        &self,
        caller: &Principal,
        request: GetJourneyRequest,
    ) -> Result<GetJourneyResponse, Error> {
        let stored = self.stored(&caller.tenant, &request.name, "name").await?;
        Ok(GetJourneyResponse {
            journey: Some(stored.to_proto()),
        })
    }

    pub(super) async fn list_journeys(
        &self,
        caller: &Principal,
        request: ListJourneysRequest,
    ) -> Result<ListJourneysResponse, Error> {
        let states = states_filter(&request.states)?;
        let size = page_size(request.page_size)?;
        let filter = format!("{states:?}");
        let after = decode_token(&request.page_token, &filter)?;
        let mut rows = store::list(
            self.service.db(),
            &caller.tenant,
            &states,
            after.as_ref(),
            size + 1,
        )
        .await?;
        let next_page_token = if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|last| encode_token(&filter, last))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListJourneysResponse {
            journeys: rows.iter().map(Stored::to_proto).collect(),
            next_page_token,
        })
    }

    pub(super) async fn update_journey(
        &self,
        caller: &Principal,
        request: UpdateJourneyRequest,
    ) -> Result<UpdateJourneyResponse, Error> {
        let tenant = caller.tenant.as_str();
        let patch = request
            .journey
            .clone()
            .ok_or_else(|| Error::invalid("journey", "required"))?;
        let mask = UpdateMask::parse(request.update_mask.clone(), &UPDATABLE)?;
        let mut stored = self.stored(tenant, &patch.name, "journey.name").await?;
        if stored.state == JourneyState::Archived as i32 {
            return Err(archived(&stored.id));
        }
        if !patch.etag.is_empty() && patch.etag != stored.revision.to_string() {
            return Err(stale(&stored.id));
        }
        let mut merged = stored.to_proto();
        if mask.has("display_name") {
            merged.display_name = patch.display_name.trim().to_owned();
        }
        if mask.has("description") {
            merged.description = patch.description.clone();
        }
        if mask.has("definition") {
            merged.definition = patch.definition.clone();
        }
        self.check(tenant, &merged).await?;
        let revision = stored.revision;
        stored.display_name = merged.display_name;
        stored.description = merged.description;
        stored.draft = merged.definition.unwrap_or_default();
        stored.revision += 1;
        stored.update_us = self.service.now_us();
        stored.draft_changed = if stored.published_version == 0 {
            true
        } else {
            let latest = versions::definition(
                self.service.db(),
                tenant,
                &stored.id,
                stored.published_version,
            )
            .await?;
            latest.encode_to_vec() != stored.draft.encode_to_vec()
        };
        if request.validate_only {
            return Ok(UpdateJourneyResponse {
                journey: Some(stored.to_proto()),
            });
        }
        if !store::update(self.service.db(), &stored, revision).await? {
            return Err(stale(&stored.id));
        }
        Ok(UpdateJourneyResponse {
            journey: Some(stored.to_proto()),
        })
    }

    pub(super) async fn delete_journey(
        &self,
        caller: &Principal,
        request: DeleteJourneyRequest,
    ) -> Result<DeleteJourneyResponse, Error> {
        let stored = self.stored(&caller.tenant, &request.name, "name").await?;
        if !request.etag.is_empty() && request.etag != stored.revision.to_string() {
            return Err(stale(&stored.id));
        }
        if stored.published_version > 0 {
            return Err(Error::FailedPrecondition {
                reason: "JOURNEY_PUBLISHED",
                message: format!(
                    "{} was published: archive it, so that its instances and statistics keep \
                     their meaning",
                    journey_name(&stored.id)
                ),
            });
        }
        store::delete(self.service.db(), &caller.tenant, &stored.id).await?;
        Ok(DeleteJourneyResponse {})
    }

    pub(super) async fn publish_journey(
        &self,
        caller: &Principal,
        request: PublishJourneyRequest,
    ) -> Result<PublishJourneyResponse, Error> {
        let tenant = caller.tenant.as_str();
        let stored = self.stored(tenant, &request.name, "name").await?;
        // Validated again, against the services as they are now.
        self.check(tenant, &stored.to_proto()).await?;
        let work = PublishWork {
            service: self.service.clone(),
            tenant: tenant.to_owned(),
            id: stored.id,
            etag: request.etag.clone(),
            publisher: caller.subject.clone(),
        };
        let db = self.service.db();
        if request.request_id.is_empty() {
            let transaction = write_transaction(db).await?;
            let response = work.run(&transaction).await?;
            transaction.commit().await?;
            return Ok(response);
        }
        let key = Key {
            tenant,
            method: "PublishJourney",
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(db, key, &request, move |transaction| {
                work.run(transaction).boxed()
            })
            .await
    }

    pub(super) async fn pause_journey(
        &self,
        caller: &Principal,
        request: PauseJourneyRequest,
    ) -> Result<PauseJourneyResponse, Error> {
        let journey = self
            .transition(
                caller,
                &request.name,
                "PauseJourney",
                &request.request_id,
                &request,
                Transition::Pause,
            )
            .await?;
        Ok(PauseJourneyResponse {
            journey: Some(journey),
        })
    }

    pub(super) async fn resume_journey(
        &self,
        caller: &Principal,
        request: ResumeJourneyRequest,
    ) -> Result<ResumeJourneyResponse, Error> {
        let journey = self
            .transition(
                caller,
                &request.name,
                "ResumeJourney",
                &request.request_id,
                &request,
                Transition::Resume,
            )
            .await?;
        Ok(ResumeJourneyResponse {
            journey: Some(journey),
        })
    }

    pub(super) async fn archive_journey(
        &self,
        caller: &Principal,
        request: ArchiveJourneyRequest,
    ) -> Result<ArchiveJourneyResponse, Error> {
        let journey = self
            .transition(
                caller,
                &request.name,
                "ArchiveJourney",
                &request.request_id,
                &request,
                Transition::Archive,
            )
            .await?;
        Ok(ArchiveJourneyResponse {
            journey: Some(journey),
        })
    }

    /// Pause, resume or archive, idempotent by `request_id` when given.
    async fn transition<R: Message>(
        &self,
        caller: &Principal,
        name: &str,
        method: &str,
        request_id: &str,
        request: &R,
        transition: Transition,
    ) -> Result<Journey, Error> {
        let tenant = caller.tenant.as_str();
        let id = resource_id(name, "journeys", "name")?.to_owned();
        let work = TransitionWork {
            service: self.service.clone(),
            tenant: tenant.to_owned(),
            id,
            transition,
        };
        let db = self.service.db();
        if request_id.is_empty() {
            let transaction = write_transaction(db).await?;
            let response = work.run(&transaction).await?;
            transaction.commit().await?;
            return response
                .journey
                .ok_or_else(|| Error::internal("no journey"));
        }
        let key = Key {
            tenant,
            method,
            request_id,
        };
        let response: GetJourneyResponse = self
            .service
            .idempotency
            .run(db, key, request, move |transaction| {
                work.run(transaction).boxed()
            })
            .await?;
        response
            .journey
            .ok_or_else(|| Error::internal("no journey"))
    }

    pub(super) async fn get_journey_version(
        &self,
        caller: &Principal,
        request: GetJourneyVersionRequest,
    ) -> Result<GetJourneyVersionResponse, Error> {
        let invalid = || {
            Error::invalid(
                "name",
                "must be journeys/{journey}/versions/{version}, the version a positive number",
            )
        };
        let (journey, version) = request
            .name
            .strip_prefix("journeys/")
            .and_then(|rest| rest.split_once("/versions/"))
            .ok_or_else(invalid)?;
        let version: i32 = version
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(invalid)?;
        if !is_resource_id(journey) {
            return Err(invalid());
        }
        let found = versions::list(
            self.service.db(),
            &caller.tenant,
            journey,
            Some(version),
            0,
            1,
        )
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotFound(request.name.clone()))?;
        Ok(GetJourneyVersionResponse {
            version: Some(found),
        })
    }

    pub(super) async fn list_journey_versions(
        &self,
        caller: &Principal,
        request: ListJourneyVersionsRequest,
    ) -> Result<ListJourneyVersionsResponse, Error> {
        let stored = self
            .stored(&caller.tenant, &request.journey, "journey")
            .await?;
        let size = page_size(request.page_size)?;
        let before = if request.page_token.is_empty() {
            0
        } else {
            request
                .page_token
                .strip_prefix("v")
                .and_then(|v| v.parse::<i32>().ok())
                .filter(|v| *v > 0)
                .ok_or_else(|| {
                    Error::invalid("page_token", "not a page token of ListJourneyVersions")
                })?
        };
        let mut found = versions::list(
            self.service.db(),
            &caller.tenant,
            &stored.id,
            None,
            before,
            size + 1,
        )
        .await?;
        let next_page_token = if found.len() > size {
            found.truncate(size);
            found
                .last()
                .map(|last| format!("v{}", last.version))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListJourneyVersionsResponse {
            versions: found,
            next_page_token,
        })
    }
}

/// PublishJourney's writes, in one transaction: concurrent publishes get distinct versions.
struct PublishWork {
    service: crate::Service,
    tenant: String,
    id: String,
    etag: String,
    publisher: String,
}

impl PublishWork {
    async fn run(self, transaction: &DatabaseTransaction) -> Result<PublishJourneyResponse, Error> {
        let mut stored = store::get(transaction, &self.tenant, &self.id)
            .await?
            .ok_or_else(|| not_found(&self.id))?;
        if !self.etag.is_empty() && self.etag != stored.revision.to_string() {
            return Err(stale(&self.id));
        }
        if stored.state == JourneyState::Archived as i32 {
            return Err(archived(&self.id));
        }
        if stored.published_version > 0 && !stored.draft_changed {
            return Err(Error::FailedPrecondition {
                reason: "NOTHING_TO_PUBLISH",
                message: format!(
                    "the draft of {} is version {} as published",
                    journey_name(&self.id),
                    stored.published_version
                ),
            });
        }
        let now = self.service.now_us();
        let version = stored.published_version + 1;
        versions::insert(
            transaction,
            &self.tenant,
            &self.id,
            version,
            &stored.draft,
            &self.publisher,
            now,
        )
        .await?;
        let revision = stored.revision;
        stored.published_version = version;
        stored.draft_changed = false;
        stored.trigger_key = definition::trigger_key(&stored.draft);
        if stored.state != JourneyState::Paused as i32 {
            stored.state = JourneyState::Active as i32;
        }
        stored.revision += 1;
        stored.update_us = now;
        if !store::update(transaction, &stored, revision).await? {
            return Err(stale(&self.id));
        }
        let published = versions::list(transaction, &self.tenant, &self.id, Some(version), 0, 1)
            .await?
            .into_iter()
            .next();
        Ok(PublishJourneyResponse {
            journey: Some(stored.to_proto()),
            version: published,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Transition {
    Pause,
    Resume,
    Archive,
}

struct TransitionWork {
    service: crate::Service,
    tenant: String,
    id: String,
    transition: Transition,
}

impl TransitionWork {
    async fn run(self, transaction: &DatabaseTransaction) -> Result<GetJourneyResponse, Error> {
        let mut stored = store::get(transaction, &self.tenant, &self.id)
            .await?
            .ok_or_else(|| not_found(&self.id))?;
        let state = JourneyState::try_from(stored.state).unwrap_or_default();
        let refuse = |expected: &str| Error::FailedPrecondition {
            reason: "JOURNEY_STATE",
            message: format!(
                "{} is {}, not {expected}",
                journey_name(&self.id),
                state
                    .as_str_name()
                    .trim_start_matches("JOURNEY_STATE_")
                    .to_lowercase()
            ),
        };
        match self.transition {
            Transition::Pause if state != JourneyState::Active => return Err(refuse("active")),
            Transition::Pause => stored.state = JourneyState::Paused as i32,
            Transition::Resume if state != JourneyState::Paused => return Err(refuse("paused")),
            Transition::Resume => stored.state = JourneyState::Active as i32,
            // Archiving twice succeeds without effect.
            Transition::Archive if state == JourneyState::Archived => {
                return Ok(GetJourneyResponse {
                    journey: Some(stored.to_proto()),
                });
            }
            Transition::Archive => {
                stored.state = JourneyState::Archived as i32;
                // Events start nothing any more; running instances finish.
                stored.trigger_key = String::new();
            }
        }
        let revision = stored.revision;
        stored.revision += 1;
        stored.update_us = self.service.now_us();
        if !store::update(transaction, &stored, revision).await? {
            return Err(stale(&self.id));
        }
        Ok(GetJourneyResponse {
            journey: Some(stored.to_proto()),
        })
    }
}
