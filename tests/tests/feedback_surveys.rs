//! Surveys through the real gRPC API on SQLite and PostgreSQL: CRUD with etags, masks and
//! idempotency; the checks of a definition; versions frozen by publication; listing by name
//! with a state filter and pages; archiving; deletion refused while responses use a survey;
//! tenant isolation.
#![allow(clippy::unwrap_used)]

mod feedback_support;

use std::collections::BTreeMap;

use feedback_support::*;
use prost_types::{Duration, FieldMask};
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, violations};
use throughline_proto::feedback::v1::*;
use tonic::Code;

async fn create(client: &mut Client, id: &str, survey: Survey) -> Survey {
    client
        .create_survey(CreateSurveyRequest {
            survey: Some(survey),
            survey_id: id.into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .survey
        .unwrap()
}

async fn get(client: &mut Client, name: &str, version: i32) -> Result<Survey, tonic::Status> {
    client
        .get_survey(GetSurveyRequest {
            name: name.into(),
            version,
        })
        .await
        .map(|r| r.into_inner().survey.unwrap())
}

async fn update(
    client: &mut Client,
    survey: Survey,
    paths: &[&str],
) -> Result<Survey, tonic::Status> {
    client
        .update_survey(UpdateSurveyRequest {
            survey: Some(survey),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
        })
        .await
        .map(|r| r.into_inner().survey.unwrap())
}

async fn publish_as(
    client: &mut Client,
    name: &str,
    request_id: &str,
) -> Result<Survey, tonic::Status> {
    client
        .publish_survey(PublishSurveyRequest {
            name: name.into(),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner().survey.unwrap())
}

async fn archive(
    client: &mut Client,
    name: &str,
    request_id: &str,
) -> Result<Survey, tonic::Status> {
    client
        .archive_survey(ArchiveSurveyRequest {
            name: name.into(),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner().survey.unwrap())
}

async fn delete(client: &mut Client, name: &str, etag: &str) -> Result<(), tonic::Status> {
    client
        .delete_survey(DeleteSurveyRequest {
            name: name.into(),
            etag: etag.into(),
        })
        .await
        .map(|_| ())
}

async fn list(
    client: &mut Client,
    states: &[SurveyState],
    page_size: i32,
    page_token: &str,
) -> Result<ListSurveysResponse, tonic::Status> {
    client
        .list_surveys(ListSurveysRequest {
            states: states.iter().map(|s| *s as i32).collect(),
            page_size,
            page_token: page_token.into(),
        })
        .await
        .map(|r| r.into_inner())
}

fn names(surveys: &[Survey]) -> Vec<&str> {
    surveys.iter().map(|s| s.name.as_str()).collect()
}

fn choice(id: &str, label: &str) -> Choice {
    Choice {
        id: id.into(),
        label: Some(text(label)),
    }
}

fn days(n: i64) -> Duration {
    Duration {
        seconds: n * 86_400,
        nanos: 0,
    }
}

on_both_databases!(
    surveys_are_created_read_updated_and_deleted,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        // Output-only fields sent by the caller are ignored.
        let mut sent = survey("Onboarding");
        sent.state = SurveyState::Archived as i32;
        sent.version = 9;
        sent.etag = "7".into();
        sent.invitation_ttl = Some(days(3));
        sent.invitation_template = "templates/survey-invite".into();
        let request = CreateSurveyRequest {
            survey: Some(sent.clone()),
            survey_id: "onboarding".into(),
            request_id: "create-1".into(),
        };
        let created = client
            .create_survey(request.clone())
            .await
            .unwrap()
            .into_inner()
            .survey
            .unwrap();
        assert_eq!(created.name, "surveys/onboarding");
        assert_eq!(created.state, SurveyState::Draft as i32);
        assert_eq!(
            created.version, 1,
            "a draft shows the version it will become"
        );
        assert_eq!(created.etag, "1");
        assert!(created.create_time.is_some());
        assert_eq!(created.create_time, created.update_time);
        assert_eq!(created.publish_time, None);
        assert_eq!(created.questions, sent.questions);
        assert_eq!(created.invitation_ttl, Some(days(3)));
        assert_eq!(created.invitation_template, "templates/survey-invite");
        // A retry replays the first answer; another request for the same id is refused.
        let replay = client.create_survey(request.clone()).await.unwrap();
        assert_eq!(replay.into_inner().survey.unwrap(), created);
        let mut taken = request.clone();
        taken.request_id = "create-2".into();
        let status = client.create_survey(taken).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert_eq!(
            get(&mut client, "surveys/onboarding", 0).await.unwrap(),
            created
        );

        // The service names a survey created without an id.
        let assigned = create(&mut client, "", survey("Other")).await;
        let id = assigned.name.strip_prefix("surveys/").unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

        // Update: only the masked fields change, the etag moves on.
        let mut changes = survey("Welcome");
        changes.name = "surveys/onboarding".into();
        changes.etag = "1".into();
        changes.description = "after the first week".into();
        changes.questions.truncate(1);
        let updated = update(
            &mut client,
            changes.clone(),
            &["display_name", "description"],
        )
        .await
        .unwrap();
        assert_eq!(updated.display_name, "Welcome");
        assert_eq!(updated.description, "after the first week");
        assert_eq!(updated.questions, created.questions);
        assert_eq!(updated.invitation_ttl, Some(days(3)));
        assert_eq!(updated.etag, "2");
        assert_eq!(updated.state, SurveyState::Draft as i32);
        assert_eq!(updated.create_time, created.create_time);
        assert_eq!(
            get(&mut client, "surveys/onboarding", 0).await.unwrap(),
            updated
        );
        // The same etag again is stale.
        let status = update(&mut client, changes.clone(), &["display_name"])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        // Without an etag the write is unconditional; `*` replaces every updatable field.
        changes.etag = String::new();
        let replaced = update(&mut client, changes.clone(), &["*"]).await.unwrap();
        assert_eq!(replaced.questions.len(), 1);
        assert_eq!(replaced.invitation_ttl, None);
        assert_eq!(replaced.invitation_template, "");
        assert_eq!(replaced.etag, "3");
        // Masks name updatable fields, and are required.
        let status = update(
            &mut client,
            changes.clone(),
            &["name", "questions", "state"],
        )
        .await
        .unwrap_err();
        assert_eq!(
            violations(&status),
            ["update_mask.paths[0]", "update_mask.paths[2]"]
        );
        let status = update(&mut client, changes.clone(), &[]).await.unwrap_err();
        assert_eq!(violations(&status), ["update_mask"]);
        // The merged draft is checked like a new one.
        changes.questions = vec![question("Bad Id", QuestionType::Nps, true)];
        let status = update(&mut client, changes.clone(), &["questions"])
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["survey.questions[0].id"]);
        changes.name = "onboarding".into();
        let status = update(&mut client, changes.clone(), &["display_name"])
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["survey.name"]);
        changes.name = "surveys/missing".into();
        let status = update(&mut client, changes, &["display_name"])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(
            get(&mut client, "surveys/onboarding", 0).await.unwrap(),
            replaced
        );

        // Delete: a stale etag is refused, then it goes, then it is not found.
        let status = delete(&mut client, "surveys/onboarding", "2")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        delete(&mut client, "surveys/onboarding", "3")
            .await
            .unwrap();
        let status = get(&mut client, "surveys/onboarding", 0).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = delete(&mut client, "surveys/onboarding", "")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = get(&mut client, "onboarding", 0).await.unwrap_err();
        assert_eq!(violations(&status), ["name"]);
        // Without an etag the delete is unconditional.
        delete(&mut client, &assigned.name, "").await.unwrap();
        let listed = list(&mut client, &[], 0, "").await.unwrap();
        assert!(listed.surveys.is_empty(), "{listed:?}");
    }
);

on_both_databases!(
    a_bad_survey_is_refused_naming_every_offending_field,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let mut nps = question("NPS", QuestionType::Nps, true);
        nps.scale = Some(RatingScale {
            min: 1,
            max: 10,
            ..RatingScale::default()
        });
        let mut reason = question("reason", QuestionType::FreeText, false);
        reason.text = Some(LocalizedText {
            text: " ".into(),
            translations: BTreeMap::from([("fr_FR".to_owned(), "Pourquoi ?".to_owned())]),
        });
        reason.max_length = 20_000;
        let repeated = question("reason", QuestionType::Rating, false);
        let mut topic = question("topic", QuestionType::SingleChoice, false);
        topic.choices = vec![choice("yes", "Yes"), choice("yes", "Yes")];
        topic.max_length = 5;
        let mut unknown = question("kind", QuestionType::Nps, false);
        unknown.r#type = 99;
        let mut effort = question("effort", QuestionType::Ces, false);
        effort.choices = vec![choice("easy", "Easy"), choice("hard", "Hard")];
        let bad = Survey {
            display_name: String::new(),
            default_language: "en_GB".into(),
            questions: vec![nps, reason, repeated, topic, unknown, effort],
            invitation_ttl: Some(days(0)),
            detractor_thresholds: Some(DetractorThresholds {
                nps: Some(11),
                csat: Some(2),
                ces: Some(0),
            }),
            invitation_template: "welcome".into(),
            ..Survey::default()
        };
        let status = client
            .create_survey(CreateSurveyRequest {
                survey: Some(bad),
                survey_id: "Bad_Id".into(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "survey_id",
                "survey.display_name",
                "survey.default_language",
                "survey.questions[0].id",
                "survey.questions[0].scale",
                "survey.questions[1].text.text",
                "survey.questions[1].text.translations[\"fr_FR\"]",
                "survey.questions[1].max_length",
                "survey.questions[2].id",
                "survey.questions[2].scale",
                "survey.questions[3].choices[1].id",
                "survey.questions[3].choices[1].label.text",
                "survey.questions[3].max_length",
                "survey.questions[4].type",
                "survey.questions[5].choices",
                "survey.invitation_ttl",
                "survey.detractor_thresholds.nps",
                "survey.detractor_thresholds.ces",
                "survey.invitation_template",
            ]
        );

        // Counts and bounds.
        let mut few = survey("Few");
        few.questions.clear();
        let mut rating = question("stars", QuestionType::Rating, true);
        rating.scale = Some(RatingScale {
            min: 0,
            max: 101,
            ..RatingScale::default()
        });
        let mut lonely = question("pick", QuestionType::MultipleChoice, false);
        lonely.choices = vec![choice("only", "Only")];
        let mut many = survey("Many");
        many.questions = (0..51)
            .map(|i| question(&format!("q{i}"), QuestionType::Csat, false))
            .collect();
        let mut shapes = survey(&"x".repeat(201));
        shapes.questions = vec![rating, lonely];
        shapes.fatigue_interval = Some(days(366));
        for (survey, expected) in [
            (few, vec!["survey.questions"]),
            (many, vec!["survey.questions"]),
            (
                shapes,
                vec![
                    "survey.display_name",
                    "survey.questions[0].scale",
                    "survey.questions[1].choices",
                    "survey.fatigue_interval",
                ],
            ),
        ] {
            let status = client
                .create_survey(CreateSurveyRequest {
                    survey: Some(survey),
                    ..CreateSurveyRequest::default()
                })
                .await
                .unwrap_err();
            assert_eq!(violations(&status), expected);
        }
        let status = client
            .create_survey(CreateSurveyRequest::default())
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["survey"]);

        // What is allowed: a rating of 0 to 100 with labels, labels on a fixed scale, a
        // translated text, a fatigue interval of zero, thresholds on their scales.
        let mut fine = survey("Fine");
        let mut stars = question("stars", QuestionType::Rating, true);
        stars.scale = Some(RatingScale {
            min: 0,
            max: 100,
            min_label: Some(text("Poor")),
            max_label: Some(text("Superb")),
        });
        fine.questions[0].scale = Some(RatingScale {
            min_label: Some(text("Not at all likely")),
            max_label: Some(text("Extremely likely")),
            ..RatingScale::default()
        });
        fine.questions[1].text = Some(LocalizedText {
            text: "How satisfied are you?".into(),
            translations: BTreeMap::from([
                ("fr".to_owned(), "Êtes-vous satisfait ?".to_owned()),
                ("pt-BR".to_owned(), "Você está satisfeito?".to_owned()),
            ]),
        });
        fine.questions[3].max_length = 10_000;
        fine.questions.push(stars);
        fine.fatigue_interval = Some(days(0));
        fine.detractor_thresholds = Some(DetractorThresholds {
            nps: Some(0),
            csat: Some(5),
            ces: Some(7),
        });
        let created = create(&mut client, "fine", fine.clone()).await;
        assert_eq!(created.questions, fine.questions);
        assert_eq!(created.fatigue_interval, Some(days(0)));
        assert_eq!(created.detractor_thresholds, fine.detractor_thresholds);
    }
);

on_both_databases!(
    publishing_freezes_each_version,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let draft = create(&mut client, "checkout", survey("Checkout")).await;
        assert_eq!(draft.version, 1);
        let status = get(&mut client, "surveys/checkout", 1).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        // The first publication, retried with its request id, is one version.
        let first = publish_as(&mut client, "surveys/checkout", "publish-1")
            .await
            .unwrap();
        assert_eq!(first.name, "surveys/checkout");
        assert_eq!(first.version, 1);
        assert_eq!(first.state, SurveyState::Published as i32);
        assert!(first.publish_time.is_some());
        assert_eq!(first.questions, draft.questions);
        assert_eq!(first.create_time, draft.create_time);
        let retry = publish_as(&mut client, "surveys/checkout", "publish-1")
            .await
            .unwrap();
        assert_eq!(retry, first);
        assert_eq!(
            get(&mut client, "surveys/checkout", 1).await.unwrap(),
            first
        );
        let status = get(&mut client, "surveys/checkout", 2).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        // The draft is now the next version of a published survey.
        let current = get(&mut client, "surveys/checkout", 0).await.unwrap();
        assert_eq!(current.state, SurveyState::Published as i32);
        assert_eq!(current.version, 2);
        assert_eq!(current.publish_time, first.publish_time);

        // Editing the draft leaves version 1 as it was.
        let mut changes = current.clone();
        changes.display_name = "Checkout, shorter".into();
        changes.questions.truncate(2);
        let edited = update(&mut client, changes, &["display_name", "questions"])
            .await
            .unwrap();
        assert_eq!(edited.questions.len(), 2);
        assert_eq!(edited.state, SurveyState::Published as i32);
        assert_eq!(
            get(&mut client, "surveys/checkout", 1).await.unwrap(),
            first
        );

        let second = publish_as(&mut client, "surveys/checkout", "")
            .await
            .unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(second.display_name, "Checkout, shorter");
        assert_eq!(second.questions, edited.questions);
        let at = |survey: &Survey| {
            let time = survey.publish_time.unwrap();
            (time.seconds, time.nanos)
        };
        assert!(at(&second) >= at(&first));
        assert_eq!(
            get(&mut client, "surveys/checkout", 2).await.unwrap(),
            second
        );
        let old = get(&mut client, "surveys/checkout", 1).await.unwrap();
        assert_eq!(old.display_name, "Checkout");
        assert_eq!(old.questions, draft.questions);
        assert_eq!(old.version, 1);
        // Another request id is another publication.
        let third = publish_as(&mut client, "surveys/checkout", "publish-2")
            .await
            .unwrap();
        assert_eq!(third.version, 3);
        assert_eq!(
            get(&mut client, "surveys/checkout", 0)
                .await
                .unwrap()
                .version,
            4
        );

        // Concurrent publications each take their own version.
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let mut client = client.clone();
                tokio::spawn(async move {
                    publish_as(&mut client, "surveys/checkout", "")
                        .await
                        .unwrap()
                        .version
                })
            })
            .collect();
        let mut versions = Vec::new();
        for racer in racers {
            versions.push(racer.await.unwrap());
        }
        versions.sort_unstable();
        assert_eq!(versions, [4, 5, 6, 7]);
        assert_eq!(
            get(&mut client, "surveys/checkout", 7)
                .await
                .unwrap()
                .questions,
            edited.questions
        );

        let status = get(&mut client, "surveys/checkout", -1).await.unwrap_err();
        assert_eq!(violations(&status), ["version"]);
        let status = publish_as(&mut client, "surveys/missing", "")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = publish_as(&mut client, "checkout", "").await.unwrap_err();
        assert_eq!(violations(&status), ["name"]);
    }
);

on_both_databases!(
    archiving_stops_edits_and_publication,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let published = publish(&mut client, "retired", survey("Retired")).await;
        let archived = archive(&mut client, "surveys/retired", "archive-1")
            .await
            .unwrap();
        assert_eq!(archived.state, SurveyState::Archived as i32);
        assert_eq!(
            archived.version, 1,
            "an archived survey shows its latest version"
        );
        // Archiving again changes nothing, with or without the same request id.
        assert_eq!(
            archive(&mut client, "surveys/retired", "archive-1")
                .await
                .unwrap(),
            archived
        );
        assert_eq!(
            archive(&mut client, "surveys/retired", "").await.unwrap(),
            archived
        );

        let mut changes = archived.clone();
        changes.display_name = "Revived".into();
        let status = update(&mut client, changes, &["display_name"])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        let status = publish_as(&mut client, "surveys/retired", "")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(
            get(&mut client, "surveys/retired", 0).await.unwrap(),
            archived
        );
        // The published version stays readable, in the survey's current state.
        let version = get(&mut client, "surveys/retired", 1).await.unwrap();
        assert_eq!(version.state, SurveyState::Archived as i32);
        assert_eq!(version.questions, published.questions);
        assert_eq!(version.publish_time, published.publish_time);

        // A draft never published can be archived too, then deleted.
        create(&mut client, "never", survey("Never")).await;
        let never = archive(&mut client, "surveys/never", "").await.unwrap();
        assert_eq!(never.state, SurveyState::Archived as i32);
        assert_eq!(never.version, 0);
        delete(&mut client, "surveys/never", &never.etag)
            .await
            .unwrap();
        let status = archive(&mut client, "surveys/never", "").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
);

on_both_databases!(
    surveys_are_listed_by_name_with_a_state_filter_and_pages,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        for (id, name) in [
            ("s-echo", "Echo"),
            ("s-alpha", "Alpha"),
            ("s-delta", "Delta"),
            ("s-bravo-2", "Bravo"),
            ("s-bravo-1", "Bravo"),
            ("s-charlie", "Charlie"),
        ] {
            create(&mut client, id, survey(name)).await;
        }
        for id in ["s-alpha", "s-bravo-2", "s-delta"] {
            publish_as(&mut client, &format!("surveys/{id}"), "")
                .await
                .unwrap();
        }
        archive(&mut client, "surveys/s-delta", "").await.unwrap();
        // Another tenant's survey never shows.
        let mut other = feedback_support::client(&suite, "globex").await;
        create(&mut other, "s-aaa", survey("Aardvark")).await;

        let all = list(&mut client, &[], 0, "").await.unwrap();
        assert_eq!(
            names(&all.surveys),
            [
                "surveys/s-alpha",
                "surveys/s-bravo-1",
                "surveys/s-bravo-2",
                "surveys/s-charlie",
                "surveys/s-delta",
                "surveys/s-echo",
            ]
        );
        assert_eq!(all.next_page_token, "");
        assert_eq!(
            all.surveys[0],
            get(&mut client, "surveys/s-alpha", 0).await.unwrap()
        );

        let published = list(&mut client, &[SurveyState::Published], 0, "")
            .await
            .unwrap();
        assert_eq!(
            names(&published.surveys),
            ["surveys/s-alpha", "surveys/s-bravo-2"]
        );
        let live = list(
            &mut client,
            &[SurveyState::Draft, SurveyState::Archived],
            0,
            "",
        )
        .await
        .unwrap();
        assert_eq!(
            names(&live.surveys),
            [
                "surveys/s-bravo-1",
                "surveys/s-charlie",
                "surveys/s-delta",
                "surveys/s-echo",
            ]
        );

        // Pages of two walk the same order, the token bound to its filter.
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = list(&mut client, &[], 2, &token).await.unwrap();
            assert!(page.surveys.len() <= 2);
            seen.extend(page.surveys.into_iter().map(|s| s.name));
            pages += 1;
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, names(&all.surveys));
        assert_eq!(pages, 3);
        let first = list(
            &mut client,
            &[SurveyState::Draft, SurveyState::Archived],
            1,
            "",
        )
        .await
        .unwrap();
        assert_eq!(names(&first.surveys), ["surveys/s-bravo-1"]);
        let second = list(
            &mut client,
            &[SurveyState::Archived, SurveyState::Draft],
            1,
            &first.next_page_token,
        )
        .await
        .unwrap();
        assert_eq!(names(&second.surveys), ["surveys/s-charlie"]);
        let status = list(
            &mut client,
            &[SurveyState::Published],
            1,
            &first.next_page_token,
        )
        .await
        .unwrap_err();
        assert_eq!(violations(&status), ["page_token"]);
        let status = list(&mut client, &[], 0, "not-a-token").await.unwrap_err();
        assert_eq!(violations(&status), ["page_token"]);
        let status = client
            .list_surveys(ListSurveysRequest {
                states: vec![SurveyState::Draft as i32, 0, 7],
                page_size: -1,
                page_token: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["states[1]", "states[2]"]);
        let status = list(&mut client, &[], -1, "").await.unwrap_err();
        assert_eq!(violations(&status), ["page_size"]);

        let theirs = list(&mut other, &[], 0, "").await.unwrap();
        assert_eq!(names(&theirs.surveys), ["surveys/s-aaa"]);
    }
);

on_both_databases!(
    a_survey_with_responses_is_not_deleted,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        publish(&mut client, "answered", survey("Answered")).await;
        publish(&mut client, "unused", survey("Unused")).await;
        submit(
            &mut client,
            uninvited(
                "surveys/answered",
                profile("p-1"),
                FeedbackContext::default(),
                vec![score("nps", 9)],
            ),
            "r-1",
        )
        .await
        .unwrap();

        let status = delete(&mut client, "surveys/answered", "")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains("archive"), "{status:?}");
        get(&mut client, "surveys/answered", 1).await.unwrap();
        get(&mut client, "surveys/answered", 0).await.unwrap();
        // The same survey id in another tenant is not in use.
        let mut other = feedback_support::client(&suite, "globex").await;
        publish(&mut other, "answered", survey("Theirs")).await;
        delete(&mut other, "surveys/answered", "").await.unwrap();
        // An unused published survey goes with its versions.
        delete(&mut client, "surveys/unused", "").await.unwrap();
        let status = get(&mut client, "surveys/unused", 1).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        create(&mut client, "unused", survey("Unused again")).await;
        let status = get(&mut client, "surveys/unused", 1).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
);

on_both_databases!(
    another_tenant_gets_not_found,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["feedback"], &test_db).await;
        let mut acme = client(&suite, "acme").await;
        let mut globex = client(&suite, "globex").await;
        let published = publish(&mut acme, "private", survey("Private")).await;
        let name = "surveys/private";

        for version in [0, 1] {
            let status = get(&mut globex, name, version).await.unwrap_err();
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
        }
        let mut changes = survey("Taken over");
        changes.name = name.into();
        let status = update(&mut globex, changes, &["display_name"])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = publish_as(&mut globex, name, "").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = publish_as(&mut globex, name, "p-1").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = archive(&mut globex, name, "").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = delete(&mut globex, name, "").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        // Nothing of acme's changed; globex may use the same id for its own survey.
        assert_eq!(get(&mut acme, name, 1).await.unwrap(), published);
        let draft = get(&mut acme, name, 0).await.unwrap();
        assert_eq!(draft.display_name, "Private");
        assert_eq!(draft.state, SurveyState::Published as i32);
        assert_eq!(draft.version, 2);
        let theirs = create(&mut globex, "private", survey("Theirs")).await;
        assert_eq!(theirs.version, 1);
        assert_eq!(
            get(&mut acme, name, 0).await.unwrap().display_name,
            "Private"
        );
    }
);
