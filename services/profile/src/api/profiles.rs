//! CreateProfile, GetProfile, UpdateProfile, DeleteProfile, ListProfiles.

use std::hash::{Hash, Hasher};

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use throughline_proto::event::v1::ProfileDeleted;
use throughline_proto::profile::v1::*;
use tonic::{Request, Status};

use super::{Api, caller, work};
use crate::error::{Error, Result, Violations};
use crate::identity::{self, Key};
use crate::store::{self, PROFILES, SEGMENTS, member, profile};
use crate::{events, privacy, segments, validate, writes};

/// Normalises the identifiers of a request, naming each invalid one.
pub fn identifiers(
    identifiers: &[throughline_proto::common::v1::Identifier],
    field: &str,
    violations: &mut Violations,
) -> Vec<Key> {
    let mut keys: Vec<Key> = Vec::new();
    for (index, identifier) in identifiers.iter().enumerate() {
        if let Some(key) = identity::normalise(identifier, &format!("{field}[{index}]"), violations)
            && !keys.contains(&key)
        {
            keys.push(key);
        }
    }
    keys
}

impl Api {
    pub(super) async fn create(
        &self,
        request: Request<CreateProfileRequest>,
    ) -> Result<CreateProfileResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        let Some(mut data) = request.profile.clone() else {
            return Err(Error::invalid("profile", "required").into());
        };
        validate::profile(
            &mut data,
            "profile",
            self.service.options(),
            &mut violations,
        );
        let keys = identifiers(&data.identifiers, "profile.identifiers", &mut violations);
        violations.into_result()?;
        let service = self.service.clone();
        let tenant = caller.tenant.clone();
        self.write(
            &caller,
            "CreateProfile",
            &request.request_id,
            &request,
            work!(|tx| {
                let (service, tenant, data, keys) =
                    (service.clone(), tenant.clone(), data.clone(), keys.clone());
                async move {
                    let row = writes::create(tx, &service, &tenant, &data, &keys).await?;
                    Ok(CreateProfileResponse {
                        profile: Some(store::assemble(tx, &row).await?),
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn get(
        &self,
        request: Request<GetProfileRequest>,
    ) -> Result<GetProfileResponse, Status> {
        let caller = caller(&request)?;
        let id = store::parse_name(&request.get_ref().name, PROFILES, "name")?;
        match self.service.hot.profile(&caller.tenant, id).await? {
            Some((row, children)) => Ok(GetProfileResponse {
                profile: Some(store::compose(&row, &children)?),
            }),
            None => Err(Error::not_found(store::profile_name(id)).into()),
        }
    }

    pub(super) async fn update(
        &self,
        request: Request<UpdateProfileRequest>,
    ) -> Result<UpdateProfileResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let Some(update) = request.profile.clone() else {
            return Err(Error::invalid("profile", "required").into());
        };
        let id = store::parse_name(&update.name, PROFILES, "profile.name")?.to_owned();
        let mask: Vec<String> = request
            .update_mask
            .clone()
            .map(|m| m.paths)
            .unwrap_or_default();
        let service = self.service.clone();
        let tenant = caller.tenant.clone();
        self.write(
            &caller,
            "UpdateProfile",
            "",
            &request,
            work!(|tx| {
                let (service, tenant, update, mask, id) = (
                    service.clone(),
                    tenant.clone(),
                    update.clone(),
                    mask.clone(),
                    id.clone(),
                );
                async move {
                    let row = store::require_active(tx, &tenant, &id).await?;
                    store::check_etag(&update.etag, row.version)?;
                    let mut data = store::decode_data(&row.data)?;
                    validate::apply_mask(&mut data, &update, &mask)?;
                    let mut violations = Violations::default();
                    validate::profile(&mut data, "profile", service.options(), &mut violations);
                    violations.into_result()?;
                    let before = store::decode_data(&row.data)?;
                    let changed = validate::changed_fields(&before, &data);
                    let saved = writes::update(tx, &service, &row, &data, changed).await?;
                    Ok(UpdateProfileResponse {
                        profile: Some(store::assemble(tx, &saved).await?),
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn delete(
        &self,
        request: Request<DeleteProfileRequest>,
    ) -> Result<DeleteProfileResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = store::parse_name(&request.name, PROFILES, "name")?.to_owned();
        let tenant = caller.tenant.clone();
        let etag = request.etag.clone();
        self.write(
            &caller,
            "DeleteProfile",
            "",
            &request,
            work!(|tx| {
                let (tenant, id, etag) = (tenant.clone(), id.clone(), etag.clone());
                async move {
                    let row = store::require_profile(tx, &tenant, &id, true).await?;
                    store::check_etag(&etag, row.version)?;
                    // The profiles merged into it go with it: nothing could restore them.
                    let mut gone = privacy::merged_sources(tx, &tenant, &id).await?;
                    gone.push(id.clone());
                    for profile_id in &gone {
                        privacy::remove_everything(tx, &tenant, profile_id).await?;
                        profile::Entity::delete_many()
                            .filter(profile::Column::Tenant.eq(&tenant))
                            .filter(profile::Column::Id.eq(profile_id))
                            .exec(tx)
                            .await?;
                    }
                    events::deleted(
                        tx,
                        &tenant,
                        &id,
                        ProfileDeleted {
                            profile: store::profile_name(&id),
                        },
                    )
                    .await?;
                    Ok(DeleteProfileResponse {})
                }
            }),
        )
        .await
    }

    pub(super) async fn list(
        &self,
        request: Request<ListProfilesRequest>,
    ) -> Result<ListProfilesResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let page_size = validate::page_size(request.page_size, 50, 1000)?;
        let mut violations = Violations::default();
        let program = if request.filter.is_empty() {
            None
        } else {
            match segments::compile(&request.filter) {
                Ok(program) => Some(program),
                Err(why) => {
                    violations.add("filter", why);
                    None
                }
            }
        };
        let identifier = match &request.identifier {
            Some(identifier) => identity::normalise(identifier, "identifier", &mut violations),
            None => None,
        };
        let segment = if request.segment.is_empty() {
            None
        } else {
            match store::parse_name(&request.segment, SEGMENTS, "segment") {
                Ok(id) => Some(id.to_owned()),
                Err(error) => return Err(error.into()),
            }
        };
        violations.into_result()?;
        let fingerprint = {
            let mut hasher = std::hash::DefaultHasher::new();
            (&request.filter, &identifier, &segment).hash(&mut hasher);
            hasher.finish()
        };
        let mut after = decode_token(&request.page_token, fingerprint)?;
        let db = &self.service.db;
        let tenant = &caller.tenant;

        let mut condition = Condition::all()
            .add(profile::Column::Tenant.eq(tenant))
            .add(profile::Column::State.eq(ProfileState::Active as i32));
        if let Some(key) = &identifier {
            let holders = store::holders(db, tenant, std::slice::from_ref(key)).await?;
            match holders.values().next() {
                Some(holder) => condition = condition.add(profile::Column::Id.eq(holder)),
                None => return Ok(ListProfilesResponse::default()),
            }
        }
        if let Some(segment) = &segment {
            condition = condition.add(
                profile::Column::Id.in_subquery(
                    Query::select()
                        .column(member::Column::ProfileId)
                        .from(member::Entity)
                        .and_where(Expr::col(member::Column::Tenant).eq(tenant.as_str()))
                        .and_where(Expr::col(member::Column::SegmentId).eq(segment.as_str()))
                        .to_owned(),
                ),
            );
        }
        // A CEL filter is applied to rows as they are read; one call reads at most this many,
        // then hands back a token to go on.
        const SCAN: usize = 5000;
        let mut kept = Vec::new();
        let mut scanned = 0;
        let mut next = None;
        'pages: loop {
            let mut query = profile::Entity::find().filter(condition.clone());
            if let Some((created, id)) = &after {
                query = query.filter(
                    Condition::any()
                        .add(profile::Column::CreatedUs.lt(*created))
                        .add(
                            Condition::all()
                                .add(profile::Column::CreatedUs.eq(*created))
                                .add(profile::Column::Id.lt(id.as_str())),
                        ),
                );
            }
            let rows = query
                .order_by_desc(profile::Column::CreatedUs)
                .order_by_desc(profile::Column::Id)
                .limit(page_size + 1)
                .all(db)
                .await
                .map_err(Error::from)?;
            let exhausted = rows.len() as u64 <= page_size;
            // The filter reads a profile's data and identifiers: one query for the page.
            let identifiers = match &program {
                Some(_) => {
                    segments::identifiers_of(db, tenant, rows.iter().map(|r| r.id.clone())).await?
                }
                None => Default::default(),
            };
            for row in rows {
                if kept.len() as u64 == page_size {
                    next = after.clone();
                    break 'pages;
                }
                after = Some((row.created_us, row.id.clone()));
                scanned += 1;
                let keep = match &program {
                    None => true,
                    Some(program) => {
                        let mut data = store::decode_data(&row.data)?;
                        data.name = store::profile_name(&row.id);
                        data.state = row.state;
                        let keys = identifiers.get(&row.id).map(Vec::as_slice).unwrap_or(&[]);
                        segments::matches(program, &segments::value(&data, keys))
                    }
                };
                if keep {
                    kept.push(row);
                }
                if scanned >= SCAN {
                    next = after.clone();
                    break 'pages;
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(ListProfilesResponse {
            profiles: store::assemble_all(db, &kept).await?,
            next_page_token: next
                .map(|(created, id)| format!("{created}.{id}.{fingerprint:x}"))
                .unwrap_or_default(),
        })
    }
}

fn decode_token(token: &str, fingerprint: u64) -> Result<Option<(i64, String)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("page_token", "not a token of this listing");
    let mut parts = token.splitn(3, '.');
    let created: i64 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(invalid)?;
    let id = parts.next().ok_or_else(invalid)?.to_owned();
    let stamp = parts
        .next()
        .and_then(|p| u64::from_str_radix(p, 16).ok())
        .ok_or_else(invalid)?;
    if stamp != fingerprint {
        return Err(Error::invalid(
            "page_token",
            "the other fields must match the request that returned the token",
        ));
    }
    Ok(Some((created, id)))
}
