//! Reading RPCs: one interaction, timelines, customer context and contact analytics.

use std::sync::Arc;

use throughline_proto::google::r#type::Interval;
use throughline_proto::interaction::v1::{
    ContextPart, CustomerContext, GetChannelSwitchPathsRequest, GetChannelSwitchPathsResponse,
    GetContactReasonsRequest, GetContactReasonsResponse, GetCustomerContextRequest,
    GetCustomerContextResponse, GetInteractionRequest, GetInteractionResponse,
    GetRepeatContactRateRequest, GetRepeatContactRateResponse, ListInteractionsRequest,
    ThreadState,
};
use throughline_runtime::Error;

use super::{Api, channels, customer_key, page_size, resource_id};
use crate::customer::Unavailable;
use crate::store::timeline::SharedPage;
use crate::store::{analytics, profile_of, threads, timeline};
use crate::time::{MICROS_PER_DAY, PageToken, duration_us, timestamp_us};

/// Open threads shown in a customer's context.
const CONTEXT_THREADS: usize = 50;
/// Longest repeat or switch window.
const MAX_WINDOW_US: i64 = 366 * MICROS_PER_DAY;

/// `[start, end)` of an interval; with `required`, both ends must be set.
fn interval(
    interval: Option<&Interval>,
    field: &str,
    required: bool,
) -> Result<(Option<i64>, Option<i64>), Error> {
    let Some(interval) = interval else {
        return if required {
            Err(Error::invalid(field, "required"))
        } else {
            Ok((None, None))
        };
    };
    let bound = |time: Option<&prost_types::Timestamp>, name: &str| {
        time.map(|t| {
            timestamp_us(t).ok_or_else(|| {
                Error::invalid(format!("{field}.{name}"), "not a valid time from 1970 on")
            })
        })
        .transpose()
    };
    let start = bound(interval.start_time.as_ref(), "start_time")?;
    let end = bound(interval.end_time.as_ref(), "end_time")?;
    if required && (start.is_none() || end.is_none()) {
        return Err(Error::invalid(field, "needs both a start and an end time"));
    }
    if let (Some(start), Some(end)) = (start, end)
        && start >= end
    {
        return Err(Error::invalid(field, "the start must be before the end"));
    }
    Ok((start, end))
}

fn window(duration: Option<&prost_types::Duration>, field: &str) -> Result<Option<i64>, Error> {
    duration
        .map(|d| {
            duration_us(d)
                .filter(|us| *us <= MAX_WINDOW_US)
                .ok_or_else(|| Error::invalid(field, "must be more than zero and at most 366 days"))
        })
        .transpose()
}

impl Api {
    pub(super) async fn get_interaction(
        &self,
        tenant: &str,
        request: GetInteractionRequest,
    ) -> Result<GetInteractionResponse, Error> {
        let id = resource_id(&request.name, "interactions", "name")?;
        match timeline::get(&self.service.db, tenant, id).await? {
            Some(interaction) => Ok(GetInteractionResponse {
                interaction: Some(interaction),
            }),
            None => Err(Error::NotFound(request.name)),
        }
    }

    /// The page a ListInteractions request asks for, as its concurrent callers share it, and
    /// the token of the page after it (empty at the end).
    pub(super) async fn interactions_page(
        &self,
        tenant: &str,
        request: ListInteractionsRequest,
    ) -> Result<(Arc<SharedPage>, String), Error> {
        if request.customer.is_none() && request.thread.is_empty() {
            return Err(Error::invalid(
                "customer",
                "either customer or thread is required",
            ));
        }
        let customer = request
            .customer
            .as_ref()
            .map(|customer| customer_key(Some(customer), "customer"))
            .transpose()?;
        let thread = match request.thread.as_str() {
            "" => None,
            name => Some(resource_id(name, "threads", "thread")?.to_owned()),
        };
        let channels = channels(&request.channels, "channels")?;
        for (index, r#type) in request.types.iter().enumerate() {
            if r#type.is_empty() || r#type.len() > 128 {
                return Err(Error::invalid(
                    format!("types[{index}]"),
                    "not an interaction type",
                ));
            }
        }
        let (from_us, until_us) =
            interval(request.occur_time_range.as_ref(), "occur_time_range", false)?;
        let page_size = page_size(request.page_size)?;
        // The profile, not its survivor: the page read follows a merge itself (see
        // `timeline::Pages`), which spares every call a lookup of its own.
        let timeline = match &customer {
            Some(key) => Some(
                self.profile(tenant, key)
                    .await?
                    .unwrap_or_else(|| key.as_str().to_owned()),
            ),
            None => None,
        };
        let filters = format!(
            "{timeline:?}|{thread:?}|{channels:?}|{:?}|{from_us:?}|{until_us:?}",
            request.types
        );
        let after = PageToken::decode(&request.page_token, &filters)
            .map_err(|message| Error::invalid("page_token", message))?;
        let query = timeline::Query {
            timeline,
            thread,
            channels,
            types: request.types,
            from_us,
            until_us,
            after,
            page_size,
        };
        let page = self.service.pages().read(tenant, query).await?;
        let next_page_token = page
            .page
            .1
            .as_ref()
            .map(|next| next.encode(&filters))
            .unwrap_or_default();
        Ok((page, next_page_token))
    }

    pub(super) async fn customer_context(
        &self,
        tenant: &str,
        request: GetCustomerContextRequest,
    ) -> Result<GetCustomerContextResponse, Error> {
        let key = customer_key(request.customer.as_ref(), "customer")?;
        let timeline = self.timeline(tenant, &key).await?;
        let db = &self.service.db;
        let last_interactions = self
            .service
            .pages()
            .latest_per_channel(tenant, &timeline)
            .await?;
        let (open_threads, _) = threads::list(
            db,
            tenant,
            &timeline,
            &[ThreadState::Open as i32],
            None,
            CONTEXT_THREADS,
        )
        .await?;
        let profile = profile_of(&timeline);
        // Journeys and feedback join once those services answer for a customer.
        let mut unavailable_parts =
            vec![ContextPart::Journeys as i32, ContextPart::Feedback as i32];
        let profile_summary = if profile.is_empty() {
            // Not resolved to a profile: the part is truly empty.
            None
        } else {
            match self.service.resolver.summary(tenant, &profile).await {
                Ok(summary) => summary,
                Err(Unavailable) => {
                    unavailable_parts.insert(0, ContextPart::Profile as i32);
                    None
                }
            }
        };
        Ok(GetCustomerContextResponse {
            context: Some(CustomerContext {
                profile,
                last_interactions,
                open_threads,
                profile_summary,
                active_journeys: Vec::new(),
                latest_feedback: None,
                unavailable_parts,
            }),
        })
    }

    pub(super) async fn contact_reasons(
        &self,
        tenant: &str,
        request: GetContactReasonsRequest,
    ) -> Result<GetContactReasonsResponse, Error> {
        let (from, until) = interval(request.time_range.as_ref(), "time_range", true)?;
        let channels = channels(&request.channels, "channels")?;
        let limit = match request.limit {
            0 => 10,
            limit if limit < 0 => return Err(Error::invalid("limit", "must not be negative")),
            limit => i64::from(limit.min(100)),
        };
        let (reasons, total_contacts) = analytics::contact_reasons(
            &self.service.db,
            tenant,
            from.unwrap_or_default(),
            until.unwrap_or_default(),
            &channels,
            limit,
        )
        .await?;
        Ok(GetContactReasonsResponse {
            reasons,
            total_contacts,
        })
    }

    pub(super) async fn repeat_contact_rate(
        &self,
        tenant: &str,
        request: GetRepeatContactRateRequest,
    ) -> Result<GetRepeatContactRateResponse, Error> {
        let (from, until) = interval(request.time_range.as_ref(), "time_range", true)?;
        let window = window(request.repeat_window.as_ref(), "repeat_window")?
            .ok_or_else(|| Error::invalid("repeat_window", "required"))?;
        let channels = channels(&request.channels, "channels")?;
        if request.reason.len() > 256 {
            return Err(Error::invalid("reason", "at most 256 characters"));
        }
        let groups = analytics::repeat_contacts(
            &self.service.db,
            tenant,
            from.unwrap_or_default(),
            until.unwrap_or_default(),
            window,
            &channels,
            &request.reason,
        )
        .await?;
        let contacts: i64 = groups.iter().map(|g| g.contacts).sum();
        let repeats: i64 = groups.iter().map(|g| g.repeats).sum();
        Ok(GetRepeatContactRateResponse {
            contacts,
            repeats,
            rate: if contacts > 0 {
                repeats as f64 / contacts as f64
            } else {
                0.0
            },
            groups,
        })
    }

    pub(super) async fn channel_switch_paths(
        &self,
        tenant: &str,
        request: GetChannelSwitchPathsRequest,
    ) -> Result<GetChannelSwitchPathsResponse, Error> {
        let (from, until) = interval(request.time_range.as_ref(), "time_range", true)?;
        let window =
            window(request.switch_window.as_ref(), "switch_window")?.unwrap_or(MICROS_PER_DAY);
        let from_channels = channels(&request.from_channels, "from_channels")?;
        let transitions = analytics::channel_switches(
            &self.service.db,
            tenant,
            from.unwrap_or_default(),
            until.unwrap_or_default(),
            window,
            &from_channels,
        )
        .await?;
        Ok(GetChannelSwitchPathsResponse { transitions })
    }
}
