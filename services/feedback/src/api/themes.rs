//! GetThemes: recurring key phrases of free-text answers, with their sentiment.

use throughline_proto::feedback::v1::*;
use throughline_runtime::{Error, FieldViolation};

use super::{Api, violations_of};
use crate::filter::Filter;
use crate::store::texts;
use crate::text::label_of;
use crate::text::themes::extract;

/// Themes are mined from at most the newest this many answers of the window, so that one call
/// stays fast on any survey; `answer_count` says how many were read.
const MAX_ANSWERS: usize = 20_000;
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: i32 = 100;
/// Example responses per theme.
const EXAMPLES: usize = 3;

impl Api {
    pub(super) async fn get_themes(
        &self,
        tenant: &str,
        request: GetThemesRequest,
    ) -> Result<GetThemesResponse, Error> {
        let mut violations = Vec::new();
        let filter = Filter::parse(
            request.filter.as_ref(),
            "filter",
            self.service.options.min_sample_size,
        )
        .map_err(|error| violations_of(error, &mut violations))
        .ok();
        let question_id = match request.question_id.as_str() {
            "" => None,
            id if crate::survey::is_question_id(id) => Some(id),
            _ => {
                violations.push(FieldViolation::new(
                    "question_id",
                    "a question id: lower_snake_case, at most 64 characters",
                ));
                None
            }
        };
        let label = match SentimentLabel::try_from(request.sentiment) {
            Ok(SentimentLabel::Unspecified) => None,
            Ok(label) => Some(label as i32),
            Err(_) => {
                violations.push(FieldViolation::new(
                    "sentiment",
                    format!("unknown sentiment label {}", request.sentiment),
                ));
                None
            }
        };
        let limit = match request.limit {
            0 => DEFAULT_LIMIT,
            limit if (1..=MAX_LIMIT).contains(&limit) => usize::try_from(limit).unwrap_or(0),
            _ => {
                violations.push(FieldViolation::new(
                    "limit",
                    format!("from 1 to {MAX_LIMIT}; 0 for the default of {DEFAULT_LIMIT}"),
                ));
                0
            }
        };
        Error::unless_valid(violations)?;
        let Some(filter) = filter else {
            return Err(Error::internal("a checked request lacks its filter"));
        };
        let answers = texts::answers(
            &self.service.db,
            tenant,
            &filter,
            question_id,
            label,
            MAX_ANSWERS,
        )
        .await?;
        let themes = extract(&answers, limit)
            .into_iter()
            .map(|found| {
                let count = found.answers.len();
                let mean_sentiment = found
                    .answers
                    .iter()
                    .map(|index| answers[*index].sentiment)
                    .sum::<f64>()
                    / count.max(1) as f64;
                Theme {
                    phrase: found.phrase,
                    count: i64::try_from(count).unwrap_or(i64::MAX),
                    mean_sentiment,
                    sentiment_label: label_of(mean_sentiment) as i32,
                    example_responses: found
                        .answers
                        .iter()
                        .take(EXAMPLES)
                        .map(|index| answers[*index].response.clone())
                        .collect(),
                }
            })
            .collect();
        Ok(GetThemesResponse {
            themes,
            answer_count: i64::try_from(answers.len()).unwrap_or(i64::MAX),
        })
    }
}
