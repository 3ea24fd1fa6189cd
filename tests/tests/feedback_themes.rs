//! Themes of free-text answers through the real gRPC API on SQLite and PostgreSQL: recurring
//! phrases with their counts, sentiment and examples; the sentiment, channel and question
//! filters; bad requests; tenant isolation.
#![allow(clippy::unwrap_used)]

mod feedback_support;

use feedback_support::*;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, violations};
use throughline_proto::common::v1::Channel;
use throughline_proto::feedback::v1::*;
use throughline_proto::google::r#type::Interval;
use throughline_runtime::time::{now_us, timestamp};

fn window() -> Option<Interval> {
    let now = now_us();
    Some(Interval {
        start_time: Some(timestamp(now - 3_600_000_000)),
        end_time: Some(timestamp(now + 3_600_000_000)),
    })
}

fn request(channels: Vec<Channel>, sentiment: SentimentLabel) -> GetThemesRequest {
    GetThemesRequest {
        filter: Some(MetricFilter {
            surveys: vec!["surveys/post-call".into()],
            time_range: window(),
            channels: channels.into_iter().map(|c| c as i32).collect(),
            ..MetricFilter::default()
        }),
        sentiment: sentiment as i32,
        ..GetThemesRequest::default()
    }
}

on_both_databases!(
    recurring_phrases_are_themes_with_their_sentiment,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        publish(&mut client, "post-call", survey("Post-call")).await;
        let answers = [
            (
                Channel::Phone,
                2,
                "The delivery was late and the box was damaged. Terrible.",
            ),
            (Channel::Phone, 3, "Late delivery again, awful experience"),
            (Channel::Web, 1, "delivery was late, very disappointing"),
            (Channel::Phone, 10, "The agent was helpful and kind"),
            (Channel::Web, 9, "Helpful agent, great service"),
            (Channel::Web, 4, "Damaged box, bad"),
        ];
        let mut names = Vec::new();
        for (index, (channel, nps, text)) in answers.into_iter().enumerate() {
            let response = submit(
                &mut client,
                uninvited(
                    "surveys/post-call",
                    profile(&format!("c{index}")),
                    FeedbackContext {
                        channel: channel as i32,
                        ..FeedbackContext::default()
                    },
                    vec![score("nps", nps), free_text("reason", text)],
                ),
                &format!("r-{index}"),
            )
            .await
            .unwrap();
            names.push(response.name);
        }

        let found = client
            .get_themes(request(vec![], SentimentLabel::Unspecified))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.answer_count, 6);
        let summary: Vec<(&str, i64, i32)> = found
            .themes
            .iter()
            .map(|t| (t.phrase.as_str(), t.count, t.sentiment_label))
            .collect();
        assert_eq!(
            summary,
            [
                ("delivery late", 3, SentimentLabel::Negative as i32),
                ("agent helpful", 2, SentimentLabel::Positive as i32),
                ("box damaged", 2, SentimentLabel::Negative as i32),
            ]
        );
        let late = &found.themes[0];
        assert!(late.mean_sentiment < -0.3, "{late:?}");
        // Examples are the newest answers containing the phrase.
        assert_eq!(
            late.example_responses,
            [names[2].clone(), names[1].clone(), names[0].clone()]
        );

        // Only positive answers: only the praise.
        let positive = client
            .get_themes(request(vec![], SentimentLabel::Positive))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(positive.answer_count, 2);
        assert_eq!(positive.themes.len(), 1);
        assert_eq!(positive.themes[0].phrase, "agent helpful");
        // Only phone calls: late deliveries recur, nothing else does.
        let phone = client
            .get_themes(request(vec![Channel::Phone], SentimentLabel::Unspecified))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(phone.answer_count, 3);
        assert_eq!(phone.themes.len(), 1);
        assert_eq!(
            (phone.themes[0].phrase.as_str(), phone.themes[0].count),
            ("delivery late", 2)
        );

        // Another tenant reads nothing.
        let mut globex = feedback_support::client(&suite, "globex").await;
        let theirs = globex
            .get_themes(request(vec![], SentimentLabel::Unspecified))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((theirs.answer_count, theirs.themes.len()), (0, 0));
        suite.stop().await;
    }
);

on_both_databases!(
    bad_theme_requests_name_their_fields,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &db).await;
        let mut client = client(&suite, "acme").await;
        let status = client
            .get_themes(GetThemesRequest {
                filter: Some(MetricFilter {
                    surveys: vec!["post-call".into()],
                    ..MetricFilter::default()
                }),
                question_id: "Not An Id".into(),
                sentiment: 9,
                limit: 101,
            })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "filter.surveys[0]",
                "filter.time_range",
                "question_id",
                "sentiment",
                "limit"
            ]
        );
        let status = client
            .get_themes(GetThemesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["filter"]);
        suite.stop().await;
    }
);
