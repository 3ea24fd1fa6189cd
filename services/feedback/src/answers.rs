//! Answers checked against the survey version they answer, and what they make of a response:
//! whether it is complete, and which answer (if any) makes its respondent a detractor.

use std::collections::{BTreeMap, HashSet};

use throughline_proto::feedback::v1::answer::Value;
use throughline_proto::feedback::v1::{Answer, Question, QuestionType, Survey};
use throughline_runtime::FieldViolation;

/// Free-text answers are at most this long when the question does not say.
const DEFAULT_MAX_LENGTH: usize = 2000;

/// Default detractor thresholds: NPS 0–6 and CSAT 1–2; CES has none unless the survey sets one.
const DEFAULT_NPS_DETRACTOR: i32 = 6;
const DEFAULT_CSAT_DETRACTOR: i32 = 2;

/// The kind of score a question measures, as `feedback_scores.kind` stores it (`MetricKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScoreKind {
    Nps = 1,
    Csat = 2,
    Ces = 3,
}

impl ScoreKind {
    pub(crate) fn of(question: &Question) -> Option<Self> {
        match QuestionType::try_from(question.r#type).ok()? {
            QuestionType::Nps => Some(Self::Nps),
            QuestionType::Csat => Some(Self::Csat),
            QuestionType::Ces => Some(Self::Ces),
            _ => None,
        }
    }

    /// `nps`, `csat` or `ces`, as `feedback.detractor` names the metric.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Nps => "nps",
            Self::Csat => "csat",
            Self::Ces => "ces",
        }
    }
}

/// The inclusive range of a scored question's answers.
fn scale(question: &Question) -> Option<(i32, i32)> {
    match QuestionType::try_from(question.r#type).ok()? {
        QuestionType::Nps => Some((0, 10)),
        QuestionType::Csat => Some((1, 5)),
        QuestionType::Ces => Some((1, 7)),
        QuestionType::Rating => question.scale.as_ref().map(|s| (s.min, s.max)),
        _ => None,
    }
}

/// Checks `answers` (the request's, at `response.answers[i]`) against `survey`: each names a
/// question of the survey once, in the form its type asks for, inside its scale.
pub(crate) fn check(survey: &Survey, answers: &[Answer]) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    let mut seen = HashSet::new();
    for (index, answer) in answers.iter().enumerate() {
        let field = format!("response.answers[{index}]");
        let Some(question) = survey.questions.iter().find(|q| q.id == answer.question_id) else {
            violations.push(FieldViolation::new(
                format!("{field}.question_id"),
                format!(
                    "{:?} is not a question of version {} of this survey",
                    answer.question_id, survey.version
                ),
            ));
            continue;
        };
        if !seen.insert(answer.question_id.as_str()) {
            violations.push(FieldViolation::new(
                format!("{field}.question_id"),
                "answered twice in one request",
            ));
            continue;
        }
        if let Err(problem) = check_value(question, answer.value.as_ref()) {
            violations.push(FieldViolation::new(field, problem));
        }
    }
    violations
}

fn check_value(question: &Question, value: Option<&Value>) -> Result<(), String> {
    let r#type = QuestionType::try_from(question.r#type).unwrap_or(QuestionType::Unspecified);
    match (r#type, value) {
        (_, None) => Err("has no value: give score, choice_id, choice_ids or text".into()),
        (
            QuestionType::Nps | QuestionType::Csat | QuestionType::Ces | QuestionType::Rating,
            Some(Value::Score(score)),
        ) => match scale(question) {
            Some((min, max)) if (min..=max).contains(score) => Ok(()),
            Some((min, max)) => Err(format!("score {score} is outside the scale {min} to {max}")),
            None => Err("the question has no scale".into()),
        },
        (QuestionType::SingleChoice, Some(Value::ChoiceId(id))) => known_choice(question, id),
        (QuestionType::MultipleChoice, Some(Value::ChoiceIds(selection))) => {
            if selection.ids.is_empty() {
                return Err("choice_ids must name at least one option".into());
            }
            let mut distinct = HashSet::new();
            for id in &selection.ids {
                known_choice(question, id)?;
                if !distinct.insert(id) {
                    return Err(format!("option {id:?} is chosen twice"));
                }
            }
            Ok(())
        }
        (QuestionType::FreeText, Some(Value::Text(text))) => {
            let max = usize::try_from(question.max_length)
                .ok()
                .filter(|max| *max > 0)
                .unwrap_or(DEFAULT_MAX_LENGTH);
            let length = text.chars().count();
            if text.trim().is_empty() {
                Err("text must not be empty".into())
            } else if length > max {
                Err(format!("text is {length} characters; at most {max}"))
            } else {
                Ok(())
            }
        }
        (r#type, Some(_)) => Err(format!(
            "the wrong form for a {} question: {}",
            r#type.as_str_name(),
            expected_form(r#type)
        )),
    }
}

fn expected_form(r#type: QuestionType) -> &'static str {
    match r#type {
        QuestionType::SingleChoice => "give choice_id",
        QuestionType::MultipleChoice => "give choice_ids",
        QuestionType::FreeText => "give text",
        _ => "give score",
    }
}

fn known_choice(question: &Question, id: &str) -> Result<(), String> {
    if question.choices.iter().any(|choice| choice.id == id) {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not an option of question {:?}",
            question.id
        ))
    }
}

/// `earlier` with `later` applied: a later answer to the same question replaces the earlier.
/// Answers keep the survey's question order.
pub(crate) fn merge(survey: &Survey, earlier: Vec<Answer>, later: Vec<Answer>) -> Vec<Answer> {
    let mut by_question: BTreeMap<String, Answer> = earlier
        .into_iter()
        .map(|answer| (answer.question_id.clone(), answer))
        .collect();
    for answer in later {
        by_question.insert(answer.question_id.clone(), answer);
    }
    survey
        .questions
        .iter()
        .filter_map(|question| by_question.remove(&question.id))
        .collect()
}

/// True when every required question of `survey` has an answer.
pub(crate) fn is_complete(survey: &Survey, answers: &[Answer]) -> bool {
    survey
        .questions
        .iter()
        .filter(|question| question.required)
        .all(|question| answers.iter().any(|a| a.question_id == question.id))
}

/// The first answer that crosses the survey's detractor thresholds, with its kind and score.
pub(crate) fn detractor_answer<'a>(
    survey: &'a Survey,
    answers: &'a [Answer],
) -> Option<(&'a Answer, ScoreKind, i32)> {
    let thresholds = survey.detractor_thresholds.unwrap_or_default();
    answers.iter().find_map(|answer| {
        let question = survey
            .questions
            .iter()
            .find(|q| q.id == answer.question_id)?;
        let kind = ScoreKind::of(question)?;
        let Some(Value::Score(score)) = answer.value else {
            return None;
        };
        let detractor = match kind {
            ScoreKind::Nps => score <= thresholds.nps.unwrap_or(DEFAULT_NPS_DETRACTOR),
            ScoreKind::Csat => score <= thresholds.csat.unwrap_or(DEFAULT_CSAT_DETRACTOR),
            ScoreKind::Ces => thresholds.ces.is_some_and(|ces| score >= ces),
        };
        detractor.then_some((answer, kind, score))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use throughline_proto::feedback::v1::{
        ChoiceSelection, DetractorThresholds, LocalizedText, RatingScale,
    };

    fn question(id: &str, r#type: QuestionType, required: bool) -> Question {
        Question {
            id: id.into(),
            r#type: r#type as i32,
            text: Some(LocalizedText::default()),
            required,
            ..Question::default()
        }
    }

    fn survey() -> Survey {
        let mut rating = question("stars", QuestionType::Rating, false);
        rating.scale = Some(RatingScale {
            min: 1,
            max: 10,
            ..RatingScale::default()
        });
        let mut topics = question("topics", QuestionType::MultipleChoice, false);
        topics.choices = ["a", "b"]
            .map(|id| throughline_proto::feedback::v1::Choice {
                id: id.into(),
                label: None,
            })
            .to_vec();
        let mut reason = question("reason", QuestionType::FreeText, false);
        reason.max_length = 5;
        Survey {
            version: 1,
            questions: vec![
                question("nps", QuestionType::Nps, true),
                question("csat", QuestionType::Csat, true),
                question("ces", QuestionType::Ces, false),
                rating,
                topics,
                reason,
            ],
            ..Survey::default()
        }
    }

    fn answer(id: &str, value: Value) -> Answer {
        Answer {
            question_id: id.into(),
            value: Some(value),
            sentiment: None,
        }
    }

    #[test]
    fn each_bad_answer_is_named_by_its_index() {
        let answers = vec![
            answer("nps", Value::Score(11)),
            answer("csat", Value::Text("great".into())),
            answer("unknown", Value::Score(1)),
            answer("stars", Value::Score(10)),
            answer(
                "topics",
                Value::ChoiceIds(ChoiceSelection {
                    ids: vec!["c".into()],
                }),
            ),
            answer("reason", Value::Text("too long".into())),
            answer("stars", Value::Score(1)),
        ];
        let fields: Vec<String> = check(&survey(), &answers)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "response.answers[0]",
                "response.answers[1]",
                "response.answers[2].question_id",
                "response.answers[4]",
                "response.answers[5]",
                "response.answers[6].question_id",
            ]
        );
    }

    #[test]
    fn later_answers_replace_earlier_ones_and_complete_the_response() {
        let survey = survey();
        let first = vec![answer("nps", Value::Score(3))];
        assert!(!is_complete(&survey, &first));
        let merged = merge(
            &survey,
            first,
            vec![
                answer("csat", Value::Score(5)),
                answer("nps", Value::Score(9)),
            ],
        );
        assert_eq!(
            merged
                .iter()
                .map(|a| a.question_id.as_str())
                .collect::<Vec<_>>(),
            ["nps", "csat"]
        );
        assert_eq!(merged[0].value, Some(Value::Score(9)));
        assert!(is_complete(&survey, &merged));
    }

    #[test]
    fn detractors_follow_the_thresholds() {
        let mut survey = survey();
        let nps = |score| vec![answer("nps", Value::Score(score))];
        assert_eq!(detractor_answer(&survey, &nps(6)).unwrap().2, 6);
        assert!(detractor_answer(&survey, &nps(7)).is_none());
        let ces = vec![answer("ces", Value::Score(7))];
        assert!(
            detractor_answer(&survey, &ces).is_none(),
            "CES has no default"
        );
        survey.detractor_thresholds = Some(DetractorThresholds {
            nps: Some(4),
            csat: None,
            ces: Some(6),
        });
        assert!(detractor_answer(&survey, &nps(5)).is_none());
        let (_, kind, score) = detractor_answer(&survey, &ces).unwrap();
        assert_eq!((kind, score), (ScoreKind::Ces, 7));
        let csat = vec![answer("csat", Value::Score(2))];
        assert_eq!(detractor_answer(&survey, &csat).unwrap().1, ScoreKind::Csat);
    }
}
