//! Other services' events applied here, each as a `runtime::events` consumer inside the
//! transaction that moves its cursor:
//! - the profile service's merges, unmerges, erasures and segment changes
//!   ([`profile_events_handler`]);
//! - the distribution service's inbound messages: a bare number replied to an invitation whose
//!   first question is NPS is recorded as that answer ([`replies_handler`]).

use std::sync::Arc;

use futures::FutureExt;
use sea_orm::DatabaseTransaction;
use throughline_proto::common::v1::Channel;
use throughline_proto::event::v1::{
    Event, InboundReceived, ProfileErased, ProfileMerged, ProfileUnmerged, SegmentEntered,
    SegmentExited,
};
use throughline_proto::feedback::v1::answer::Value;
use throughline_proto::feedback::v1::{Answer, QuestionType, Response};
use throughline_runtime::Error;
use throughline_runtime::events::{Handler, payload};
use throughline_runtime::time::{now_us, timestamp_us};

use crate::Service;
use crate::store::invitations;
use crate::store::surveys::{self, Lookup};

/// The consumer of the profile service's events (its cursor is kept under this name).
pub const PROFILE_EVENTS_CONSUMER: &str = "identity";
pub const PROFILE_EVENTS_SOURCE: &str = "profile";
pub const PROFILE_EVENT_TYPES: [&str; 5] = [
    "profile.merged",
    "profile.unmerged",
    "profile.erased",
    "segment.entered",
    "segment.exited",
];

/// The consumer of the distribution service's inbound messages.
pub const REPLIES_CONSUMER: &str = "replies";
pub const REPLIES_SOURCE: &str = "distribution";
pub const REPLY_EVENT_TYPES: [&str; 1] = ["inbound.received"];

fn tenant(event: &Event) -> Result<&str, Error> {
    match event.tenant.as_str() {
        "" => Err(Error::internal(format!(
            "{} event without a tenant",
            event.r#type
        ))),
        tenant => Ok(tenant),
    }
}

/// Applies the profile service's identity and segment events; other types are ignored.
pub fn profile_events_handler() -> Handler {
    Arc::new(|transaction, event| apply_profile_event(transaction, event).boxed())
}

async fn apply_profile_event(
    transaction: &DatabaseTransaction,
    event: &Event,
) -> Result<(), Error> {
    use crate::store::identity;
    let tenant = tenant(event)?;
    let time_us = event
        .time
        .as_ref()
        .and_then(timestamp_us)
        .unwrap_or_else(now_us);
    match event.r#type.as_str() {
        "profile.merged" => {
            let merged: ProfileMerged = payload(event)?;
            identity::merge(
                transaction,
                tenant,
                &merged.source_profile,
                &merged.target_profile,
            )
            .await
        }
        "profile.unmerged" => {
            let unmerged: ProfileUnmerged = payload(event)?;
            identity::unmerge(
                transaction,
                tenant,
                &unmerged.source_profile,
                &unmerged.target_profile,
            )
            .await
        }
        "profile.erased" => {
            let erased: ProfileErased = payload(event)?;
            let mut profiles = erased.merged_profiles;
            profiles.push(erased.profile);
            profiles.retain(|p| !p.is_empty());
            if profiles.is_empty() {
                return Ok(());
            }
            let deleted = identity::erase(transaction, tenant, &profiles).await?;
            tracing::info!(deleted, "erased a customer's feedback");
            Ok(())
        }
        "segment.entered" => {
            let entered: SegmentEntered = payload(event)?;
            identity::enter_segment(
                transaction,
                tenant,
                &entered.profile,
                &entered.segment,
                time_us,
            )
            .await
        }
        "segment.exited" => {
            let exited: SegmentExited = payload(event)?;
            identity::exit_segment(
                transaction,
                tenant,
                &exited.profile,
                &exited.segment,
                time_us,
            )
            .await
        }
        _ => Ok(()),
    }
}

/// Records SMS and WhatsApp replies that answer an invitation's NPS question.
pub fn replies_handler(service: Service) -> Handler {
    Arc::new(move |transaction, event| {
        let service = service.clone();
        async move { apply_reply(&service, transaction, event).await }.boxed()
    })
}

/// A reply's NPS score: a bare whole number from 0 to 10 (`9`, ` 10 `, `7.`).
fn nps_score(body: &str) -> Option<i32> {
    let trimmed = body.trim().trim_end_matches(['.', '!']);
    if trimmed.is_empty() || trimmed.len() > 2 || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    trimmed
        .parse()
        .ok()
        .filter(|score| (0..=10).contains(score))
}

async fn apply_reply(
    service: &Service,
    transaction: &DatabaseTransaction,
    event: &Event,
) -> Result<(), Error> {
    if event.r#type != "inbound.received" {
        return Ok(());
    }
    let tenant = tenant(event)?;
    let reply: InboundReceived = payload(event)?;
    let channel = Channel::try_from(reply.channel).unwrap_or(Channel::Unspecified);
    if !matches!(channel, Channel::Sms | Channel::Whatsapp) {
        return Ok(());
    }
    let Some(score) = nps_score(&reply.body) else {
        return Ok(());
    };
    let base = &service.options.survey_base_url;
    let invitation = if reply.in_reply_to.is_empty() {
        if reply.profile.is_empty() {
            return Ok(());
        }
        invitations::latest_open_sent(transaction, tenant, &reply.profile, now_us(), base).await?
    } else {
        invitations::find_by_message(transaction, tenant, &reply.in_reply_to, base).await?
    };
    let Some(invitation) = invitation else {
        return Ok(());
    };
    // Only the first question can be answered by a bare number: it is the one the invitation
    // message asks.
    let first = match surveys::published(
        transaction,
        tenant,
        &invitation.survey_id,
        invitation.invitation.survey_version,
    )
    .await?
    {
        Lookup::Found(found) => found.survey.questions.first().cloned(),
        Lookup::Missing | Lookup::Unpublished => None,
    };
    let Some(question) = first.filter(|q| q.r#type == QuestionType::Nps as i32) else {
        return Ok(());
    };
    let input = Response {
        invitation: invitation.invitation.name.clone(),
        response_channel: channel as i32,
        answers: vec![Answer {
            question_id: question.id,
            value: Some(Value::Score(score)),
            sentiment: None,
        }],
        ..Response::default()
    };
    // An expired or already answered invitation, or one already holding this answer, leaves
    // the reply as it is: it is still on the customer's timeline in the interaction service.
    match crate::submit::submit(service, transaction, tenant, input, None).await {
        Ok(_) => Ok(()),
        Err(Error::FailedPrecondition { reason, .. }) => {
            tracing::info!(reason, "an NPS reply did not answer its invitation");
            Ok(())
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::nps_score;

    #[test]
    fn only_bare_scores_answer() {
        assert_eq!(nps_score(" 9 "), Some(9));
        assert_eq!(nps_score("10."), Some(10));
        assert_eq!(nps_score("0"), Some(0));
        assert_eq!(nps_score("11"), None);
        assert_eq!(nps_score("9 thanks"), None);
        assert_eq!(nps_score("-1"), None);
        assert_eq!(nps_score("STOP"), None);
        assert_eq!(nps_score(""), None);
    }
}
