//! Recurring themes: the key phrases many free-text answers share.
//!
//! A small, explainable extractor in the spirit of RAKE: each answer is lower-cased and cut into
//! clauses at punctuation and at conjunctions (`and`, `but`…); other stop words are dropped
//! inside a clause, and every run of one to three consecutive remaining words is a candidate
//! phrase ("The delivery was late" gives `delivery`, `late` and `delivery late`). Word order
//! does not make a different theme: "late delivery" and "delivery was late" are one, shown in
//! the form answers use most. A phrase is a theme when at least two answers contain it; a
//! shorter phrase is dropped when a longer theme containing its words covers most of its
//! answers, so `delivery late` is reported rather than `delivery` and `late` as well.
//!
//! The stop words are English. Answers in other languages still yield phrases, only without
//! stop-word splitting, so their themes tend to be single words and short runs.

use std::collections::{BTreeMap, BTreeSet};

/// Longest phrase, in words.
const MAX_WORDS: usize = 3;
/// Answers a phrase needs to be a theme.
const MIN_ANSWERS: usize = 2;
/// A shorter phrase goes when a longer theme containing it is in at least this share of its
/// answers.
const COVERED: f64 = 0.8;
/// Words shorter than this carry no theme (`ok`, `it`).
const MIN_WORD_CHARS: usize = 3;

const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "around", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "could", "did", "do", "does", "doing", "done", "down", "during",
    "each", "even", "ever", "every", "few", "for", "from", "further", "get", "got", "had", "has",
    "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "me", "more", "most", "much", "my", "myself", "no", "nor",
    "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over",
    "own", "quite", "rather", "really", "same", "she", "should", "so", "some", "still", "such",
    "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this",
    "those", "through", "to", "too", "under", "until", "up", "us", "very", "was", "we", "were",
    "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would",
    "you", "your", "yours", "yourself", "don't", "didn't", "doesn't", "isn't", "wasn't", "weren't",
    "won't", "wouldn't", "can't", "couldn't", "i'm", "i've", "it's", "you're", "they're", "we're",
    "there's", "that's", "let", "make", "made", "way", "thing", "things", "lot", "bit", "one",
    "two", "always", "never", "many", "like", "well", "ok", "okay", "yes", "thanks", "thank",
    "please",
];

/// Words that end a phrase as punctuation does: what they join are separate thoughts.
const BREAK_WORDS: &[&str] = &[
    "and", "but", "or", "so", "because", "then", "while", "though", "although", "however",
];

/// One free-text answer: its response, its text and its sentiment score.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub response: String,
    pub text: String,
    pub sentiment: f64,
}

/// A theme found in some answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    pub phrase: String,
    /// Indexes into the answers given, in their order.
    pub answers: Vec<usize>,
}

fn normalised(word: &str) -> String {
    word.replace('’', "'")
}

/// The candidate phrases of one text, each once: the theme key (its words sorted) with the
/// phrase as written.
fn phrases(text: &str) -> BTreeMap<String, String> {
    let lower = text.to_lowercase();
    let mut found = BTreeMap::new();
    let is_word_char = |c: char| c.is_alphanumeric() || c == '\'' || c == '’' || c.is_whitespace();
    for clause in lower.split(|c: char| !is_word_char(c)) {
        let mut run: Vec<&str> = Vec::new();
        for word in clause
            .split_whitespace()
            .map(|w| w.trim_matches(['\'', '’']))
        {
            let word_norm = normalised(word);
            if BREAK_WORDS.contains(&word_norm.as_str()) {
                add_runs(&run, &mut found);
                run.clear();
            } else if STOP_WORDS.contains(&word_norm.as_str())
                || word.chars().count() < MIN_WORD_CHARS
                || word.chars().all(char::is_numeric)
            {
                // Dropped inside the clause: "delivery was late" is still `delivery late`.
            } else {
                run.push(word);
            }
        }
        add_runs(&run, &mut found);
    }
    found
}

fn add_runs(run: &[&str], found: &mut BTreeMap<String, String>) {
    for start in 0..run.len() {
        for end in start + 1..=run.len().min(start + MAX_WORDS) {
            let words = &run[start..end];
            let mut key: Vec<&str> = words.to_vec();
            key.sort_unstable();
            key.dedup();
            found
                .entry(key.join(" "))
                .or_insert_with(|| words.join(" "));
        }
    }
}

/// True when every word of `short` is in `long`, a theme of more words.
fn contains_words(long: &str, short: &str) -> bool {
    let long_words: BTreeSet<&str> = long.split(' ').collect();
    long != short && short.split(' ').all(|word| long_words.contains(word))
}

/// The themes of `answers`, most frequent first (ties by phrase), at most `limit`.
pub(crate) fn extract(answers: &[Answer], limit: usize) -> Vec<Found> {
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut forms: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (index, answer) in answers.iter().enumerate() {
        for (key, form) in phrases(&answer.text) {
            *forms
                .entry(key.clone())
                .or_default()
                .entry(form)
                .or_default() += 1;
            by_key.entry(key).or_default().push(index);
        }
    }
    by_key.retain(|_, found_in| found_in.len() >= MIN_ANSWERS);
    let covered: BTreeSet<String> = by_key
        .iter()
        .filter(|(short, short_in)| {
            by_key.iter().any(|(long, long_in)| {
                contains_words(long, short)
                    && long_in.len() as f64 >= COVERED * short_in.len() as f64
            })
        })
        .map(|(key, _)| key.clone())
        .collect();
    let mut themes: Vec<Found> = by_key
        .into_iter()
        .filter(|(key, _)| !covered.contains(key))
        .map(|(key, answers)| {
            // The form answers use most; the first in order among equals.
            let phrase = forms
                .get(&key)
                .and_then(|forms| {
                    forms
                        .iter()
                        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                        .map(|(form, _)| form.clone())
                })
                .unwrap_or(key);
            Found { phrase, answers }
        })
        .collect();
    themes.sort_by(|a, b| {
        b.answers
            .len()
            .cmp(&a.answers.len())
            .then_with(|| a.phrase.cmp(&b.phrase))
    });
    themes.truncate(limit);
    themes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(texts: &[&str]) -> Vec<Answer> {
        texts
            .iter()
            .enumerate()
            .map(|(index, text)| Answer {
                response: format!("responses/r{index}"),
                text: (*text).to_owned(),
                sentiment: 0.0,
            })
            .collect()
    }

    #[test]
    fn phrases_skip_stop_words_numbers_and_short_words_within_a_clause() {
        let found = phrases("The delivery was late, AGAIN! Order 123 ok, and slow support");
        let found: Vec<&str> = found.values().map(String::as_str).collect();
        assert_eq!(
            found,
            [
                "delivery",
                "delivery late",
                "late",
                "order",
                "slow",
                "slow support",
                "support"
            ]
        );
    }

    #[test]
    fn recurring_phrases_are_themes_and_longer_ones_win() {
        let themes = extract(
            &answers(&[
                "The delivery was late.",
                "Delivery late again and the box was damaged",
                "delivery was late; the agent was helpful",
                "Helpful agent, quick answer",
                "Damaged box",
                "Price is fine",
            ]),
            20,
        );
        let summary: Vec<(&str, Vec<usize>)> = themes
            .iter()
            .map(|t| (t.phrase.as_str(), t.answers.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("delivery late", vec![0, 1, 2]),
                ("agent helpful", vec![2, 3]),
                ("box damaged", vec![1, 4]),
            ]
        );
        assert_eq!(extract(&answers(&["Price is fine"]), 20), []);
        assert_eq!(
            extract(&answers(&["late", "late", "slow", "slow"]), 1).len(),
            1
        );
    }
}
