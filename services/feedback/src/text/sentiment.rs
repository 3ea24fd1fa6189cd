//! The VADER lexicon analyser (Hutto and Gilbert, 2014): rule-based, fast, no model to load.

use throughline_proto::feedback::v1::Sentiment;

use super::SentimentAnalyser;

/// VADER's compound score, labelled with the thresholds its authors recommend: at least 0.05
/// positive, at most -0.05 negative, neutral between.
pub struct Vader {
    analyser: vader_sentiment::SentimentIntensityAnalyzer<'static>,
}

impl std::fmt::Debug for Vader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vader")
    }
}

impl Default for Vader {
    fn default() -> Self {
        Self {
            analyser: vader_sentiment::SentimentIntensityAnalyzer::new(),
        }
    }
}

impl SentimentAnalyser for Vader {
    fn analyse(&self, text: &str) -> Sentiment {
        let score = self
            .analyser
            .polarity_scores(text)
            .get("compound")
            .copied()
            .unwrap_or(0.0);
        Sentiment {
            score,
            label: super::label_of(score) as i32,
        }
    }
}
