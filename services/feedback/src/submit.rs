//! Recording answers: the one path SubmitResponse and SMS replies to invitations take. A
//! submission is first prepared (read and worked out, nothing written), then written inside the
//! caller's transaction (the idempotent request's, or the event consumer's), or, for a new
//! uninvited response, together with others by `crate::grouped`.
//!
//! For an invitation, every call adds to (or replaces answers of the same question in) its one
//! response, which stays partial until every required question is answered. The first
//! detractor answer opens a follow-up. `feedback.responded` is emitted for every call,
//! `feedback.detractor` when a follow-up opens, both in the transaction that makes the change.

use sea_orm::{ConnectionTrait, DatabaseTransaction};
use throughline_proto::event::v1::Event;
use throughline_proto::event::v1::{FeedbackDetractor, FeedbackResponded};
use throughline_proto::feedback::v1::answer::Value;
use throughline_proto::feedback::v1::{
    FeedbackContext, FollowUp, FollowUpState, InvitationState, Response, Survey, SurveyState,
};
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::events::new_event;
use throughline_runtime::request::resource_id;
use throughline_runtime::time::{now_us, timestamp};
use throughline_runtime::{Error, FieldViolation};

use crate::Service;
use crate::answers::{self, ScoreKind};
use crate::context::{self, is_language};
use crate::store::follow_ups::follow_up_name;
use crate::store::invitations::{self, StoredInvitation};
use crate::store::responses::{self, StoredResponse, response_name};
use crate::store::surveys::{Lookup, survey_name};

/// Who an uninvited response is from: the checked key and the profile it resolves to.
#[derive(Debug, Clone)]
pub(crate) struct Respondent {
    pub customer: CustomerKey,
    pub profile: Option<String>,
}

fn expired(invitation: &str) -> Error {
    Error::FailedPrecondition {
        reason: "INVITATION_EXPIRED",
        message: format!("{invitation} has expired; no more answers are accepted"),
    }
}

fn complete(invitation: &str) -> Error {
    Error::FailedPrecondition {
        reason: "RESPONSE_COMPLETE",
        message: format!("{invitation} is already fully answered"),
    }
}

/// Checks what a submission carries besides its survey and customer: channel, language and
/// at least one answer.
pub(crate) fn check_input(input: &Response) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    if throughline_proto::common::v1::Channel::try_from(input.response_channel).is_err() {
        violations.push(FieldViolation::new(
            "response.response_channel",
            format!("unknown channel {}", input.response_channel),
        ));
    }
    if !input.language.is_empty() && !is_language(&input.language) {
        violations.push(FieldViolation::new(
            "response.language",
            "a BCP-47 tag such as en or fr-CA",
        ));
    }
    if input.answers.is_empty() {
        violations.push(FieldViolation::new(
            "response.answers",
            "at least one answer is required",
        ));
    }
    if input.survey_version < 0 {
        violations.push(FieldViolation::new(
            "response.survey_version",
            "must not be negative",
        ));
    }
    if input.invitation.is_empty() {
        if let Some(context) = &input.context {
            violations.extend(context::check(context, "response.context"));
        } else {
            violations.push(FieldViolation::new(
                "response.context",
                "is required without an invitation",
            ));
        }
    }
    violations
}

/// Records `input` (already checked by [`check_input`]) for `tenant` through `transaction`.
/// `respondent` is required without an invitation.
pub(crate) async fn submit(
    service: &Service,
    transaction: &DatabaseTransaction,
    tenant: &str,
    input: Response,
    respondent: Option<Respondent>,
) -> Result<Response, Error> {
    let prepared = prepare(service, transaction, tenant, input, respondent).await?;
    write(service, transaction, tenant, prepared).await
}

/// What a submission writes, worked out before anything is written.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub stored: StoredResponse,
    pub survey: Survey,
    /// Whether the response is new (not more answers to an invitation's partial response).
    pub is_new: bool,
    /// The follow-up a first detractor answer opens.
    pub follow_up: Option<FollowUp>,
    pub events: Vec<Event>,
    invitation: Option<StoredInvitation>,
}

impl Prepared {
    /// Whether writing it only inserts rows (a new response, no invitation to update): what
    /// `crate::grouped` writes.
    pub(crate) fn only_inserts(&self) -> bool {
        self.is_new && self.invitation.is_none()
    }
}

/// Reads what `input` needs (its invitation, survey and earlier answers) through `db` and works
/// out what recording it writes; writes nothing.
pub(crate) async fn prepare(
    service: &Service,
    db: &impl ConnectionTrait,
    tenant: &str,
    mut input: Response,
    respondent: Option<Respondent>,
) -> Result<Prepared, Error> {
    let now = now_us();
    let invitation = match input.invitation.as_str() {
        "" => None,
        name => {
            let id = resource_id(name, "invitations", "response.invitation")?;
            let found = invitations::find(db, tenant, id, &service.options.survey_base_url)
                .await?
                .ok_or_else(|| Error::NotFound(name.to_owned()))?;
            Some(found)
        }
    };
    let (survey_id, version, customer, profile, context) = match &invitation {
        Some(invitation) => {
            check_open(invitation, now)?;
            let inv = &invitation.invitation;
            if !input.survey.is_empty() && input.survey != inv.survey {
                return Err(Error::invalid(
                    "response.survey",
                    format!("differs from the invitation's survey {}", inv.survey),
                ));
            }
            (
                invitation.survey_id.clone(),
                inv.survey_version,
                invitation.customer.clone(),
                inv.profile.clone(),
                inv.context.clone().unwrap_or_default(),
            )
        }
        None => {
            let survey_id = resource_id(&input.survey, "surveys", "response.survey")?.to_owned();
            let Some(respondent) = respondent else {
                return Err(Error::invalid(
                    "response.customer",
                    "is required without an invitation",
                ));
            };
            (
                survey_id,
                input.survey_version,
                respondent.customer,
                respondent.profile.unwrap_or_default(),
                input.context.take().unwrap_or_default(),
            )
        }
    };
    let survey = published_survey(
        service,
        db,
        tenant,
        &survey_id,
        version,
        invitation.is_none(),
    )
    .await?;
    Error::unless_valid(answers::check(&survey, &input.answers))?;
    for answer in &mut input.answers {
        answer.sentiment = match &answer.value {
            Some(Value::Text(text)) => Some(service.sentiment.analyse(text)),
            _ => None,
        };
    }

    let existing = match &invitation {
        Some(invitation) => responses::find_for_invitation(db, tenant, &invitation.id).await?,
        None => None,
    };
    if let (Some(existing), Some(invitation)) = (&existing, &invitation)
        && existing.response.complete
    {
        return Err(complete(&invitation.invitation.name));
    }
    let is_new = existing.is_none();
    let mut stored = existing.unwrap_or_else(|| StoredResponse {
        id: uuid::Uuid::now_v7().simple().to_string(),
        survey_id: survey_id.clone(),
        invitation_id: invitation
            .as_ref()
            .map(|i| i.id.clone())
            .unwrap_or_default(),
        customer: customer.clone(),
        create_us: now,
        response: Response {
            survey: survey_name(&survey_id),
            invitation: invitation
                .as_ref()
                .map(|i| i.invitation.name.clone())
                .unwrap_or_default(),
            customer: Some(customer.to_ref()),
            profile: profile.clone(),
            context: Some(context.clone()),
            create_time: Some(timestamp(now)),
            ..Response::default()
        },
    });
    let response = &mut stored.response;
    response.name = response_name(&stored.id);
    response.survey_version = survey.version;
    if input.response_channel != 0 {
        response.response_channel = input.response_channel;
    }
    if !input.language.is_empty() {
        response.language = input.language.clone();
    }
    let earlier = std::mem::take(&mut response.answers);
    response.answers = answers::merge(&survey, earlier, input.answers);
    response.update_time = Some(timestamp(now));
    if !response.complete && answers::is_complete(&survey, &response.answers) {
        response.complete = true;
        response.complete_time = Some(timestamp(now));
    }

    let mut events = Vec::new();
    let mut opened = None;
    if response.follow_up.is_empty()
        && let Some((answer, kind, score)) = answers::detractor_answer(&survey, &response.answers)
    {
        let follow_up = FollowUp {
            name: follow_up_name(&uuid::Uuid::now_v7().simple().to_string()),
            response: response.name.clone(),
            survey: response.survey.clone(),
            profile: response.profile.clone(),
            question_id: answer.question_id.clone(),
            score,
            state: FollowUpState::Open as i32,
            create_time: Some(timestamp(now)),
            ..FollowUp::default()
        };
        response.detractor = true;
        response.follow_up = follow_up.name.clone();
        events.push(detractor_event(
            tenant, response, &follow_up, kind, &context,
        ));
        opened = Some(follow_up);
    }
    events.insert(
        0,
        responded_event(tenant, &stored.response, &survey, &context),
    );
    Ok(Prepared {
        stored,
        survey,
        is_new,
        follow_up: opened,
        events,
        invitation,
    })
}

/// Writes `prepared` through `transaction`; the response as recorded.
pub(crate) async fn write(
    service: &Service,
    transaction: &DatabaseTransaction,
    tenant: &str,
    prepared: Prepared,
) -> Result<Response, Error> {
    let Prepared {
        stored,
        survey,
        is_new,
        follow_up,
        events,
        invitation,
    } = prepared;
    if let Some(follow_up) = &follow_up {
        crate::store::follow_ups::insert_all(transaction, &[(tenant, follow_up)]).await?;
    }
    responses::save(transaction, tenant, &stored, &survey, is_new)
        .await
        .map_err(|error| match error {
            // Another first answer to the same invitation committed in the meantime.
            Error::AlreadyExists(_) => Error::Aborted(
                "another answer to this invitation arrived at the same time; retry".to_owned(),
            ),
            other => other,
        })?;
    if let Some(invitation) = &invitation {
        let state = if stored.response.complete {
            InvitationState::Answered
        } else {
            InvitationState::PartiallyAnswered
        };
        invitations::set_answered(transaction, tenant, &invitation.id, state, &stored.id).await?;
    }
    service.outbox.append_all(transaction, &events).await?;
    Ok(stored.response)
}

/// An invitation accepts answers until it expires, unless it was never sent.
fn check_open(invitation: &StoredInvitation, now: i64) -> Result<(), Error> {
    let name = &invitation.invitation.name;
    match invitation.state() {
        InvitationState::Expired => Err(expired(name)),
        _ if invitation.expire_us <= now => Err(expired(name)),
        InvitationState::Answered => Err(complete(name)),
        InvitationState::Throttled | InvitationState::Suppressed | InvitationState::Failed => {
            Err(Error::FailedPrecondition {
                reason: "INVITATION_NOT_SENT",
                message: format!(
                    "{name} was not sent ({})",
                    invitation.invitation.state_reason
                ),
            })
        }
        _ => Ok(()),
    }
}

/// The survey version answered. Uninvited answers need a survey still collecting them; an
/// invitation may be answered after its survey is archived, until it expires.
async fn published_survey(
    service: &Service,
    db: &impl ConnectionTrait,
    tenant: &str,
    survey_id: &str,
    version: i32,
    uninvited: bool,
) -> Result<Survey, Error> {
    match service
        .published_survey(db, tenant, survey_id, version)
        .await?
    {
        Lookup::Missing if version != 0 => Err(Error::NotFound(format!(
            "version {version} of {}",
            survey_name(survey_id)
        ))),
        Lookup::Missing => Err(Error::NotFound(survey_name(survey_id))),
        Lookup::Unpublished => Err(Error::FailedPrecondition {
            reason: "SURVEY_NOT_PUBLISHED",
            message: format!("{} has no published version", survey_name(survey_id)),
        }),
        Lookup::Found(found) if uninvited && found.state == SurveyState::Archived => {
            Err(Error::FailedPrecondition {
                reason: "SURVEY_ARCHIVED",
                message: format!("{} is archived", survey_name(survey_id)),
            })
        }
        Lookup::Found(found) => Ok(found.survey),
    }
}

/// The first score of each kind among `response`'s answers.
fn first_score(survey: &Survey, response: &Response, kind: ScoreKind) -> Option<i32> {
    response.answers.iter().find_map(|answer| {
        let question = survey
            .questions
            .iter()
            .find(|q| q.id == answer.question_id)?;
        match (ScoreKind::of(question), &answer.value) {
            (Some(found), Some(Value::Score(score))) if found == kind => Some(*score),
            _ => None,
        }
    })
}

fn responded_event(
    tenant: &str,
    response: &Response,
    survey: &Survey,
    context: &FeedbackContext,
) -> Event {
    let payload = FeedbackResponded {
        response: response.name.clone(),
        survey: response.survey.clone(),
        survey_version: response.survey_version,
        invitation: response.invitation.clone(),
        profile: response.profile.clone(),
        complete: response.complete,
        nps_score: first_score(survey, response, ScoreKind::Nps),
        csat_score: first_score(survey, response, ScoreKind::Csat),
        ces_score: first_score(survey, response, ScoreKind::Ces),
        interaction: context.interaction.clone(),
        thread: context.thread.clone(),
        journey: context.journey.clone(),
        journey_instance: context.journey_instance.clone(),
        journey_node: context.journey_node.clone(),
        channel: context.channel,
        touchpoint: context.touchpoint.clone(),
    };
    new_event(
        crate::NAME,
        tenant,
        "feedback.responded",
        &response.name,
        "FeedbackResponded",
        &payload,
    )
}

fn detractor_event(
    tenant: &str,
    response: &Response,
    follow_up: &FollowUp,
    kind: ScoreKind,
    context: &FeedbackContext,
) -> Event {
    let payload = FeedbackDetractor {
        response: response.name.clone(),
        follow_up: follow_up.name.clone(),
        survey: response.survey.clone(),
        profile: response.profile.clone(),
        question_id: follow_up.question_id.clone(),
        metric: kind.label().to_owned(),
        score: follow_up.score,
        interaction: context.interaction.clone(),
        journey_instance: context.journey_instance.clone(),
        channel: context.channel,
        touchpoint: context.touchpoint.clone(),
    };
    new_event(
        crate::NAME,
        tenant,
        "feedback.detractor",
        &response.name,
        "FeedbackDetractor",
        &payload,
    )
}
