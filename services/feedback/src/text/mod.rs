//! Free text: the sentiment of every free-text answer, scored when it is submitted, and the
//! recurring themes (key phrases) across answers.
//!
//! Sentiment goes through [`SentimentAnalyser`] so that a model can replace the lexicon
//! analyser without touching the rest of the service.

mod sentiment;
pub(crate) mod themes;

use std::fmt;

use throughline_proto::feedback::v1::{Sentiment, SentimentLabel};

pub use sentiment::Vader;

/// Scores the sentiment of one text.
pub trait SentimentAnalyser: fmt::Debug + Send + Sync {
    fn analyse(&self, text: &str) -> Sentiment;
}

/// The label of a sentiment score, with the thresholds VADER's authors recommend: at least 0.05
/// positive, at most -0.05 negative, neutral between.
pub(crate) fn label_of(score: f64) -> SentimentLabel {
    if score >= 0.05 {
        SentimentLabel::Positive
    } else if score <= -0.05 {
        SentimentLabel::Negative
    } else {
        SentimentLabel::Neutral
    }
}
