//! CreateSegment, GetSegment, ListSegments, UpdateSegment, DeleteSegment,
//! ListSegmentMembers, CheckSegmentMembership.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::profile::v1::*;
use tonic::{Request, Status};

use super::{Api, caller, work};
use crate::error::{Error, Result, Violations, reason};
use crate::identity;
use crate::segments;
use crate::store::{self, PROFILES, SEGMENTS, member, segment};
use crate::validate;

fn check_fields(segment: &Segment, violations: &mut Violations, fields: &[&str]) {
    for field in fields {
        match *field {
            "display_name" => {
                if segment.display_name.trim().is_empty() || segment.display_name.len() > 256 {
                    violations.add("segment.display_name", "required, at most 256 bytes");
                }
            }
            "description" => {
                if segment.description.len() > 4096 {
                    violations.add("segment.description", "at most 4096 bytes");
                }
            }
            "rule" => {
                if let Err(why) = segments::compile(&segment.rule) {
                    violations.add("segment.rule", why);
                }
            }
            other => violations.add(
                "update_mask",
                format!("`{other}`: only display_name, description and rule can be updated"),
            ),
        }
    }
}

async fn proto<C: ConnectionTrait>(c: &C, row: &segment::Model) -> Result<Segment> {
    let members = member::Entity::find()
        .filter(member::Column::Tenant.eq(&row.tenant))
        .filter(member::Column::SegmentId.eq(&row.id))
        .count(c)
        .await?;
    Ok(Segment {
        name: format!("{SEGMENTS}{}", row.id),
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        rule: row.rule.clone(),
        state: row.state,
        member_count: i64::try_from(members).unwrap_or(i64::MAX),
        create_time: Some(store::timestamp(row.created_us)),
        update_time: Some(store::timestamp(row.updated_us)),
        etag: store::etag(row.version),
    })
}

async fn find<C: ConnectionTrait>(c: &C, tenant: &str, id: &str) -> Result<segment::Model> {
    segment::Entity::find_by_id((tenant.to_owned(), id.to_owned()))
        .one(c)
        .await?
        .ok_or_else(|| Error::not_found(format!("{SEGMENTS}{id}")))
}

fn is_segment_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Api {
    pub(super) async fn create_segment_(
        &self,
        request: Request<CreateSegmentRequest>,
    ) -> Result<CreateSegmentResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::default();
        let segment = request.segment.clone().unwrap_or_default();
        if request.segment.is_none() {
            violations.add("segment", "required");
        } else {
            check_fields(
                &segment,
                &mut violations,
                &["display_name", "description", "rule"],
            );
        }
        if !request.segment_id.is_empty() && !is_segment_id(&request.segment_id) {
            violations.add(
                "segment_id",
                "lower-case letters, digits and hyphens, starting with a letter, at most 63",
            );
        }
        violations.into_result()?;
        let id = if request.segment_id.is_empty() {
            format!("s{}", store::new_id())
        } else {
            request.segment_id.clone()
        };
        let service = self.service.clone();
        let tenant = caller.tenant.clone();
        self.write(
            &caller,
            "CreateSegment",
            &request.request_id,
            &request,
            work!(|tx| {
                let (service, tenant, id, segment) =
                    (service.clone(), tenant.clone(), id.clone(), segment.clone());
                async move {
                    let existing = segments::tenant_segments(tx, &tenant).await?;
                    if existing.iter().any(|s| s.id == id) {
                        return Err(Error::from(crate::error::Base::AlreadyExists(format!(
                            "{SEGMENTS}{id}"
                        ))));
                    }
                    if existing.len() >= service.options().max_segments {
                        return Err(Error::precondition(
                            reason::LIMIT_REACHED,
                            format!(
                                "a tenant has at most {} segments",
                                service.options().max_segments
                            ),
                        ));
                    }
                    let now = store::now_us();
                    let mut row = segment::Model {
                        tenant: tenant.clone(),
                        id: id.clone(),
                        display_name: segment.display_name.trim().to_owned(),
                        description: segment.description.clone(),
                        rule: segment.rule.clone(),
                        state: SegmentState::Backfilling as i32,
                        version: 1,
                        created_us: now,
                        updated_us: now,
                    };
                    segment::Entity::insert(segment::ActiveModel::from(row.clone()))
                        .exec(tx)
                        .await?;
                    let program = segments::compile(&row.rule)
                        .map_err(|why| Error::invalid("segment.rule", why))?;
                    // The backfill runs in the creating transaction: the segment is complete
                    // (ACTIVE) when the call returns.
                    segments::backfill(tx, &tenant, &id, &program).await?;
                    row.state = SegmentState::Active as i32;
                    segment::Entity::update(segment::ActiveModel {
                        tenant: sea_orm::Unchanged(tenant.clone()),
                        id: sea_orm::Unchanged(id.clone()),
                        state: sea_orm::Set(row.state),
                        ..Default::default()
                    })
                    .exec(tx)
                    .await?;
                    Ok(CreateSegmentResponse {
                        segment: Some(proto(tx, &row).await?),
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn get_segment_(
        &self,
        request: Request<GetSegmentRequest>,
    ) -> Result<GetSegmentResponse, Status> {
        let caller = caller(&request)?;
        let id = store::parse_name(&request.get_ref().name, SEGMENTS, "name")?;
        let db = &self.service.db;
        let row = find(db, &caller.tenant, id).await?;
        Ok(GetSegmentResponse {
            segment: Some(proto(db, &row).await?),
        })
    }

    pub(super) async fn list_segments_(
        &self,
        request: Request<ListSegmentsRequest>,
    ) -> Result<ListSegmentsResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
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
        let rows = segment::Entity::find()
            .filter(segment::Column::Tenant.eq(&caller.tenant))
            .order_by_asc(segment::Column::DisplayName)
            .order_by_asc(segment::Column::Id)
            .offset(offset)
            .limit(page_size + 1)
            .all(db)
            .await
            .map_err(Error::from)?;
        let more = rows.len() as u64 > page_size;
        let mut segments = Vec::new();
        for row in rows.iter().take(page_size as usize) {
            segments.push(proto(db, row).await?);
        }
        Ok(ListSegmentsResponse {
            segments,
            next_page_token: if more {
                (offset + page_size).to_string()
            } else {
                String::new()
            },
        })
    }

    pub(super) async fn update_segment_(
        &self,
        request: Request<UpdateSegmentRequest>,
    ) -> Result<UpdateSegmentResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let Some(update) = request.segment.clone() else {
            return Err(Error::invalid("segment", "required").into());
        };
        let id = store::parse_name(&update.name, SEGMENTS, "segment.name")?.to_owned();
        let mut paths: Vec<String> = request
            .update_mask
            .clone()
            .map(|m| m.paths)
            .unwrap_or_default();
        if paths.iter().any(|p| p == "*") {
            paths = vec!["display_name".into(), "description".into(), "rule".into()];
        }
        let mut violations = Violations::default();
        if paths.is_empty() {
            violations.add("update_mask", "required: the fields to update, or `*`");
        }
        let fields: Vec<&str> = paths.iter().map(String::as_str).collect();
        check_fields(&update, &mut violations, &fields);
        violations.into_result()?;
        let tenant = caller.tenant.clone();
        self.write(
            &caller,
            "UpdateSegment",
            "",
            &request,
            work!(|tx| {
                let (tenant, id, update, paths) =
                    (tenant.clone(), id.clone(), update.clone(), paths.clone());
                async move {
                    let mut row = find(tx, &tenant, &id).await?;
                    store::check_etag(&update.etag, row.version)?;
                    let rule_changed = paths.iter().any(|p| p == "rule") && update.rule != row.rule;
                    for path in &paths {
                        match path.as_str() {
                            "display_name" => {
                                row.display_name = update.display_name.trim().to_owned()
                            }
                            "description" => row.description = update.description.clone(),
                            _ => row.rule = update.rule.clone(),
                        }
                    }
                    row.version += 1;
                    row.updated_us = store::now_us();
                    segment::Entity::update(segment::ActiveModel {
                        tenant: sea_orm::Unchanged(tenant.clone()),
                        id: sea_orm::Unchanged(id.clone()),
                        display_name: sea_orm::Set(row.display_name.clone()),
                        description: sea_orm::Set(row.description.clone()),
                        rule: sea_orm::Set(row.rule.clone()),
                        version: sea_orm::Set(row.version),
                        updated_us: sea_orm::Set(row.updated_us),
                        ..Default::default()
                    })
                    .exec(tx)
                    .await?;
                    if rule_changed {
                        let program = segments::compile(&row.rule)
                            .map_err(|why| Error::invalid("segment.rule", why))?;
                        segments::backfill(tx, &tenant, &id, &program).await?;
                    }
                    Ok(UpdateSegmentResponse {
                        segment: Some(proto(tx, &row).await?),
                    })
                }
            }),
        )
        .await
    }

    pub(super) async fn delete_segment_(
        &self,
        request: Request<DeleteSegmentRequest>,
    ) -> Result<DeleteSegmentResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = store::parse_name(&request.name, SEGMENTS, "name")?.to_owned();
        let tenant = caller.tenant.clone();
        let etag = request.etag.clone();
        self.write(
            &caller,
            "DeleteSegment",
            "",
            &request,
            work!(|tx| {
                let (tenant, id, etag) = (tenant.clone(), id.clone(), etag.clone());
                async move {
                    let row = find(tx, &tenant, &id).await?;
                    store::check_etag(&etag, row.version)?;
                    member::Entity::delete_many()
                        .filter(member::Column::Tenant.eq(&tenant))
                        .filter(member::Column::SegmentId.eq(&id))
                        .exec(tx)
                        .await?;
                    segment::Entity::delete_by_id((tenant.clone(), id.clone()))
                        .exec(tx)
                        .await?;
                    Ok(DeleteSegmentResponse {})
                }
            }),
        )
        .await
    }

    pub(super) async fn segment_members(
        &self,
        request: Request<ListSegmentMembersRequest>,
    ) -> Result<ListSegmentMembersResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = store::parse_name(&request.segment, SEGMENTS, "segment")?;
        let page_size = validate::page_size(request.page_size, 100, 1000)?;
        let after = if request.page_token.is_empty() {
            None
        } else {
            let invalid = || Error::invalid("page_token", "not a token of this listing");
            let (enter, profile) = request.page_token.split_once('.').ok_or_else(invalid)?;
            Some((
                enter.parse::<i64>().map_err(|_| invalid())?,
                profile.to_owned(),
            ))
        };
        let db = &self.service.db;
        find(db, &caller.tenant, id).await?;
        let mut query = member::Entity::find()
            .filter(member::Column::Tenant.eq(&caller.tenant))
            .filter(member::Column::SegmentId.eq(id));
        if let Some((enter, profile)) = &after {
            query = query.filter(
                Condition::any()
                    .add(member::Column::EnterUs.gt(*enter))
                    .add(
                        Condition::all()
                            .add(member::Column::EnterUs.eq(*enter))
                            .add(member::Column::ProfileId.gt(profile.as_str())),
                    ),
            );
        }
        let rows = query
            .order_by_asc(member::Column::EnterUs)
            .order_by_asc(member::Column::ProfileId)
            .limit(page_size + 1)
            .all(db)
            .await
            .map_err(Error::from)?;
        let more = rows.len() as u64 > page_size;
        let page: Vec<_> = rows.into_iter().take(page_size as usize).collect();
        Ok(ListSegmentMembersResponse {
            next_page_token: match (more, page.last()) {
                (true, Some(last)) => format!("{}.{}", last.enter_us, last.profile_id),
                _ => String::new(),
            },
            members: page
                .iter()
                .map(|m| SegmentMember {
                    profile: store::profile_name(&m.profile_id),
                    enter_time: Some(store::timestamp(m.enter_us)),
                })
                .collect(),
        })
    }

    pub(super) async fn segment_membership(
        &self,
        request: Request<CheckSegmentMembershipRequest>,
    ) -> Result<CheckSegmentMembershipResponse, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = store::parse_name(&request.segment, SEGMENTS, "segment")?;
        let db = &self.service.db;
        let mut violations = Violations::default();
        let profile_id = match request.customer.and_then(|c| c.customer) {
            None => {
                violations.add("customer", "required: a profile or an identifier");
                None
            }
            Some(Customer::Profile(name)) => {
                let profile = store::parse_name(&name, PROFILES, "customer.profile")?;
                find(db, &caller.tenant, id).await?;
                Some(
                    store::require_profile(db, &caller.tenant, profile, false)
                        .await?
                        .id,
                )
            }
            Some(Customer::Identifier(identifier)) => {
                match identity::normalise(&identifier, "customer.identifier", &mut violations) {
                    Some(key) => store::holders(db, &caller.tenant, std::slice::from_ref(&key))
                        .await?
                        .into_values()
                        .next(),
                    None => None,
                }
            }
        };
        violations.into_result()?;
        find(db, &caller.tenant, id).await?;
        let Some(profile_id) = profile_id else {
            return Ok(CheckSegmentMembershipResponse::default());
        };
        let row = member::Entity::find_by_id((caller.tenant.clone(), id.to_owned(), profile_id))
            .one(db)
            .await
            .map_err(Error::from)?;
        Ok(CheckSegmentMembershipResponse {
            member: row.is_some(),
            enter_time: row.map(|m| store::timestamp(m.enter_us)),
        })
    }
}
