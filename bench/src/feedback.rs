//! The feedback service on PostgreSQL, in this process:
//! - `feedback-metrics`: GetMetrics with a breakdown by channel for one survey over
//!   `RESPONSES` responses spread over 90 days and eight channels, seeded straight into the
//!   tables (an NPS answer each, some CSAT and CES too), one call at a time, as a dashboard
//!   asks;
//! - `feedback-submit`: closed-loop SubmitResponse calls, each an uninvited response with an
//!   NPS answer to a published survey under a request id of its own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prost::Message;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use throughline::Config;
use throughline_proto::common::v1::customer_ref::Customer;
use throughline_proto::common::v1::{Channel, CustomerRef};
use throughline_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use throughline_proto::feedback::v1::{
    Answer, FeedbackContext, GetMetricsRequest, LocalizedText, MetricDimension, MetricFilter,
    Question, QuestionType, Response, SubmitResponseRequest, Survey, SurveyState, answer,
};
use throughline_proto::google::r#type::Interval;
use throughline_runtime::config::Sources;
use throughline_runtime::time::{MICROS_PER_DAY, now_us, timestamp};
use tokio::sync::oneshot;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Endpoint;

use crate::database::{BenchDatabase, setup_error, warm};
use crate::{BenchError, LoadConfig, run_load};

const SECRET: &str = "throughline-bench-secret-0123456789abcdef";
const TENANT: &str = "bench";
/// The survey the metrics are asked of.
const SURVEY: &str = "post-contact";
/// Responses seeded for `feedback-metrics`.
const RESPONSES: i64 = 1_000_000;
/// The seeded responses' spread, ending now.
const DAYS: i64 = 90;
/// GetMetrics calls measured, after `WARM_CALLS` unmeasured ones.
const CALLS: usize = 200;
const WARM_CALLS: usize = 20;

fn server_config(url: &str) -> Result<Config, BenchError> {
    let env = HashMap::from([
        ("THROUGHLINE__DATABASE__URL".to_owned(), url.to_owned()),
        (
            "THROUGHLINE__DATABASE__MAX_CONNECTIONS".to_owned(),
            "16".to_owned(),
        ),
        (
            "THROUGHLINE__AUTH__HS256_SECRET".to_owned(),
            SECRET.to_owned(),
        ),
        (
            "THROUGHLINE__SERVER__SERVICES".to_owned(),
            "feedback".to_owned(),
        ),
        (
            "THROUGHLINE__SERVER__METRICS_LISTEN_ADDR".to_owned(),
            String::new(),
        ),
        (
            "THROUGHLINE__TELEMETRY__LOG_LEVEL".to_owned(),
            "warn".to_owned(),
        ),
    ]);
    Config::load(Sources {
        env: Some(env),
        ..Sources::default()
    })
    .map_err(setup_error)
}

async fn serve(url: &str) -> Result<(Endpoint, oneshot::Sender<()>), BenchError> {
    let (address, stop) = crate::stack::serve_in_process(&server_config(url)?).await?;
    Ok((Endpoint::from_shared(format!("http://{address}"))?, stop))
}

fn bearer() -> Result<MetadataValue<Ascii>, BenchError> {
    let scopes = ["feedback:read".to_owned(), "feedback:write".to_owned()];
    let token = throughline_runtime::auth::issue_token(
        SECRET,
        "bench",
        TENANT,
        &scopes,
        Duration::from_secs(24 * 3600),
    )
    .map_err(setup_error)?;
    format!("Bearer {token}").parse().map_err(setup_error)
}

fn authorised<T>(message: T, bearer: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}

/// The service's own schema on the benchmark database.
async fn feedback_db(url: &str) -> Result<DatabaseConnection, BenchError> {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .sqlx_logging(false)
        .set_schema_search_path("feedback".to_owned());
    Database::connect(options).await.map_err(setup_error)
}

async fn execute(db: &DatabaseConnection, sql: &str) -> Result<(), BenchError> {
    db.execute_unprepared(sql).await.map_err(setup_error)?;
    Ok(())
}

/// A survey with an NPS question (required), CSAT and CES, written published as PublishSurvey
/// leaves it.
async fn publish_survey(db: &DatabaseConnection) -> Result<(), BenchError> {
    let question = |id: &str, r#type: QuestionType, required: bool| Question {
        id: id.into(),
        r#type: r#type as i32,
        text: Some(LocalizedText {
            text: format!("{id}?"),
            ..LocalizedText::default()
        }),
        required,
        ..Question::default()
    };
    let survey = Survey {
        display_name: "Post-contact".into(),
        default_language: "en".into(),
        questions: vec![
            question("nps", QuestionType::Nps, true),
            question("csat", QuestionType::Csat, false),
            question("ces", QuestionType::Ces, false),
        ],
        ..Survey::default()
    };
    let definition: String = survey
        .encode_to_vec()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let now = now_us();
    let published = SurveyState::Published as i32;
    execute(
        db,
        &format!(
            "INSERT INTO feedback_surveys (tenant, id, display_name, state, version, draft, \
             revision, create_us, update_us, publish_us) VALUES ('{TENANT}', '{SURVEY}', \
             'Post-contact', {published}, 1, '\\x{definition}', 1, {now}, {now}, {now})"
        ),
    )
    .await?;
    execute(
        db,
        &format!(
            "INSERT INTO feedback_survey_versions (tenant, survey_id, version, definition, \
             publish_us) VALUES ('{TENANT}', '{SURVEY}', 1, '\\x{definition}', {now})"
        ),
    )
    .await
}

/// `RESPONSES` responses over the last `DAYS` days, generated by the server in batches: eight
/// channels of unequal size, twenty touchpoints, an NPS answer each (more promoters than
/// detractors, worse on the phone), CSAT on 40 % and CES on 20 % of them, 90 % complete.
async fn seed_responses(db: &DatabaseConnection) -> Result<(), BenchError> {
    const BATCH: i64 = 100_000;
    let end = now_us();
    let start = end - DAYS * MICROS_PER_DAY;
    execute(db, "SELECT setseed(0.7)").await?;
    let mut first = 0;
    while first < RESPONSES {
        let last = (first + BATCH).min(RESPONSES) - 1;
        // Channels 1, 2, 5, 8, 9, 10, 4, 7 with weights 30, 20, 15, 12, 10, 6, 4, 3.
        execute(
            db,
            &format!(
                "INSERT INTO feedback_responses (tenant, id, survey_id, survey_version, \
                 invitation_id, customer, profile, recorded_profile, interaction, thread, \
                 journey, journey_instance, journey_node, channel, touchpoint, response_channel, \
                 language, answers, complete, detractor, follow_up_id, create_us, update_us, \
                 complete_us) \
                 SELECT '{TENANT}', 'r' || g, '{SURVEY}', 1, '', 'profiles/p' || (g % 200000), \
                 'profiles/p' || (g % 200000), 'profiles/p' || (g % 200000), '', '', \
                 'journeys/onboarding', '', \
                 'step-' || (g % 4), c.channel, 'tp-' || (g % 20), 8, 'en', '\\x0a00', \
                 CASE WHEN g % 10 = 0 THEN 0 ELSE 1 END, 0, '', t.at, t.at, t.at \
                 FROM generate_series({first}, {last}) g \
                 CROSS JOIN LATERAL (SELECT {start} + (random() * {span})::bigint AS at, \
                   random() AS pick WHERE g = g) t \
                 CROSS JOIN LATERAL (SELECT CASE \
                   WHEN t.pick < 0.30 THEN 1 WHEN t.pick < 0.50 THEN 2 \
                   WHEN t.pick < 0.65 THEN 5 WHEN t.pick < 0.77 THEN 8 \
                   WHEN t.pick < 0.87 THEN 9 WHEN t.pick < 0.93 THEN 10 \
                   WHEN t.pick < 0.97 THEN 4 ELSE 7 END AS channel) c",
                span = end - start - 1,
            ),
        )
        .await?;
        first = last + 1;
    }
    let context = "r.interaction, r.thread, r.journey, r.journey_instance, r.journey_node, \
                   r.channel, r.touchpoint";
    let columns = "tenant, response_id, question_id, survey_id, kind, score, profile, \
                   create_us, interaction, thread, journey, journey_instance, journey_node, \
                   channel, touchpoint";
    for (question, kind, score, share) in [
        // NPS: 0-10, skewed up; two points lower on the phone.
        (
            "nps",
            1,
            "LEAST(10, GREATEST(0, (4 + random() * 7.99)::int \
             - CASE WHEN r.channel = 5 THEN 2 ELSE 0 END))",
            1.0,
        ),
        ("csat", 2, "(1 + random() * 4.99)::int", 0.4),
        ("ces", 3, "(1 + random() * 6.99)::int", 0.2),
    ] {
        execute(
            db,
            &format!(
                "INSERT INTO feedback_scores ({columns}) \
                 SELECT r.tenant, r.id, '{question}', r.survey_id, {kind}, {score}, r.profile, \
                 r.create_us, {context} FROM feedback_responses r \
                 WHERE r.tenant = '{TENANT}' AND random() < {share}"
            ),
        )
        .await?;
    }
    // The rows went in behind the service's back: count them as its writes would have.
    throughline_feedback::recount_daily_counts(db)
        .await
        .map_err(setup_error)?;
    // A service that has been running has its tables vacuumed and analysed by autovacuum;
    // measure that one, not one planning on a freshly loaded table.
    for table in [
        "feedback_responses",
        "feedback_scores",
        "feedback_daily_counts",
    ] {
        execute(db, &format!("VACUUM ANALYZE {table}")).await?;
    }
    warm(db, "feedback").await
}

fn metrics_request() -> GetMetricsRequest {
    let end = now_us() + MICROS_PER_DAY;
    GetMetricsRequest {
        filter: Some(MetricFilter {
            surveys: vec![format!("surveys/{SURVEY}")],
            time_range: Some(Interval {
                start_time: Some(timestamp(end - (DAYS + 1) * MICROS_PER_DAY)),
                end_time: Some(timestamp(end)),
            }),
            ..MetricFilter::default()
        }),
        breakdown: MetricDimension::Channel as i32,
        ..GetMetricsRequest::default()
    }
}

/// Seeds `RESPONSES` responses and measures GetMetrics by channel; prints a table.
pub async fn metrics_bench() -> Result<(), BenchError> {
    let bearer = bearer()?;
    let database = BenchDatabase::postgres("feedback_metrics").await?;
    let url = database.url();
    let (endpoint, stop) = serve(&url).await?;
    let db = feedback_db(&url).await?;
    let seeding = Instant::now();
    seed_responses(&db).await?;
    let seeded_in = seeding.elapsed();
    db.close().await.map_err(setup_error)?;

    let mut client = FeedbackServiceClient::new(endpoint.connect().await?);
    let mut latencies = Vec::with_capacity(CALLS);
    let mut counted = 0;
    for call in 0..WARM_CALLS + CALLS {
        let started = Instant::now();
        let found = client
            .get_metrics(authorised(metrics_request(), &bearer))
            .await
            .map_err(setup_error)?
            .into_inner();
        if call >= WARM_CALLS {
            latencies.push(started.elapsed());
        }
        counted = found.overall.map_or(0, |o| o.response_count);
    }
    drop(stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    database.drop_now().await;

    latencies.sort();
    let at = |quantile: f64| {
        let index = ((latencies.len() as f64 * quantile).ceil() as usize).saturating_sub(1);
        latencies[index.min(latencies.len() - 1)].as_secs_f64() * 1000.0
    };
    println!(
        "feedback-metrics: PostgreSQL, {RESPONSES} responses of one survey over {DAYS} days \
         (seeded in {:.0} s), GetMetrics with a breakdown by channel, {CALLS} calls one at a \
         time\n",
        seeded_in.as_secs_f64()
    );
    println!("| measure | responses counted | p50 ms | p99 ms | max ms | target |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| GetMetrics by channel | {counted} | {:.1} | {:.1} | {:.1} | p99 ≤ 200 ms |",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    println!();
    Ok(())
}

/// The uninvited response numbered `seq`: an NPS answer from a customer of its own.
fn submission(seq: u64) -> SubmitResponseRequest {
    SubmitResponseRequest {
        response: Some(Response {
            survey: format!("surveys/{SURVEY}"),
            customer: Some(CustomerRef {
                customer: Some(Customer::Profile(format!("profiles/c{seq}"))),
            }),
            context: Some(FeedbackContext {
                channel: Channel::Web as i32,
                touchpoint: "checkout".into(),
                ..FeedbackContext::default()
            }),
            answers: vec![Answer {
                question_id: "nps".into(),
                value: Some(answer::Value::Score((seq % 11) as i32)),
                sentiment: None,
            }],
            ..Response::default()
        }),
        request_id: format!("load-{seq}"),
    }
}

/// Measures SubmitResponse throughput with `config`'s callers; prints a table.
pub async fn submit_bench(config: &LoadConfig) -> Result<(), BenchError> {
    let bearer = bearer()?;
    let database = BenchDatabase::postgres("feedback_submit").await?;
    let url = database.url();
    let (endpoint, stop) = serve(&url).await?;
    let db = feedback_db(&url).await?;
    publish_survey(&db).await?;
    db.close().await.map_err(setup_error)?;

    let call_bearer = bearer.clone();
    let outcome = run_load(endpoint, config, move |channel, seq| {
        let request = authorised(submission(seq), &call_bearer);
        async move {
            FeedbackServiceClient::new(channel)
                .submit_response(request)
                .await
                .map(|_| ())
        }
    })
    .await?;
    drop(stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    database.drop_now().await;

    let rate = outcome.ok as f64 / outcome.elapsed.as_secs_f64();
    println!(
        "feedback-submit: PostgreSQL, {} callers over {} connections, uninvited responses with \
         an NPS answer\n",
        config.callers, config.connections
    );
    println!("| measure | figure | p50 ms | p99 ms | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| responses submitted | {rate:.0}/s | {:.2} | {:.2} | ≥ 5,000/s |",
        outcome.histogram.value_at_quantile(0.5) as f64 / 1000.0,
        outcome.histogram.value_at_quantile(0.99) as f64 / 1000.0,
    );
    if outcome.error_count() > 0 {
        println!("\nfailed submissions: {:?}", outcome.errors);
    }
    println!();
    Ok(())
}
