//! `feedback_responses` (one row per response, its answers kept as a message) with the rows
//! metrics and themes read: `feedback_scores` (one per scored answer) and `feedback_texts`
//! (one per free-text answer, with its sentiment).

use prost::Message;
use sea_orm::{ConnectionTrait, QueryResult};
use throughline_proto::feedback::v1::answer::Value;
use throughline_proto::feedback::v1::{Response, Survey};
use throughline_runtime::Error;
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::sql::{Sql, insert_rows};
use throughline_runtime::time::{PageToken, timestamp};

use super::counts::{self, Counted, Rows};
use super::{CONTEXT_COLUMNS, context_from_row, context_values};
use crate::answers::ScoreKind;

const COLUMNS: &str = "id, survey_id, survey_version, invitation_id, customer, profile, \
                       interaction, thread, journey, journey_instance, journey_node, channel, \
                       touchpoint, response_channel, language, answers, complete, detractor, \
                       follow_up_id, create_us, update_us, complete_us";

/// `responses/{id}`.
pub(crate) fn response_name(id: &str) -> String {
    format!("responses/{id}")
}

/// A response as stored: the contract's message, its customer key and id.
#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    pub id: String,
    pub survey_id: String,
    pub invitation_id: String,
    pub customer: CustomerKey,
    pub create_us: i64,
    pub response: Response,
}

fn name_or_empty(id: String, name: fn(&str) -> String) -> String {
    if id.is_empty() { id } else { name(&id) }
}

fn from_row(row: &QueryResult) -> Result<StoredResponse, Error> {
    let id: String = row.try_get("", "id")?;
    let survey_id: String = row.try_get("", "survey_id")?;
    let invitation_id: String = row.try_get("", "invitation_id")?;
    let customer = CustomerKey::from_stored(row.try_get("", "customer")?);
    let answers: Vec<u8> = row.try_get("", "answers")?;
    let complete: i32 = row.try_get("", "complete")?;
    let detractor: i32 = row.try_get("", "detractor")?;
    let follow_up_id: String = row.try_get("", "follow_up_id")?;
    let create_us: i64 = row.try_get("", "create_us")?;
    let update_us: i64 = row.try_get("", "update_us")?;
    let complete_us: Option<i64> = row.try_get("", "complete_us")?;
    let response = Response {
        name: response_name(&id),
        survey: super::surveys::survey_name(&survey_id),
        survey_version: row.try_get("", "survey_version")?,
        invitation: name_or_empty(invitation_id.clone(), super::invitations::invitation_name),
        customer: Some(customer.to_ref()),
        profile: row.try_get("", "profile")?,
        context: Some(context_from_row(row)?),
        response_channel: row.try_get("", "response_channel")?,
        language: row.try_get("", "language")?,
        answers: Response::decode(answers.as_slice())
            .map_err(Error::internal)?
            .answers,
        complete: complete != 0,
        detractor: detractor != 0,
        follow_up: name_or_empty(follow_up_id, super::follow_ups::follow_up_name),
        create_time: Some(timestamp(create_us)),
        update_time: Some(timestamp(update_us)),
        complete_time: complete_us.map(timestamp),
    };
    Ok(StoredResponse {
        id,
        survey_id,
        invitation_id,
        customer,
        create_us,
        response,
    })
}

fn select(db: &impl ConnectionTrait, tenant: &str) -> Sql {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM feedback_responses WHERE tenant = "
    ))
    .bind(tenant);
    sql
}

pub(crate) async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
) -> Result<Option<StoredResponse>, Error> {
    let mut sql = select(db, tenant);
    sql.push(" AND id = ").bind(id);
    db.query_one_raw(sql.statement())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The one response of an invitation, if answering began.
pub(crate) async fn find_for_invitation(
    db: &impl ConnectionTrait,
    tenant: &str,
    invitation_id: &str,
) -> Result<Option<StoredResponse>, Error> {
    let mut sql = select(db, tenant);
    sql.push(" AND invitation_id = ").bind(invitation_id);
    db.query_one_raw(sql.statement())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// A new response to insert: its tenant, the response and the survey version it answers.
pub(crate) type NewResponse<'a> = (&'a str, &'a StoredResponse, &'a Survey);

/// Inserts `stored` (`is_new`) or replaces its row, then rewrites its score and text rows from
/// its answers, so that metrics and themes always see the response's current answers.
pub(crate) async fn save(
    db: &impl ConnectionTrait,
    tenant: &str,
    stored: &StoredResponse,
    survey: &Survey,
    is_new: bool,
) -> Result<(), Error> {
    if is_new {
        return insert_all(db, &[(tenant, stored, survey)]).await;
    }
    let response = &stored.response;
    let ids = [stored.id.as_str()];
    // What the response counted for until now is replaced by what it counts for after.
    counts::record(db, -1, &counted(tenant, &ids)).await?;
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("UPDATE feedback_responses SET answers = ")
        .bind(answers_bytes(response))
        .push(", survey_version = ")
        .bind(response.survey_version)
        .push(", response_channel = ")
        .bind(response.response_channel)
        .push(", language = ")
        .bind(response.language.as_str())
        .push(", complete = ")
        .bind(i32::from(response.complete))
        .push(", detractor = ")
        .bind(i32::from(response.detractor))
        .push(", follow_up_id = ")
        .bind(follow_up_id(response))
        .push(", update_us = ")
        .bind(update_us(stored))
        .push(", complete_us = ")
        .bind(complete_us(response))
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(stored.id.as_str());
    db.execute_raw(sql.statement()).await?;
    for table in ["feedback_scores", "feedback_texts"] {
        let mut sql = Sql::new(backend);
        sql.push(&format!("DELETE FROM {table} WHERE tenant = "))
            .bind(tenant)
            .push(" AND response_id = ")
            .bind(stored.id.as_str());
        db.execute_raw(sql.statement()).await?;
    }
    insert_answer_rows(db, &[(tenant, stored, survey)]).await?;
    counts::record(db, 1, &counted(tenant, &ids)).await
}

/// Inserts new responses (of any tenants) with their score and text rows, a statement per
/// table for all of them: what concurrent submissions written together share.
pub(crate) async fn insert_all(
    db: &impl ConnectionTrait,
    responses: &[NewResponse<'_>],
) -> Result<(), Error> {
    if responses.is_empty() {
        return Ok(());
    }
    let mut columns = vec![
        "tenant",
        "id",
        "survey_id",
        "survey_version",
        "invitation_id",
        "customer",
        "profile",
        "recorded_profile",
    ];
    columns.extend(CONTEXT_COLUMNS);
    columns.extend([
        "response_channel",
        "language",
        "answers",
        "complete",
        "detractor",
        "follow_up_id",
        "create_us",
        "update_us",
        "complete_us",
    ]);
    let rows = responses.iter().map(|(tenant, stored, _)| {
        let response = &stored.response;
        let context = response.context.clone().unwrap_or_default();
        let mut values: Vec<sea_orm::Value> = vec![
            (*tenant).into(),
            stored.id.clone().into(),
            stored.survey_id.clone().into(),
            response.survey_version.into(),
            stored.invitation_id.clone().into(),
            stored.customer.as_str().into(),
            response.profile.clone().into(),
            response.profile.clone().into(),
        ];
        values.extend(context_values(&context));
        values.extend([
            response.response_channel.into(),
            response.language.clone().into(),
            answers_bytes(response).into(),
            i32::from(response.complete).into(),
            i32::from(response.detractor).into(),
            follow_up_id(response).into(),
            stored.create_us.into(),
            update_us(stored).into(),
            complete_us(response).into(),
        ]);
        values
    });
    let sql = insert_rows(
        db.get_database_backend(),
        "feedback_responses",
        &columns,
        rows,
    )?;
    db.execute_raw(sql.statement()).await?;
    let scores = insert_answer_rows(db, responses).await?;
    // The counts of what was just written, from the values in hand.
    let mut changes = std::collections::BTreeMap::new();
    let counter = |index: usize, kind: i32, score: i32| {
        let (tenant, stored, _): &NewResponse<'_> = &responses[index];
        let channel = stored.response.context.as_ref().map_or(0, |c| c.channel);
        (
            (*tenant).to_owned(),
            stored.survey_id.clone(),
            counts::day_of(stored.create_us),
            channel,
            kind,
            score,
        )
    };
    for (index, (_, stored, _)) in responses.iter().enumerate() {
        let complete = i32::from(stored.response.complete);
        *changes
            .entry(counter(index, counts::RESPONSES, complete))
            .or_insert(0) += 1;
    }
    for (index, kind, score) in scores {
        *changes.entry(counter(index, kind, score)).or_insert(0) += 1;
    }
    counts::record_changes(db, &changes).await
}

/// The response rows `ids` of `tenant` and their score rows, for their counts.
fn counted<'a>(tenant: &'a str, ids: &'a [&'a str]) -> [(Counted, Rows<'a>); 2] {
    [
        (
            Counted::Responses,
            Rows::Where {
                tenant,
                column: "id",
                values: ids,
            },
        ),
        (
            Counted::Scores,
            Rows::Where {
                tenant,
                column: "response_id",
                values: ids,
            },
        ),
    ]
}

/// The answers column: the answers as a `Response` message of nothing else.
fn answers_bytes(response: &Response) -> Vec<u8> {
    Response {
        answers: response.answers.clone(),
        ..Response::default()
    }
    .encode_to_vec()
}

fn update_us(stored: &StoredResponse) -> i64 {
    stored
        .response
        .update_time
        .as_ref()
        .and_then(throughline_runtime::time::timestamp_us)
        .unwrap_or(stored.create_us)
}

fn complete_us(response: &Response) -> Option<i64> {
    response
        .complete_time
        .as_ref()
        .and_then(throughline_runtime::time::timestamp_us)
}

fn follow_up_id(response: &Response) -> &str {
    response
        .follow_up
        .strip_prefix("followUps/")
        .unwrap_or_default()
}

/// Inserts the score and text rows of `responses`' answers, one statement per table; the
/// scores written, as the index of their response, their kind and score.
async fn insert_answer_rows(
    db: &impl ConnectionTrait,
    responses: &[NewResponse<'_>],
) -> Result<Vec<(usize, i32, i32)>, Error> {
    let mut written = Vec::new();
    let (mut score_rows, mut text_rows) = (Vec::new(), Vec::new());
    for (index, (tenant, stored, survey)) in responses.iter().enumerate() {
        let response = &stored.response;
        let context = response.context.clone().unwrap_or_default();
        let common = |question_id: &str| -> Vec<sea_orm::Value> {
            vec![
                (*tenant).into(),
                stored.id.clone().into(),
                question_id.into(),
                stored.survey_id.clone().into(),
            ]
        };
        for answer in &response.answers {
            let Some(question) = survey.questions.iter().find(|q| q.id == answer.question_id)
            else {
                continue;
            };
            match (&answer.value, ScoreKind::of(question)) {
                (Some(Value::Score(score)), Some(kind)) => {
                    let mut values = common(&answer.question_id);
                    values.extend([
                        (kind as i32).into(),
                        (*score).into(),
                        response.profile.clone().into(),
                        stored.create_us.into(),
                    ]);
                    values.extend(context_values(&context));
                    score_rows.push(values);
                    written.push((index, kind as i32, *score));
                }
                (Some(Value::Text(body)), _) => {
                    let sentiment = answer.sentiment.unwrap_or_default();
                    let mut values = common(&answer.question_id);
                    values.extend([
                        body.clone().into(),
                        sentiment.score.into(),
                        sentiment.label.into(),
                        response.profile.clone().into(),
                        stored.create_us.into(),
                    ]);
                    values.extend(context_values(&context));
                    text_rows.push(values);
                }
                _ => {}
            }
        }
    }
    let backend = db.get_database_backend();
    for (table, leading, rows) in [
        ("feedback_scores", &["kind", "score"][..], score_rows),
        (
            "feedback_texts",
            &["body", "sentiment", "label"][..],
            text_rows,
        ),
    ] {
        if rows.is_empty() {
            continue;
        }
        let mut columns = vec!["tenant", "response_id", "question_id", "survey_id"];
        columns.extend(leading);
        columns.extend(["profile", "create_us"]);
        columns.extend(CONTEXT_COLUMNS);
        let sql = insert_rows(backend, table, &columns, rows)?;
        db.execute_raw(sql.statement()).await?;
    }
    Ok(written)
}

/// Filters of ListResponses.
#[derive(Debug, Default)]
pub(crate) struct ListFilter {
    pub survey_id: Option<String>,
    pub customer: Option<CustomerKey>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    pub channels: Vec<i32>,
    pub touchpoint: Option<String>,
    pub journey: Option<String>,
    pub detractors_only: bool,
    pub include_partial: bool,
}

/// A page of responses, most recently updated first.
pub(crate) async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &ListFilter,
    after: Option<&PageToken>,
    limit: usize,
) -> Result<Vec<StoredResponse>, Error> {
    let mut sql = select(db, tenant);
    if let Some(survey_id) = &filter.survey_id {
        sql.push(" AND survey_id = ").bind(survey_id.as_str());
    }
    if let Some(customer) = &filter.customer {
        match customer.profile() {
            Some(profile) => sql.push(" AND profile = ").bind(profile),
            None => sql.push(" AND customer = ").bind(customer.as_str()),
        };
    }
    if let Some(start) = filter.start_us {
        sql.push(" AND update_us >= ").bind(start);
    }
    if let Some(end) = filter.end_us {
        sql.push(" AND update_us < ").bind(end);
    }
    if !filter.channels.is_empty() {
        sql.push(" AND channel IN ")
            .bind_list(filter.channels.iter().copied());
    }
    if let Some(touchpoint) = &filter.touchpoint {
        sql.push(" AND touchpoint = ").bind(touchpoint.as_str());
    }
    if let Some(journey) = &filter.journey {
        sql.push(" AND journey = ").bind(journey.as_str());
    }
    if filter.detractors_only {
        sql.push(" AND detractor = 1");
    }
    if !filter.include_partial {
        sql.push(" AND complete = 1");
    }
    if let Some(token) = after {
        sql.after_page("update_us", token);
    }
    sql.push(" ORDER BY update_us DESC, id DESC LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(from_row)
        .collect()
}
