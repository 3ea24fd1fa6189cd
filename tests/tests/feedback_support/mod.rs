//! What the feedback tests share: clients, a survey with a question of every type, and
//! creating and publishing surveys through the API.
#![allow(dead_code)]

use throughline_harness::{Authenticated, TestSuite, query_integer, token};
use throughline_proto::common::v1::CustomerRef;
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use throughline_proto::feedback::v1::*;

pub type Client = FeedbackServiceClient<Authenticated>;

/// A client of `tenant` with both feedback scopes.
pub async fn client(suite: &TestSuite, tenant: &str) -> Client {
    suite
        .clients(&token(tenant, &["feedback:read", "feedback:write"]))
        .await
        .feedback
}

pub fn text(value: &str) -> LocalizedText {
    LocalizedText {
        text: value.into(),
        translations: Default::default(),
    }
}

pub fn question(id: &str, r#type: QuestionType, required: bool) -> Question {
    Question {
        id: id.into(),
        r#type: r#type as i32,
        text: Some(text(&format!("Question {id}?"))),
        required,
        ..Question::default()
    }
}

/// A survey asking NPS (required), CSAT, CES, a free-text reason and a single choice.
pub fn survey(display_name: &str) -> Survey {
    let mut choice = question("topic", QuestionType::SingleChoice, false);
    choice.choices = ["billing", "delivery", "support"]
        .into_iter()
        .map(|id| Choice {
            id: id.into(),
            label: Some(text(id)),
        })
        .collect();
    Survey {
        display_name: display_name.into(),
        default_language: "en".into(),
        questions: vec![
            question("nps", QuestionType::Nps, true),
            question("csat", QuestionType::Csat, false),
            question("ces", QuestionType::Ces, false),
            question("reason", QuestionType::FreeText, false),
            choice,
        ],
        ..Survey::default()
    }
}

/// Creates `survey` as `surveys/{id}` and publishes it; returns the published survey.
pub async fn publish(client: &mut Client, id: &str, survey: Survey) -> Survey {
    client
        .create_survey(CreateSurveyRequest {
            survey: Some(survey),
            survey_id: id.into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    client
        .publish_survey(PublishSurveyRequest {
            name: format!("surveys/{id}"),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .survey
        .unwrap()
}

pub fn profile(id: &str) -> CustomerRef {
    CustomerRef {
        customer: Some(Customer::Profile(format!("profiles/{id}"))),
    }
}

pub fn score(question_id: &str, value: i32) -> Answer {
    Answer {
        question_id: question_id.into(),
        value: Some(answer::Value::Score(value)),
        sentiment: None,
    }
}

pub fn free_text(question_id: &str, value: &str) -> Answer {
    Answer {
        question_id: question_id.into(),
        value: Some(answer::Value::Text(value.into())),
        sentiment: None,
    }
}

/// An uninvited response of `customer` to `survey` (`surveys/{id}`) about `context`.
pub fn uninvited(
    survey: &str,
    customer: CustomerRef,
    context: FeedbackContext,
    answers: Vec<Answer>,
) -> Response {
    Response {
        survey: survey.into(),
        customer: Some(customer),
        context: Some(context),
        answers,
        ..Response::default()
    }
}

/// Submits `response` under `request_id`.
pub async fn submit(
    client: &mut Client,
    response: Response,
    request_id: &str,
) -> Result<Response, tonic::Status> {
    client
        .submit_response(SubmitResponseRequest {
            response: Some(response),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner().response.unwrap())
}

/// The feedback service's own database connection.
pub async fn database(test_db: &throughline_harness::TestDatabase) -> sea_orm::DatabaseConnection {
    let config = TestSuite::config(&["feedback"], test_db, &[]);
    throughline_runtime::db::connect(&config.database, "feedback")
        .await
        .unwrap()
}

/// The events of `event_type` the feedback service emitted for `tenant`, oldest first.
pub async fn events(
    db: &sea_orm::DatabaseConnection,
    tenant: &str,
    event_type: &str,
) -> Vec<throughline_proto::event::v1::Event> {
    use throughline_runtime::events::{Filter, Outbox, Position};
    outbox_readable(db).await;
    Outbox::new("feedback")
        .read(
            db,
            Position::default(),
            10_000,
            &Filter {
                tenant: Some(tenant.into()),
                event_types: vec![event_type.into()],
            },
        )
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|entry| entry.event)
        .collect()
}

/// Waits (at most 10 s) until every row now in the outbox can be read. On PostgreSQL a read
/// stops below the oldest transaction still running anywhere on the server, and tests running
/// beside this one keep transactions open, so a read right after a call may miss its events.
async fn outbox_readable(db: &sea_orm::DatabaseConnection) {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let unreadable = "SELECT COUNT(*) FROM feedback_outbox \
                      WHERE xid >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
    while query_integer(db, unreadable).await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Invites `customer` to `survey` (`surveys/{id}`) without delivery: the caller presents it.
pub async fn invite(
    client: &mut Client,
    survey: &str,
    customer: CustomerRef,
    request_id: &str,
) -> Invitation {
    client
        .request_feedback(RequestFeedbackRequest {
            survey: survey.into(),
            customer: Some(customer),
            context: Some(FeedbackContext::default()),
            request_id: request_id.into(),
            ..RequestFeedbackRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap()
}

/// Answers an invitation (`invitations/{id}`).
pub async fn answer(
    client: &mut Client,
    invitation: &str,
    answers: Vec<Answer>,
    request_id: &str,
) -> Result<Response, tonic::Status> {
    submit(
        client,
        Response {
            invitation: invitation.into(),
            answers,
            ..Response::default()
        },
        request_id,
    )
    .await
}
