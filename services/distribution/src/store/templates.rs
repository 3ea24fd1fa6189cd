//! `distribution_templates`: one row per template, its variants kept as a `Template` message.
