//! Free text: the sentiment of every free-text answer, scored when it is submitted, and the
//! recurring themes (key phrases) across answers.
//!
//! Sentiment goes through [`SentimentAnalyser`] so that a model can replace the lexicon
//! analyser without touching the rest of the service.

mod sentiment;

use std::fmt;

use throughline_proto::feedback::v1::Sentiment;

pub use sentiment::Vader;

/// Scores the sentiment of one text.
pub trait SentimentAnalyser: fmt::Debug + Send + Sync {
    fn analyse(&self, text: &str) -> Sentiment;
}
