//! Templates: one variant per channel and locale, each checked for its channel on save and
//! rendered with minijinja at send time.
//!
//! - `sms`: encoding and segments of an SMS.
//! - `html`: the text body derived from an HTML one.
//! - `render`: minijinja, variables and the limits of rendered content.

mod html;
mod render;
mod sms;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use throughline_proto::common::v1::Channel;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::{SmsDetails, Template, TemplateVariant};
use throughline_runtime::{Error, FieldViolation};

pub use html::html_to_text;

/// The most variants a template may hold.
pub const MAX_VARIANTS: usize = 100;
const MAX_DISPLAY_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;

/// `[distribution.templates]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateLimits {
    /// Segments an SMS may take when its variant sets no `max_segments`.
    pub sms_default_max_segments: u32,
    /// The most segments any SMS variant may allow.
    pub sms_max_segments_ceiling: u32,
    /// The largest source of one templated field, in bytes (an email's HTML body is the
    /// largest in practice).
    pub max_field_bytes: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self {
            sms_default_max_segments: 3,
            sms_max_segments_ceiling: 10,
            max_field_bytes: 256 * 1024,
        }
    }
}

/// A variant rendered for one message: the content that goes out and, for SMS, how it is
/// carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub variant: TemplateVariant,
    pub sms: Option<SmsDetails>,
}

/// Encoding, length and segment count of an SMS body (see `sms::sms_details`).
pub fn sms_details(body: &str) -> SmsDetails {
    sms::sms_details(body)
}

/// Checks a template on save; violations name `template.…` fields.
///
/// Checks the display name, the number of variants (1 to [`MAX_VARIANTS`]), each variant's
/// channel, locale (BCP-47 syntax, one variant per channel and locale), content kind for its
/// channel and required fields, and that every field parses. When `sample_variables` is set,
/// every variant is also rendered with them and must fit its channel's limits; a variable a
/// variant uses that the samples lack is named `template.sample_variables.<name>`.
pub fn validate(template: &Template, limits: &TemplateLimits) -> Result<(), Error> {
    let mut violations = Vec::new();
    let mut violation = |field: String, description: String| {
        violations.push(FieldViolation::new(field, description));
    };
    if template.display_name.trim().is_empty() {
        violation("template.display_name".into(), "is required".into());
    } else if template.display_name.chars().count() > MAX_DISPLAY_NAME {
        violation(
            "template.display_name".into(),
            format!("must be at most {MAX_DISPLAY_NAME} characters"),
        );
    }
    if template.description.chars().count() > MAX_DESCRIPTION {
        violation(
            "template.description".into(),
            format!("must be at most {MAX_DESCRIPTION} characters"),
        );
    }
    if template.variants.is_empty() || template.variants.len() > MAX_VARIANTS {
        violation(
            "template.variants".into(),
            format!("must hold 1 to {MAX_VARIANTS} variants"),
        );
    }
    let env = render::environment();
    let mut seen: HashMap<(i32, String), usize> = HashMap::new();
    for (index, variant) in template.variants.iter().enumerate().take(MAX_VARIANTS) {
        let at = format!("template.variants[{index}]");
        let channel = match Channel::try_from(variant.channel) {
            Ok(Channel::Unspecified) | Err(_) => {
                violation(format!("{at}.channel"), "must be a channel".into());
                None
            }
            Ok(channel) => Some(channel),
        };
        if !is_locale(&variant.locale) {
            violation(
                format!("{at}.locale"),
                "must be empty or a BCP-47 tag such as `fr` or `fr-CA`".into(),
            );
        } else if let Some(first) = seen.insert(
            (variant.channel, variant.locale.to_ascii_lowercase()),
            index,
        ) {
            violation(
                format!("{at}.locale"),
                format!("variants[{first}] has the same channel and locale"),
            );
        }
        let Some(channel) = channel else { continue };
        let expected = content_kind(channel);
        let actual = variant.content.as_ref().map(|content| match content {
            Content::Email(_) => "email",
            Content::Sms(_) => "sms",
            Content::Push(_) => "push",
            Content::Text(_) => "text",
        });
        match actual {
            None => {
                violation(
                    format!("{at}.{expected}"),
                    format!("is required for {}", channel.as_str_name()),
                );
                continue;
            }
            Some(actual) if actual != expected => {
                violation(
                    format!("{at}.{actual}"),
                    format!("{} takes {expected} content", channel.as_str_name()),
                );
                continue;
            }
            Some(_) => {}
        }
        match &variant.content {
            Some(Content::Email(email)) => {
                if email.subject.trim().is_empty() {
                    violation(format!("{at}.email.subject"), "is required".into());
                }
                if email.html_body.trim().is_empty() && email.text_body.trim().is_empty() {
                    violation(
                        format!("{at}.email.html_body"),
                        "an email needs an HTML body or a text body".into(),
                    );
                }
            }
            Some(Content::Sms(content)) => {
                if content.body.trim().is_empty() {
                    violation(format!("{at}.sms.body"), "is required".into());
                }
                let ceiling = limits.sms_max_segments_ceiling;
                if u32::try_from(content.max_segments).map_or(true, |max| max > ceiling) {
                    violation(
                        format!("{at}.sms.max_segments"),
                        format!("must be 0 (the default) to {ceiling}"),
                    );
                }
            }
            Some(Content::Push(content))
                if content.title.trim().is_empty() && content.body.trim().is_empty() =>
            {
                violation(
                    format!("{at}.push.body"),
                    "a push needs a title or a body".into(),
                );
            }
            Some(Content::Text(content)) if content.body.trim().is_empty() => {
                violation(format!("{at}.text.body"), "is required".into());
            }
            _ => {}
        }
        for field in render::fields(variant) {
            if field.source.len() > limits.max_field_bytes {
                violation(
                    format!("{at}.{}", field.path),
                    format!("must be at most {} bytes", limits.max_field_bytes),
                );
            } else if let Some(error) = render::parse_error(env, &field) {
                violation(format!("{at}.{}", field.path), error);
            }
        }
    }
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let Some(samples) = &template.sample_variables else {
        return Ok(());
    };
    let samples = throughline_runtime::json::struct_to_json(samples);
    for (index, variant) in template.variants.iter().enumerate() {
        if let Err(Error::InvalidArgument(errors)) = render(variant, &samples, limits) {
            violations.extend(errors.into_iter().map(|error| {
                let field = match error.field.strip_prefix("variables.") {
                    Some(name) => format!("template.sample_variables.{name}"),
                    None => format!("template.variants[{index}].{}", error.field),
                };
                FieldViolation::new(field, error.description)
            }));
        }
    }
    violations.dedup();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

/// The content a variant for `channel` holds.
fn content_kind(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Push => "push",
        _ => "text",
    }
}

/// Empty, or a BCP-47 language tag in its common shape: a language of 2–3 (or 5–8) letters,
/// then subtags of 1–8 letters or digits.
fn is_locale(locale: &str) -> bool {
    if locale.is_empty() {
        return true;
    }
    if locale.len() > 35 {
        return false;
    }
    let mut parts = locale.split('-');
    let language = parts.next().unwrap_or_default();
    (matches!(language.len(), 2 | 3 | 5..=8) && language.bytes().all(|b| b.is_ascii_alphabetic()))
        && parts.all(|part| {
            (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// The variant for `channel` in `locale`: the exact locale (case-insensitive), then its
/// language (`fr-CA` → `fr`), then the fallback variant with an empty locale.
pub fn select_variant<'a>(
    template: &'a Template,
    channel: Channel,
    locale: &str,
) -> Option<&'a TemplateVariant> {
    let candidates = || {
        template
            .variants
            .iter()
            .filter(move |variant| variant.channel == channel as i32)
    };
    let locale = locale.trim().replace('_', "-");
    let language = locale.split('-').next().unwrap_or_default();
    let with_locale = |wanted: &str| {
        candidates()
            .find(|variant| !wanted.is_empty() && variant.locale.eq_ignore_ascii_case(wanted))
    };
    with_locale(&locale)
        .or_else(|| with_locale(language))
        .or_else(|| candidates().find(|variant| variant.locale.is_empty()))
}

/// Renders every field of `variant` with `variables` (a JSON object).
///
/// INVALID_ARGUMENT when a variable the variant uses is missing (one violation per variable,
/// named `variables.<name>` or `variables.<name>.<attribute>`), when a field cannot be
/// rendered, or when the rendered content exceeds its channel's limits: an SMS over its
/// segments, a push title over 65 or body over 240 characters, an email subject on several
/// lines. Those violations are named relative to the variant (`sms.body`, `push.title`):
/// callers prefix them with where the variant sits (`template.variants[2].`).
///
/// An email without a text body gets one derived from its rendered HTML; HTML is escaped in
/// `html_body` only.
pub fn render(
    variant: &TemplateVariant,
    variables: &serde_json::Value,
    limits: &TemplateLimits,
) -> Result<Rendered, Error> {
    render::render(variant, variables, limits)
}

#[cfg(test)]
mod tests;
