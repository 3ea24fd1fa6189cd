//! UpsertProfile, AddIdentifier, RemoveIdentifier, ResolveIdentity, MergeProfiles,
//! UnmergeProfiles, GetMergeEvent, ListMergeEvents.

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use throughline_proto::common::v1::IdentifierType;
use throughline_proto::profile::v1::*;
use tonic::{Request, Status};

use super::profiles::identifiers;
use super::{Api, caller, work};
use crate::error::{Error, Result, Violations, reason};
use crate::identity;
use crate::merge::{self, Cause};
use crate::resolve;
use crate::store::{self, MERGE_EVENTS, PROFILES, merge_event};
use crate::{validate, writes};

/// The mask UpsertProfile applies when the caller gives none: every field set in `profile`.
fn fields_set(profile: &Profile) -> Vec<String> {
    let mut paths = Vec::new();
    for (path, set) in [
        ("given_name", !profile.given_name.is_empty()),
        ("family_name", !profile.family_name.is_empty()),
        ("email", !profile.email.is_empty()),
        ("phone", !profile.phone.is_empty()),
        ("preferences", profile.preferences.is_some()),
    ] {
        if set {
            paths.push(path.to_owned());
        }
    }
    paths.extend(profile.attributes.keys().map(|k| format!("attributes.{k}")));
    paths
}

impl Api {
    /// The active profile holding every one of `keys`, when there is one: ResolveIdentity's
    /// read-only path, through the hot reads. Anything else (a key nobody holds, keys on
    /// several profiles, a profile merged or changed between the two reads) takes the
    /// transactional path.
    async fn known_customer(
        &self,
        tenant: &str,
        keys: &[identity::Key],
    ) -> Result<Option<Profile>, Status> {
        let hot = &self.service.hot;
        // One identifier, the usual call: its holder and what the holder holds in one read.
        if let [key] = keys {
            return match hot.profile_holding(tenant, key.clone()).await? {
                Some((row, children)) if row.state == ProfileState::Active as i32 => {
                    Ok(Some(store::compose(&row, &children)?))
                }
                _ => Ok(None),
            };
        }
        let holders =
            futures::future::try_join_all(keys.iter().map(|key| hot.holder(tenant, key.clone())))
                .await?;
        let Some(Some(holder)) = holders.first() else {
            return Ok(None);
        };
        if holders.iter().any(|other| other.as_ref() != Some(holder)) {
            return Ok(None);
        }
        match hot.profile(tenant, holder).await? {
            Some((row, children))
                if row.state == ProfileState::Active as i32
                    && keys.iter().all(|key| children.identifiers.contains(key)) =>
            {
                Ok(Some(store::compose(&row, &children)?))
            }
            _ => Ok(None),
        }
    }

    pub(super) async fn upsert(
        &self,
        request: Request<UpsertProfileRequest>,
    ) -> Result<UpsertProfileResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        let crm = match &request.crm_id {
            None => {
                violations.add("crm_id", "required");
                None
            }
            Some(id) if id.r#type != IdentifierType::CrmId as i32 => {
                violations.add("crm_id.type", "must be IDENTIFIER_TYPE_CRM_ID");
                None
            }
            Some(id) => identity::normalise(id, "crm_id", &mut violations),
        };
        let mut data = request.profile.clone().unwrap_or_default();
        if request.profile.is_none() {
            violations.add("profile", "required");
        }
        validate::profile(
            &mut data,
            "profile",
            self.service.options(),
            &mut violations,
        );
        let mut keys = identifiers(&data.identifiers, "profile.identifiers", &mut violations);
        violations.into_result()?;
        let Some(crm) = crm else {
            return Err(Error::invalid("crm_id", "required").into());
        };
        keys.retain(|k| k != &crm);
        keys.insert(0, crm);
        for key in writes::core_identifiers(&data) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let mask: Vec<String> = match request.update_mask.as_ref().map(|m| m.paths.clone()) {
            Some(paths) if !paths.is_empty() => paths,
            _ => fields_set(&data),
        };
        let service = self.service.clone();
        let tenant = caller.tenant.clone();
        let actor = caller.subject.clone();
        self.write(
            &caller,
            "UpsertProfile",
            &request.request_id,
            &request,
            work!(|tx| {
                let (service, tenant, actor, data, keys, mask) = (
                    service.clone(),
                    tenant.clone(),
                    actor.clone(),
                    data.clone(),
                    keys.clone(),
                    mask.clone(),
                );
                async move {
                    let cause = Cause {
                        trigger: MergeTrigger::Upsert,
                        actor,
                        reason: String::new(),
                    };
                    let resolved =
                        resolve::resolve(tx, &service, &tenant, &keys, false, &cause, &data)
                            .await?;
                    let created = resolved.outcome == ResolutionOutcome::Created;
                    let mut row = resolved.row;
                    if !created && !mask.is_empty() {
                        let row_now = store::require_active(tx, &tenant, &row.id).await?;
                        let before = store::decode_data(&row_now.data)?;
                        let mut after = before.clone();
                        validate::apply_mask(&mut after, &data, &mask)?;
                        let changed = validate::changed_fields(&before, &after);
                        row = writes::update(tx, &service, &row_now, &after, changed).await?;
                    }
                    Ok(UpsertProfileResponse {
                        profile: Some(store::assemble(tx, &row).await?),
                        created,
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn add_identifier_(
        &self,
        request: Request<AddIdentifierRequest>,
    ) -> Result<AddIdentifierResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let (id, key) = profile_and_identifier(&request.profile, request.identifier.as_ref())?;
        let service = self.service.clone();
        let tenant = caller.tenant.clone();
        self.write(
            &caller,
            "AddIdentifier",
            &request.request_id,
            &request,
            work!(|tx| {
                let (service, tenant, id, key) =
                    (service.clone(), tenant.clone(), id.clone(), key.clone());
                async move {
                    resolve::lock_identifiers(tx, &tenant, std::slice::from_ref(&key)).await?;
                    let row = store::require_active(tx, &tenant, &id).await?;
                    let held = store::identifiers(tx, &tenant, &id).await?;
                    if held.contains(&key) {
                        return Ok(AddIdentifierResponse {
                            profile: Some(store::assemble(tx, &row).await?),
                        });
                    }
                    if held.len() >= service.options().max_identifiers {
                        return Err(Error::precondition(
                            reason::LIMIT_REACHED,
                            format!(
                                "a profile holds at most {} identifiers",
                                service.options().max_identifiers
                            ),
                        ));
                    }
                    let all: Vec<&identity::Key> = held.iter().chain([&key]).collect();
                    merge::check_crm_conflict(&all, std::slice::from_ref(&id))?;
                    writes::ensure_free(tx, &tenant, Some(&id), std::slice::from_ref(&key)).await?;
                    store::add_identifiers(tx, &tenant, &id, std::slice::from_ref(&key)).await?;
                    let data = store::decode_data(&row.data)?;
                    let saved = store::save_profile(tx, &row, &data).await?;
                    writes::changed(tx, &service, &saved, vec!["identifiers".into()]).await?;
                    Ok(AddIdentifierResponse {
                        profile: Some(store::assemble(tx, &saved).await?),
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn remove_identifier_(
        &self,
        request: Request<RemoveIdentifierRequest>,
    ) -> Result<RemoveIdentifierResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let (id, key) = profile_and_identifier(&request.profile, request.identifier.as_ref())?;
        let service = self.service.clone();
        let tenant = caller.tenant.clone();
        self.write(
            &caller,
            "RemoveIdentifier",
            &request.request_id,
            &request,
            work!(|tx| {
                let (service, tenant, id, key) =
                    (service.clone(), tenant.clone(), id.clone(), key.clone());
                async move {
                    let row = store::require_active(tx, &tenant, &id).await?;
                    let held = store::identifiers(tx, &tenant, &id).await?;
                    if !held.contains(&key) {
                        return Err(Error::not_found("the identifier on this profile"));
                    }
                    if held.len() == 1 {
                        return Err(Error::precondition(
                            reason::LAST_IDENTIFIER,
                            "the last identifier of a profile cannot be removed",
                        ));
                    }
                    store::remove_identifiers(tx, &tenant, &id, std::slice::from_ref(&key)).await?;
                    let data = store::decode_data(&row.data)?;
                    let saved = store::save_profile(tx, &row, &data).await?;
                    writes::changed(tx, &service, &saved, vec!["identifiers".into()]).await?;
                    Ok(RemoveIdentifierResponse {
                        profile: Some(store::assemble(tx, &saved).await?),
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn resolve(
        &self,
        request: Request<ResolveIdentityRequest>,
    ) -> Result<ResolveIdentityResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        if request.identifiers.is_empty() || request.identifiers.len() > 20 {
            violations.add("identifiers", "1 to 20 identifiers");
        }
        if request.reason.len() > 1024 {
            violations.add("reason", "at most 1024 bytes");
        }
        let keys = identifiers(&request.identifiers, "identifiers", &mut violations);
        violations.into_result()?;

        // The fast path of a known customer: every identifier already on one profile, nothing
        // to write. A call with a request_id takes the recorded path so a retry replays.
        if request.request_id.is_empty()
            && !request.lookup_only
            && let Some(known) = self.known_customer(&caller.tenant, &keys).await?
        {
            return Ok(ResolveIdentityResponse {
                profile: Some(known),
                outcome: ResolutionOutcome::Matched as i32,
                merge_events: Vec::new(),
            });
        }

        let service = self.service.clone();
        let tenant = caller.tenant.clone();
        let cause = Cause {
            trigger: MergeTrigger::IdentityResolution,
            actor: caller.subject.clone(),
            reason: request.reason.clone(),
        };
        let lookup_only = request.lookup_only;
        self.write(
            &caller,
            "ResolveIdentity",
            &request.request_id,
            &request,
            work!(|tx| {
                let (service, tenant, keys, cause) =
                    (service.clone(), tenant.clone(), keys.clone(), cause.clone());
                async move {
                    let resolved = resolve::resolve(
                        tx,
                        &service,
                        &tenant,
                        &keys,
                        lookup_only,
                        &cause,
                        &Profile::default(),
                    )
                    .await?;
                    Ok(ResolveIdentityResponse {
                        profile: Some(store::assemble(tx, &resolved.row).await?),
                        outcome: resolved.outcome as i32,
                        merge_events: resolved.merge_events,
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn merge(
        &self,
        request: Request<MergeProfilesRequest>,
    ) -> Result<MergeProfilesResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        let source = store::parse_name(&request.source_profile, PROFILES, "source_profile");
        let target = store::parse_name(&request.target_profile, PROFILES, "target_profile");
        for (field, parsed) in [("source_profile", &source), ("target_profile", &target)] {
            if parsed.is_err() {
                violations.add(field, "must be a profile name `profiles/{id}`");
            }
        }
        if request.reason.trim().is_empty() || request.reason.len() > 1024 {
            violations.add("reason", "required, at most 1024 bytes");
        }
        if let (Ok(s), Ok(t)) = (&source, &target)
            && s == t
        {
            violations.add("target_profile", "must differ from source_profile");
        }
        violations.into_result()?;
        let (source, target) = (source?.to_owned(), target?.to_owned());
        let service = self.service.clone();
        let tenant = caller.tenant.clone();
        let cause = Cause {
            trigger: MergeTrigger::Manual,
            actor: caller.subject.clone(),
            reason: request.reason.clone(),
        };
        self.write(
            &caller,
            "MergeProfiles",
            &request.request_id,
            &request,
            work!(|tx| {
                let (service, tenant, source, target, cause) = (
                    service.clone(),
                    tenant.clone(),
                    source.clone(),
                    target.clone(),
                    cause.clone(),
                );
                async move {
                    // Both exist (NOT_FOUND otherwise), locked in id order.
                    let (first, second) = if source < target {
                        (&source, &target)
                    } else {
                        (&target, &source)
                    };
                    store::require_profile(tx, &tenant, first, true).await?;
                    store::require_profile(tx, &tenant, second, true).await?;
                    let source_row = store::require_active(tx, &tenant, &source).await?;
                    let target_row = store::require_active(tx, &tenant, &target).await?;
                    let event =
                        merge::merge(tx, &service, &source_row, &target_row, &cause).await?;
                    let target_row = store::require_profile(tx, &tenant, &target, false).await?;
                    Ok(MergeProfilesResponse {
                        profile: Some(store::assemble(tx, &target_row).await?),
                        merge_event: Some(event),
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn unmerge(
        &self,
        request: Request<UnmergeProfilesRequest>,
    ) -> Result<UnmergeProfilesResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        let event = store::parse_name(&request.merge_event, MERGE_EVENTS, "merge_event");
        if event.is_err() {
            violations.add(
                "merge_event",
                "must be a merge event name `mergeEvents/{id}`",
            );
        }
        if request.reason.trim().is_empty() || request.reason.len() > 1024 {
            violations.add("reason", "required, at most 1024 bytes");
        }
        violations.into_result()?;
        let event = event?.to_owned();
        let service = self.service.clone();
        let tenant = caller.tenant.clone();
        let actor = caller.subject.clone();
        let why = request.reason.clone();
        self.write(
            &caller,
            "UnmergeProfiles",
            &request.request_id,
            &request,
            work!(|tx| {
                let (service, tenant, event, actor, why) = (
                    service.clone(),
                    tenant.clone(),
                    event.clone(),
                    actor.clone(),
                    why.clone(),
                );
                async move {
                    let (source, target, event) =
                        merge::unmerge(tx, &service, &tenant, &event, &actor, &why).await?;
                    Ok(UnmergeProfilesResponse {
                        source_profile: Some(store::assemble(tx, &source).await?),
                        target_profile: Some(store::assemble(tx, &target).await?),
                        merge_event: Some(event),
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn get_merge(
        &self,
        request: Request<GetMergeEventRequest>,
    ) -> Result<GetMergeEventResponse, Status> {
        let caller = caller(&request)?;
        let id = store::parse_name(&request.get_ref().name, MERGE_EVENTS, "name")?;
        let row = merge::find(&self.service.db, &caller.tenant, id).await?;
        Ok(GetMergeEventResponse {
            merge_event: Some(merge::decode(&row)?),
        })
    }

    pub(super) async fn list_merges(
        &self,
        request: Request<ListMergeEventsRequest>,
    ) -> Result<ListMergeEventsResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = store::parse_name(&request.profile, PROFILES, "profile")?;
        let page_size = validate::page_size(request.page_size, 50, 500)?;
        let offset: u64 = if request.page_token.is_empty() {
            0
        } else {
            request
                .page_token
                .parse()
                .map_err(|_| Error::invalid("page_token", "not a token of this listing"))?
        };
        let db = &self.service.db;
        store::require_profile(db, &caller.tenant, id, false).await?;
        let rows = merge_event::Entity::find()
            .filter(merge_event::Column::Tenant.eq(&caller.tenant))
            .filter(
                Condition::any()
                    .add(merge_event::Column::SourceProfile.eq(id))
                    .add(merge_event::Column::TargetProfile.eq(id)),
            )
            .order_by_desc(merge_event::Column::MergeUs)
            .order_by_desc(merge_event::Column::Id)
            .offset(offset)
            .limit(page_size + 1)
            .all(db)
            .await
            .map_err(Error::from)?;
        let more = rows.len() as u64 > page_size;
        let merge_events = rows
            .iter()
            .take(page_size as usize)
            .map(merge::decode)
            .collect::<Result<Vec<_>>>()?;
        Ok(ListMergeEventsResponse {
            merge_events,
            next_page_token: if more {
                (offset + page_size).to_string()
            } else {
                String::new()
            },
        })
    }
}

fn profile_and_identifier(
    profile: &str,
    identifier: Option<&throughline_proto::common::v1::Identifier>,
) -> Result<(String, identity::Key)> {
    let mut violations = Violations::default();
    let id = store::parse_name(profile, PROFILES, "profile");
    if id.is_err() {
        violations.add("profile", "must be a profile name `profiles/{id}`");
    }
    let key = match identifier {
        None => {
            violations.add("identifier", "required");
            None
        }
        Some(identifier) => identity::normalise(identifier, "identifier", &mut violations),
    };
    violations.into_result()?;
    match (id, key) {
        (Ok(id), Some(key)) => Ok((id.to_owned(), key)),
        _ => Err(Error::invalid("identifier", "required")),
    }
}
