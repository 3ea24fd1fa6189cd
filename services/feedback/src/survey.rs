//! Survey definitions: the one check of a survey, applied when it is created, updated and
//! published. Violations are named from `survey`, e.g. `survey.questions[2].choices[1].id`.

use std::collections::HashMap;

use prost_types::Duration;
use throughline_proto::feedback::v1::{
    DetractorThresholds, LocalizedText, Question, QuestionType, RatingScale, Survey,
};
use throughline_runtime::FieldViolation;
use throughline_runtime::request::is_resource_id;
use throughline_runtime::time::MICROS_PER_DAY;

const MAX_DISPLAY_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
const MAX_QUESTIONS: usize = 50;
const MAX_CHOICES: usize = 50;
const MAX_KEY: usize = 64;
const MAX_TEXT: usize = 1000;
/// Languages one text may be translated into.
const MAX_TRANSLATIONS: usize = 100;
const MAX_TEXT_ANSWER: i32 = 10_000;
/// Points of a rating scale: 0 to 100 is the widest.
const MAX_SCALE_POINTS: i64 = 101;
const MAX_INTERVAL_US: i64 = 365 * MICROS_PER_DAY;

/// The fixed scales of the scored question types.
pub(crate) fn fixed_scale(kind: QuestionType) -> Option<(i32, i32)> {
    match kind {
        QuestionType::Nps => Some((0, 10)),
        QuestionType::Csat => Some((1, 5)),
        QuestionType::Ces => Some((1, 7)),
        _ => None,
    }
}

/// Every violation of `survey`'s definition; output-only fields are not looked at.
pub(crate) fn violations(survey: &Survey) -> Vec<FieldViolation> {
    let mut found = Violations(Vec::new());
    let display_name = survey.display_name.trim();
    if display_name.is_empty() {
        found.add("survey.display_name", "is required");
    } else if survey.display_name.chars().count() > MAX_DISPLAY_NAME {
        found.add(
            "survey.display_name",
            format!("must be at most {MAX_DISPLAY_NAME} characters"),
        );
    }
    if survey.description.chars().count() > MAX_DESCRIPTION {
        found.add(
            "survey.description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        );
    }
    if survey.default_language.is_empty() {
        found.add("survey.default_language", "is required, e.g. `en`");
    } else if !is_language_tag(&survey.default_language) {
        found.add(
            "survey.default_language",
            "must be a BCP-47 language tag, e.g. `en` or `pt-BR`",
        );
    }
    if !(1..=MAX_QUESTIONS).contains(&survey.questions.len()) {
        found.add(
            "survey.questions",
            format!("a survey has 1 to {MAX_QUESTIONS} questions"),
        );
    } else {
        let mut first_with_id: HashMap<&str, usize> = HashMap::new();
        for (index, question) in survey.questions.iter().enumerate() {
            let path = format!("survey.questions[{index}]");
            if let Some(earlier) = first_with_id.get(question.id.as_str()) {
                found.add(
                    format!("{path}.id"),
                    format!("repeats the id of questions[{earlier}]"),
                );
            } else if !question.id.is_empty() {
                first_with_id.insert(&question.id, index);
            }
            check_question(&mut found, &path, question);
        }
    }
    check_interval(
        &mut found,
        "survey.invitation_ttl",
        survey.invitation_ttl.as_ref(),
        false,
    );
    check_interval(
        &mut found,
        "survey.fatigue_interval",
        survey.fatigue_interval.as_ref(),
        true,
    );
    if let Some(thresholds) = &survey.detractor_thresholds {
        check_thresholds(&mut found, thresholds);
    }
    if let Some(id) = survey.invitation_template.strip_prefix("templates/") {
        if !is_resource_id(id) {
            found.add("survey.invitation_template", "must be templates/{id}");
        }
    } else if !survey.invitation_template.is_empty() {
        found.add("survey.invitation_template", "must be templates/{id}");
    }
    found.0
}

struct Violations(Vec<FieldViolation>);

impl Violations {
    fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }
}

fn check_question(found: &mut Violations, path: &str, question: &Question) {
    if question.id.is_empty() {
        found.add(format!("{path}.id"), "is required");
    } else if !is_question_id(&question.id) {
        found.add(
            format!("{path}.id"),
            format!(
                "must be lower_snake_case (a lower-case letter, then letters, digits and \
                 underscores), at most {MAX_KEY} characters"
            ),
        );
    }
    let kind = match QuestionType::try_from(question.r#type) {
        Ok(QuestionType::Unspecified) | Err(_) => {
            found.add(format!("{path}.type"), "must be a question type");
            None
        }
        Ok(kind) => Some(kind),
    };
    match &question.text {
        None => found.add(format!("{path}.text"), "is required"),
        Some(text) => check_text(found, &format!("{path}.text"), text),
    }
    // An unknown type says nothing about which of the type's fields belong; the type's own
    // violation is enough.
    let Some(kind) = kind else {
        return;
    };
    check_scale(found, path, kind, question.scale.as_ref());
    let is_choice = matches!(
        kind,
        QuestionType::SingleChoice | QuestionType::MultipleChoice
    );
    if is_choice {
        check_choices(found, path, question);
    } else if !question.choices.is_empty() {
        found.add(
            format!("{path}.choices"),
            "only single and multiple choice questions have choices",
        );
    }
    if !(0..=MAX_TEXT_ANSWER).contains(&question.max_length) {
        found.add(
            format!("{path}.max_length"),
            format!("must be 1 to {MAX_TEXT_ANSWER}, or 0 for the default of 2000"),
        );
    } else if question.max_length != 0 && kind != QuestionType::FreeText {
        found.add(
            format!("{path}.max_length"),
            "only free-text questions have a max_length",
        );
    }
}

/// NPS, CSAT and CES keep their fixed scale: a `scale` on them may carry labels (and the
/// fixed bounds), but other bounds would be answers the metrics cannot read, so they are
/// refused rather than silently replaced.
fn check_scale(
    found: &mut Violations,
    path: &str,
    kind: QuestionType,
    scale: Option<&RatingScale>,
) {
    let field = format!("{path}.scale");
    if let Some(scale) = scale {
        for (label, text) in [
            ("min_label", &scale.min_label),
            ("max_label", &scale.max_label),
        ] {
            if let Some(text) = text {
                check_text(found, &format!("{field}.{label}"), text);
            }
        }
    }
    match (kind, scale) {
        (QuestionType::Rating, None) => {
            found.add(field, "is required for a rating question: its min and max");
        }
        (QuestionType::Rating, Some(scale)) => {
            if scale.min >= scale.max {
                found.add(format!("{field}.max"), "must be greater than min");
            } else if i64::from(scale.max) - i64::from(scale.min) + 1 > MAX_SCALE_POINTS {
                found.add(
                    field,
                    format!("a scale has at most {MAX_SCALE_POINTS} points"),
                );
            }
        }
        (_, Some(scale)) => match fixed_scale(kind) {
            Some((min, max)) => {
                let bounds = (scale.min, scale.max);
                if bounds != (0, 0) && bounds != (min, max) {
                    found.add(
                        field,
                        format!(
                            "{} has the fixed scale {min} to {max}; leave min and max unset",
                            kind.as_str_name().trim_start_matches("QUESTION_TYPE_")
                        ),
                    );
                }
            }
            None => found.add(
                field,
                "only rating, NPS, CSAT and CES questions have a scale",
            ),
        },
        (_, None) => {}
    }
}

fn check_choices(found: &mut Violations, path: &str, question: &Question) {
    if !(2..=MAX_CHOICES).contains(&question.choices.len()) {
        found.add(
            format!("{path}.choices"),
            format!("a choice question has 2 to {MAX_CHOICES} choices"),
        );
        return;
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut labels: HashMap<&str, usize> = HashMap::new();
    for (index, choice) in question.choices.iter().enumerate() {
        let field = format!("{path}.choices[{index}]");
        if choice.id.is_empty() {
            found.add(format!("{field}.id"), "is required");
        } else if !is_choice_id(&choice.id) {
            found.add(
                format!("{field}.id"),
                format!(
                    "must be lower-case letters, digits, `_` and `-`, at most {MAX_KEY} \
                     characters"
                ),
            );
        } else if let Some(earlier) = ids.get(choice.id.as_str()) {
            found.add(
                format!("{field}.id"),
                format!("repeats the id of choices[{earlier}]"),
            );
        } else {
            ids.insert(&choice.id, index);
        }
        match &choice.label {
            None => found.add(format!("{field}.label"), "is required"),
            Some(label) => {
                check_text(found, &format!("{field}.label"), label);
                let text = label.text.trim();
                if let Some(earlier) = labels.get(text) {
                    found.add(
                        format!("{field}.label.text"),
                        format!("repeats the label of choices[{earlier}]"),
                    );
                } else if !text.is_empty() {
                    labels.insert(text, index);
                }
            }
        }
    }
}

fn check_text(found: &mut Violations, path: &str, text: &LocalizedText) {
    if text.text.trim().is_empty() {
        found.add(format!("{path}.text"), "is required");
    } else if text.text.chars().count() > MAX_TEXT {
        found.add(
            format!("{path}.text"),
            format!("must be at most {MAX_TEXT} characters"),
        );
    }
    if text.translations.len() > MAX_TRANSLATIONS {
        found.add(
            format!("{path}.translations"),
            format!("at most {MAX_TRANSLATIONS} translations"),
        );
        return;
    }
    for (language, translation) in &text.translations {
        let field = format!("{path}.translations[{language:?}]");
        if !is_language_tag(language) {
            found.add(field, "the key must be a BCP-47 language tag, e.g. `fr-CA`");
        } else if translation.trim().is_empty() {
            found.add(field, "must not be empty; leave the language out instead");
        } else if translation.chars().count() > MAX_TEXT {
            found.add(field, format!("must be at most {MAX_TEXT} characters"));
        }
    }
}

/// A duration when set: valid, at most 365 days, and longer than zero unless `zero_allowed`.
fn check_interval(
    found: &mut Violations,
    field: &str,
    value: Option<&Duration>,
    zero_allowed: bool,
) {
    let Some(value) = value else {
        return;
    };
    let valid = value.seconds >= 0 && (0..1_000_000_000).contains(&value.nanos);
    let us = value
        .seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(value.nanos / 1000));
    if !valid || (us == 0 && !zero_allowed) {
        let least = if zero_allowed {
            "zero"
        } else {
            "longer than zero"
        };
        found.add(field, format!("must be {least} and at most 365 days"));
    } else if us > MAX_INTERVAL_US {
        found.add(field, "must be at most 365 days");
    }
}

fn check_thresholds(found: &mut Violations, thresholds: &DetractorThresholds) {
    for (name, value, kind) in [
        ("nps", thresholds.nps, QuestionType::Nps),
        ("csat", thresholds.csat, QuestionType::Csat),
        ("ces", thresholds.ces, QuestionType::Ces),
    ] {
        let (Some(value), Some((min, max))) = (value, fixed_scale(kind)) else {
            continue;
        };
        if !(min..=max).contains(&value) {
            found.add(
                format!("survey.detractor_thresholds.{name}"),
                format!("must be on the scale, {min} to {max}"),
            );
        }
    }
}

/// `nps`, `reason_2`: a lower-case letter, then lower-case letters, digits and underscores.
pub(crate) fn is_question_id(id: &str) -> bool {
    id.len() <= MAX_KEY
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Choice keys may be numbers too (`1`, `2`, …) and may hold hyphens.
fn is_choice_id(id: &str) -> bool {
    id.len() <= MAX_KEY
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A BCP-47 tag in its common shape: a language of 2–3 (or 5–8) letters, then subtags of 1–8
/// letters or digits, e.g. `en`, `pt-BR`, `zh-Hant-TW`.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    tag.len() <= 35
        && matches!(language.len(), 2 | 3 | 5..=8)
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|part| {
            (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_language_tags() {
        assert!(is_question_id("nps"));
        assert!(is_question_id("reason_2"));
        assert!(!is_question_id("2nd"));
        assert!(!is_question_id("Reason"));
        assert!(!is_question_id("why-not"));
        assert!(!is_question_id(&"a".repeat(65)));
        assert!(is_choice_id("1"));
        assert!(is_choice_id("very-good"));
        assert!(!is_choice_id("Yes"));
        assert!(is_language_tag("en"));
        assert!(is_language_tag("pt-BR"));
        assert!(is_language_tag("zh-Hant-TW"));
        assert!(!is_language_tag("e"));
        assert!(!is_language_tag("en_GB"));
        assert!(!is_language_tag("en-"));
    }

    #[test]
    fn intervals_are_bounded() {
        let mut found = Violations(Vec::new());
        let days = |n: i64| Duration {
            seconds: n * 86_400,
            nanos: 0,
        };
        check_interval(&mut found, "ttl", Some(&days(365)), false);
        check_interval(&mut found, "fatigue", Some(&days(0)), true);
        assert!(found.0.is_empty());
        check_interval(&mut found, "ttl", Some(&days(0)), false);
        check_interval(&mut found, "ttl", Some(&days(366)), false);
        check_interval(&mut found, "fatigue", Some(&days(-1)), true);
        assert_eq!(found.0.len(), 3);
    }
}
