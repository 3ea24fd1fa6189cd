//! Metrics and driver analysis through the real gRPC API on SQLite and PostgreSQL: NPS, CSAT
//! and CES with intervals checked against computations made here, counts and response rates,
//! breakdowns by channel and segment, trends cut in a time zone, the small-sample flag, drivers,
//! bad requests refused field by field, and tenant isolation.
//!
//! Responses are submitted through the API; tests that need them at given times move their
//! creation time in the database afterwards, as a response created then would have it.
#![allow(clippy::unwrap_used)]

mod feedback_support;

use feedback_support::*;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, query_integer, violations};
use throughline_proto::common::v1::Channel;
use throughline_proto::feedback::v1::*;
use throughline_proto::google::r#type::Interval;
use throughline_runtime::time::{now_us, timestamp};

/// The two-sided 95% quantile of the standard normal distribution.
const Z: f64 = 1.959_963_984_540_054;
const HOUR_US: i64 = 3_600_000_000;

fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

fn on(channel: Channel) -> FeedbackContext {
    FeedbackContext {
        channel: channel as i32,
        ..FeedbackContext::default()
    }
}

/// Submits one uninvited response per entry of `answers` from customer `{prefix}-{i}`; returns
/// the response ids.
async fn respond(
    client: &mut Client,
    survey: &str,
    prefix: &str,
    context: FeedbackContext,
    answers: Vec<Vec<Answer>>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for (index, answers) in answers.into_iter().enumerate() {
        let customer = profile(&format!("{prefix}-{index}"));
        let response = uninvited(
            &format!("surveys/{survey}"),
            customer,
            context.clone(),
            answers,
        );
        let saved = submit(client, response, &format!("{prefix}-{index}"))
            .await
            .unwrap();
        ids.push(saved.name.trim_start_matches("responses/").to_owned());
    }
    ids
}

/// `count` responses each giving NPS `score` and nothing else.
fn nps_only(count: usize, score_value: i32) -> Vec<Vec<Answer>> {
    (0..count)
        .map(|_| vec![score("nps", score_value)])
        .collect()
}

/// A filter over the last and next day, so responses just submitted are inside.
fn recent() -> MetricFilter {
    window(now_us() - 24 * HOUR_US, now_us() + 24 * HOUR_US)
}

fn window(start_us: i64, end_us: i64) -> MetricFilter {
    MetricFilter {
        time_range: Some(Interval {
            start_time: Some(timestamp(start_us)),
            end_time: Some(timestamp(end_us)),
        }),
        ..MetricFilter::default()
    }
}

async fn metrics(client: &mut Client, request: GetMetricsRequest) -> GetMetricsResponse {
    client.get_metrics(request).await.unwrap().into_inner()
}

fn overall(filter: MetricFilter) -> GetMetricsRequest {
    GetMetricsRequest {
        filter: Some(filter),
        ..GetMetricsRequest::default()
    }
}

/// Publishes `survey("Post-call")` as `surveys/post-call` of `tenant`. Written to the tables
/// as PublishSurvey leaves them, while CreateSurvey and PublishSurvey are being built.
async fn post_call_survey(test_db: &TestDatabase, tenant: &str) {
    use prost::Message;
    use sea_orm::Value;
    let db = database(test_db).await;
    let definition = survey("Post-call").encode_to_vec();
    let now = now_us();
    let backend = db.get_database_backend();
    let published = SurveyState::Published as i32;
    for (sql, values) in [
        (
            "INSERT INTO feedback_surveys (tenant, id, display_name, state, version, draft, \
             revision, create_us, update_us, publish_us) VALUES ",
            vec![
                Value::from(tenant),
                "post-call".into(),
                "Post-call".into(),
                published.into(),
                1i32.into(),
                definition.clone().into(),
                1i64.into(),
                now.into(),
                now.into(),
                now.into(),
            ],
        ),
        (
            "INSERT INTO feedback_survey_versions (tenant, survey_id, version, definition, \
             publish_us) VALUES ",
            vec![
                Value::from(tenant),
                "post-call".into(),
                1i32.into(),
                definition.clone().into(),
                now.into(),
            ],
        ),
    ] {
        let mut statement = throughline_runtime::sql::Sql::new(backend);
        statement.push(sql).bind_list(values);
        db.execute_raw(statement.statement()).await.unwrap();
    }
}

/// Moves response `id` (and its answers) to `create_us`, as if submitted then. Call
/// [`recount`] after the last move.
async fn move_to(db: &DatabaseConnection, id: &str, create_us: i64) {
    for (table, column) in [
        ("feedback_responses", "id"),
        ("feedback_scores", "response_id"),
    ] {
        let sql = format!(
            "UPDATE {table} SET create_us = {create_us} WHERE tenant = 'acme' AND {column} = '{id}'"
        );
        db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap();
    }
}

/// Rebuilds the daily counts after rows were changed by hand, as an operator would.
async fn recount(db: &DatabaseConnection) {
    throughline_feedback::recount_daily_counts(db)
        .await
        .unwrap();
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    query_integer(db, sql).await
}

on_both_databases!(
    nps_csat_and_ces_match_a_computation_made_here,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        post_call_survey(&db, "acme").await;

        // 50 promoters, 30 passives, 20 detractors; the first 40 also answer CSAT (30 of them
        // 4 or 5) and the first 12 CES.
        let nps_scores = std::iter::repeat_n(10, 30)
            .chain(std::iter::repeat_n(9, 20))
            .chain(std::iter::repeat_n(8, 15))
            .chain(std::iter::repeat_n(7, 15))
            .chain(std::iter::repeat_n(6, 10))
            .chain(std::iter::repeat_n(0, 10));
        let csat_scores = [5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 1, 2, 3, 1];
        let ces_scores = [1, 2, 2, 3, 3, 3, 4, 5, 5, 6, 7, 2];
        let answers = nps_scores
            .enumerate()
            .map(|(i, nps)| {
                let mut answers = vec![score("nps", nps)];
                if i < 40 {
                    // 30 satisfied: indices 0-29 give 4 or 5; 30-39 give 1 to 3.
                    let csat = if i < 30 {
                        csat_scores[i % 10]
                    } else {
                        csat_scores[10 + i % 4]
                    };
                    answers.push(score("csat", csat));
                }
                if let Some(ces) = ces_scores.get(i) {
                    answers.push(score("ces", *ces));
                }
                answers
            })
            .collect();
        respond(
            &mut client,
            "post-call",
            "c",
            FeedbackContext::default(),
            answers,
        )
        .await;

        let found = metrics(&mut client, overall(recent())).await;
        let summary = found.overall.unwrap();
        assert_eq!(summary.response_count, 100);
        assert_eq!(
            summary.complete_count, 100,
            "NPS is the only required question"
        );
        assert_eq!((summary.invitation_count, summary.response_rate), (0, 0.0));
        assert!(!summary.small_sample, "100 responses, minimum 30");

        let nps = summary.nps.unwrap();
        assert_eq!(
            (nps.promoters, nps.passives, nps.detractors, nps.count),
            (50, 30, 20, 100)
        );
        close(nps.score, 30.0, 1e-9);
        let (p, d) = (0.5, 0.2);
        let half = Z * 100.0 * ((p + d - (p - d) * (p - d)) / 100.0_f64).sqrt();
        let interval = nps.interval.unwrap();
        close(interval.lower, 30.0 - half, 1e-6);
        close(interval.upper, 30.0 + half, 1e-6);
        assert_eq!(interval.level, 0.95);

        let csat = summary.csat.unwrap();
        assert_eq!((csat.satisfied, csat.count), (30, 40));
        close(csat.score, 75.0, 1e-9);
        let (n, p) = (40.0_f64, 0.75_f64);
        let centre = (p + Z * Z / (2.0 * n)) / (1.0 + Z * Z / n);
        let half = Z / (1.0 + Z * Z / n) * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt();
        let interval = csat.interval.unwrap();
        close(interval.lower, 100.0 * (centre - half), 1e-6);
        close(interval.upper, 100.0 * (centre + half), 1e-6);

        let ces = summary.ces.unwrap();
        let n = ces_scores.len() as f64;
        let mean = ces_scores.iter().sum::<i32>() as f64 / n;
        let variance = ces_scores
            .iter()
            .map(|s| (f64::from(*s) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        // t(0.975, 11) from a printed table.
        let half = 2.201 * (variance / n).sqrt();
        assert_eq!(ces.count, 12);
        close(ces.mean, mean, 1e-9);
        let interval = ces.interval.unwrap();
        close(interval.lower, mean - half, 0.001);
        close(interval.upper, mean + half, 0.001);

        // The same responses against a higher minimum sample size.
        let mut strict = recent();
        strict.min_sample_size = 101;
        let summary = metrics(&mut client, overall(strict)).await.overall.unwrap();
        assert!(summary.small_sample);
    }
);

on_both_databases!(
    breakdowns_by_channel_and_drivers_find_the_worst_channel,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        post_call_survey(&db, "acme").await;
        // SMS: 45 promoters. Email: 10 promoters, 15 passives, 10 detractors. Phone: 20
        // detractors.
        respond(
            &mut client,
            "post-call",
            "sms",
            on(Channel::Sms),
            nps_only(45, 10),
        )
        .await;
        let email = [nps_only(10, 9), nps_only(15, 8), nps_only(10, 5)].concat();
        respond(&mut client, "post-call", "email", on(Channel::Email), email).await;
        respond(
            &mut client,
            "post-call",
            "phone",
            on(Channel::Phone),
            nps_only(20, 2),
        )
        .await;

        let found = metrics(
            &mut client,
            GetMetricsRequest {
                filter: Some(recent()),
                breakdown: MetricDimension::Channel as i32,
                ..GetMetricsRequest::default()
            },
        )
        .await;
        let groups: Vec<(String, i64, f64, bool)> = found
            .breakdown
            .iter()
            .map(|g| {
                let m = g.metrics.as_ref().unwrap();
                (
                    g.key.clone(),
                    m.response_count,
                    m.nps.as_ref().unwrap().score,
                    m.small_sample,
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("CHANNEL_SMS".to_owned(), 45, 100.0, false),
                ("CHANNEL_EMAIL".to_owned(), 35, 0.0, false),
                ("CHANNEL_PHONE".to_owned(), 20, -100.0, true),
            ]
        );
        let all = found.overall.unwrap();
        assert_eq!(all.response_count, 100);
        close(all.nps.unwrap().score, 100.0 * (55.0 - 30.0) / 100.0, 1e-9);

        // Only some channels.
        let mut texts = recent();
        texts.channels = vec![Channel::Sms as i32, Channel::Phone as i32];
        let only = metrics(&mut client, overall(texts)).await.overall.unwrap();
        assert_eq!(only.response_count, 65);
        close(only.nps.unwrap().score, 100.0 * (45.0 - 20.0) / 65.0, 1e-9);

        // Drivers: every response lacks a touchpoint and a journey node, so those dimensions
        // have one group, the whole, and nothing to compare; the phone channel differs most.
        let drivers = client
            .get_driver_analysis(GetDriverAnalysisRequest {
                filter: Some(recent()),
                ..GetDriverAnalysisRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(drivers.sample_size, 100);
        close(drivers.baseline_score, 25.0, 1e-9);
        let keys: Vec<&str> = drivers.drivers.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["CHANNEL_PHONE", "CHANNEL_SMS", "CHANNEL_EMAIL"]);
        let worst = &drivers.drivers[0];
        assert_eq!(worst.dimension, MetricDimension::Channel as i32);
        assert_eq!((worst.sample_size, worst.small_sample), (20, true));
        // The rest: 55 promoters and 10 detractors of 80.
        let (p, d, n) = (55.0 / 80.0, 10.0 / 80.0, 80.0);
        close(worst.score, -100.0, 1e-9);
        close(worst.rest_score, 100.0 * (p - d), 1e-9);
        close(worst.difference, -100.0 - 100.0 * (p - d), 1e-9);
        // Independent samples: the group's variance (none: all detractors) plus the rest's.
        let half = Z * 100.0 * ((p + d - (p - d) * (p - d)) / n).sqrt();
        let interval = worst.difference_interval.as_ref().unwrap();
        close(interval.lower, worst.difference - half, 1e-6);
        close(interval.upper, worst.difference + half, 1e-6);

        let limited = client
            .get_driver_analysis(GetDriverAnalysisRequest {
                filter: Some(recent()),
                dimensions: vec![MetricDimension::Channel as i32],
                limit: 1,
                ..GetDriverAnalysisRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(limited.drivers.len(), 1);
        assert_eq!(limited.drivers[0].key, "CHANNEL_PHONE");

        // Nobody answered CSAT: no score, no drivers.
        let csat = client
            .get_driver_analysis(GetDriverAnalysisRequest {
                filter: Some(recent()),
                metric: MetricKind::Csat as i32,
                ..GetDriverAnalysisRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((csat.sample_size, csat.drivers.len()), (0, 0));
    }
);

on_both_databases!(
    trends_are_cut_at_midnight_in_the_requested_zone,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        post_call_survey(&db, "acme").await;
        let ids = respond(
            &mut client,
            "post-call",
            "t",
            FeedbackContext::default(),
            nps_only(6, 10),
        )
        .await;
        let at = |rfc3339: &str| {
            chrono::DateTime::parse_from_rfc3339(rfc3339)
                .unwrap()
                .timestamp_micros()
        };
        // Three late on 10 November in New York (the next day in UTC), two just after its
        // midnight, one on the 12th.
        let times = [
            "2026-11-10T23:30:00-05:00",
            "2026-11-10T23:40:00-05:00",
            "2026-11-10T23:50:00-05:00",
            "2026-11-11T00:30:00-05:00",
            "2026-11-11T01:30:00-05:00",
            "2026-11-12T12:00:00-05:00",
        ];
        let db = database(&db).await;
        for (id, time) in ids.iter().zip(times) {
            move_to(&db, id, at(time)).await;
        }
        recount(&db).await;
        let filter = window(
            at("2026-11-10T00:00:00-05:00"),
            at("2026-11-13T00:00:00-05:00"),
        );
        let trend = |zone: &str, granularity: TrendGranularity| GetMetricsRequest {
            filter: Some(filter.clone()),
            trend_granularity: granularity as i32,
            time_zone: zone.into(),
            ..GetMetricsRequest::default()
        };
        let points = |found: GetMetricsResponse| -> Vec<(i64, i64)> {
            found
                .trend
                .iter()
                .map(|point| {
                    (
                        point.period.as_ref().unwrap().start_time.unwrap().seconds,
                        point.metrics.as_ref().unwrap().response_count,
                    )
                })
                .collect()
        };
        let seconds = |rfc3339: &str| at(rfc3339) / 1_000_000;

        let local = metrics(
            &mut client,
            trend("America/New_York", TrendGranularity::Day),
        )
        .await;
        assert_eq!(local.overall.as_ref().unwrap().response_count, 6);
        assert_eq!(
            points(local),
            [
                (seconds("2026-11-10T00:00:00-05:00"), 3),
                (seconds("2026-11-11T00:00:00-05:00"), 2),
                (seconds("2026-11-12T00:00:00-05:00"), 1),
            ]
        );
        // The same window in UTC: the window starts at 05:00 on the 10th and ends at 05:00 on
        // the 13th, so four days overlap it.
        assert_eq!(
            points(metrics(&mut client, trend("", TrendGranularity::Day)).await),
            [
                (seconds("2026-11-10T00:00:00Z"), 0),
                (seconds("2026-11-11T00:00:00Z"), 5),
                (seconds("2026-11-12T00:00:00Z"), 1),
                (seconds("2026-11-13T00:00:00Z"), 0),
            ]
        );
        // ISO weeks start on Monday: 9 November 2026.
        assert_eq!(
            points(
                metrics(
                    &mut client,
                    trend("America/New_York", TrendGranularity::Week)
                )
                .await
            ),
            [(seconds("2026-11-09T00:00:00-05:00"), 6)]
        );

        let status = client
            .get_metrics(trend("Mars/Olympus_Mons", TrendGranularity::Day))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["time_zone"]);
    }
);

on_both_databases!(
    responses_count_in_the_segments_their_customer_was_in_when_responding,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        post_call_survey(&db, "acme").await;
        // Customers seg-0, seg-1 and seg-2 respond now.
        respond(
            &mut client,
            "post-call",
            "seg",
            FeedbackContext::default(),
            vec![
                vec![score("nps", 10)],
                vec![score("nps", 0)],
                vec![score("nps", 9)],
            ],
        )
        .await;
        let now = now_us();
        let db = database(&db).await;
        // seg-0 is a VIP; seg-1 becomes one only later and left churn-risk before responding;
        // seg-2 is in both; another tenant's membership of seg-1 does not count.
        for (tenant, profile, segment, enter_us, exit_us) in [
            ("acme", "seg-0", "vip", 0, None),
            ("acme", "seg-1", "vip", now + HOUR_US, None),
            ("acme", "seg-1", "churn-risk", 0, Some(1)),
            ("acme", "seg-2", "vip", 0, None),
            ("acme", "seg-2", "churn-risk", 0, Some(now + HOUR_US)),
            ("globex", "seg-1", "vip", 0, None),
        ] {
            let exit = exit_us.map_or("NULL".to_owned(), |us: i64| us.to_string());
            let sql = format!(
                "INSERT INTO feedback_segment_members (tenant, profile, segment, enter_us, \
                 exit_us) VALUES ('{tenant}', 'profiles/{profile}', 'segments/{segment}', \
                 {enter_us}, {exit})"
            );
            db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap();
        }

        let found = metrics(
            &mut client,
            GetMetricsRequest {
                filter: Some(recent()),
                breakdown: MetricDimension::Segment as i32,
                ..GetMetricsRequest::default()
            },
        )
        .await;
        let groups: Vec<(String, i64, f64)> = found
            .breakdown
            .iter()
            .map(|g| {
                let m = g.metrics.as_ref().unwrap();
                (
                    g.key.clone(),
                    m.response_count,
                    m.nps.as_ref().unwrap().score,
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("segments/vip".to_owned(), 2, 100.0),
                (String::new(), 1, -100.0),
                ("segments/churn-risk".to_owned(), 1, 100.0),
            ]
        );
        // Each response once overall, though seg-2's counts in two segments.
        assert_eq!(found.overall.unwrap().response_count, 3);

        let mut vip = recent();
        vip.segment = "segments/vip".into();
        let only = metrics(&mut client, overall(vip)).await.overall.unwrap();
        assert_eq!(only.response_count, 2);
    }
);

on_both_databases!(
    daily_counts_follow_partial_answers_and_are_folded_without_changing_a_figure,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        post_call_survey(&db, "acme").await;
        let first = invite(&mut client, "surveys/post-call", profile("ada"), "i-1").await;
        invite(&mut client, "surveys/post-call", profile("bob"), "i-2").await;
        answer(&mut client, &first.name, vec![score("csat", 2)], "a-1")
            .await
            .unwrap();
        // `recent()` holds today whole, read from the daily counts, and the edges of the days
        // before and after, counted from the rows.
        let summary = |client: &mut Client| {
            let mut client = client.clone();
            async move {
                metrics(&mut client, overall(recent()))
                    .await
                    .overall
                    .unwrap()
            }
        };
        let partial = summary(&mut client).await;
        assert_eq!(
            (
                partial.invitation_count,
                partial.response_count,
                partial.complete_count
            ),
            (2, 1, 0)
        );
        let csat = partial.csat.unwrap();
        assert_eq!((csat.count, csat.satisfied), (1, 0));

        // Completing the response replaces what it counted for.
        answer(
            &mut client,
            &first.name,
            vec![score("nps", 9), score("csat", 5)],
            "a-2",
        )
        .await
        .unwrap();
        respond(
            &mut client,
            "post-call",
            "sms",
            on(Channel::Sms),
            nps_only(3, 0),
        )
        .await;
        let live = summary(&mut client).await;
        assert_eq!(
            (
                live.invitation_count,
                live.response_count,
                live.complete_count
            ),
            (2, 4, 4)
        );
        let csat = live.csat.unwrap();
        assert_eq!((csat.count, csat.satisfied), (1, 1));
        let nps = live.nps.unwrap();
        assert_eq!((nps.promoters, nps.passives, nps.detractors), (1, 0, 3));

        // The background fold empties the changes into the daily counts; no figure moves.
        let conn = database(&db).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while count(&conn, "SELECT COUNT(*) FROM feedback_count_changes").await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "changes were not folded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(count(&conn, "SELECT COUNT(*) FROM feedback_daily_counts").await > 0);
        assert_eq!(summary(&mut client).await, live);
        // Rebuilding the counts from the rows finds the same figures.
        recount(&conn).await;
        assert_eq!(summary(&mut client).await, live);
        suite.stop().await;
    }
);

on_both_databases!(
    response_rates_count_invitations_sent,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        post_call_survey(&db, "acme").await;
        let mut invitations = Vec::new();
        for index in 0..4 {
            let customer = profile(&format!("invited-{index}"));
            invitations.push(
                invite(
                    &mut client,
                    "surveys/post-call",
                    customer,
                    &format!("i-{index}"),
                )
                .await,
            );
        }
        let response = Response {
            invitation: invitations[0].name.clone(),
            answers: vec![score("nps", 9)],
            ..Response::default()
        };
        submit(&mut client, response, "answer-0").await.unwrap();

        let summary = metrics(&mut client, overall(recent()))
            .await
            .overall
            .unwrap();
        assert_eq!((summary.invitation_count, summary.response_count), (4, 1));
        close(summary.response_rate, 0.25, 1e-12);
        assert!(summary.small_sample);
    }
);

on_both_databases!(
    bad_requests_are_refused_naming_each_field,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;

        let status = client
            .get_metrics(GetMetricsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["filter"]);

        let mut filter = window(10, 5);
        filter.surveys = vec!["post-call".into()];
        let status = client
            .get_metrics(GetMetricsRequest {
                filter: Some(filter),
                trend_granularity: 9,
                time_zone: "Not/AZone".into(),
                breakdown: 42,
            })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "filter.surveys[0]",
                "filter.time_range",
                "trend_granularity",
                "time_zone",
                "breakdown"
            ]
        );

        // A day-by-day trend over 20 years is too long.
        let status = client
            .get_metrics(GetMetricsRequest {
                filter: Some(window(0, 20 * 365 * 24 * HOUR_US)),
                trend_granularity: TrendGranularity::Day as i32,
                ..GetMetricsRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["trend_granularity"]);

        let mut filter = recent();
        filter.min_sample_size = -1;
        let status = client
            .get_driver_analysis(GetDriverAnalysisRequest {
                filter: Some(filter),
                metric: 7,
                dimensions: vec![MetricDimension::Channel as i32, 0, 99],
                limit: 101,
            })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "filter.min_sample_size",
                "metric",
                "dimensions[1]",
                "dimensions[2]",
                "limit"
            ]
        );
    }
);

on_both_databases!(another_tenant_sees_nothing, |db: TestDatabase| async move {
    let suite = TestSuite::start(&["feedback"], &db).await;
    let mut globex = client(&suite, "globex").await;
    post_call_survey(&db, "globex").await;
    respond(
        &mut globex,
        "post-call",
        "g",
        on(Channel::Sms),
        nps_only(3, 10),
    )
    .await;

    let mut acme = client(&suite, "acme").await;
    let mut filter = recent();
    filter.surveys = vec!["surveys/post-call".into()];
    let found = metrics(
        &mut acme,
        GetMetricsRequest {
            filter: Some(filter.clone()),
            breakdown: MetricDimension::Channel as i32,
            trend_granularity: TrendGranularity::Day as i32,
            ..GetMetricsRequest::default()
        },
    )
    .await;
    let summary = found.overall.unwrap();
    assert_eq!(summary.response_count, 0);
    assert!(summary.nps.is_none() && summary.csat.is_none() && summary.ces.is_none());
    assert!(found.breakdown.is_empty());
    assert!(
        found
            .trend
            .iter()
            .all(|p| p.metrics.as_ref().unwrap().response_count == 0)
    );
    let drivers = acme
        .get_driver_analysis(GetDriverAnalysisRequest {
            filter: Some(filter.clone()),
            ..GetDriverAnalysisRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((drivers.sample_size, drivers.drivers.len()), (0, 0));

    // The owner sees its own.
    let own = metrics(&mut globex, overall(filter)).await.overall.unwrap();
    assert_eq!(own.response_count, 3);
});
