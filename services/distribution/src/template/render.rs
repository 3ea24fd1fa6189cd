//! Rendering with minijinja: every field of a variant is a template; HTML is escaped in
//! `html_body` only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::{
    EmailContent, PushContent, SmsContent, SmsDetails, TemplateVariant, TextContent,
};
use throughline_runtime::{Error, FieldViolation};

use super::{Rendered, TemplateLimits, html, sms};

/// The name under which a field's source is compiled: `html` is escaped, the rest is not.
const HTML: &str = "html";
const PLAIN: &str = "plain";

pub(super) const PUSH_TITLE_MAX: usize = 65;
pub(super) const PUSH_BODY_MAX: usize = 240;

/// The environment every template is parsed and rendered in, built once: building it
/// registers minijinja's filters and tests, which cost as much as parsing a short template.
pub(super) fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(build_environment);
    &ENVIRONMENT
}

fn build_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name == HTML {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // A variable missing at render time is an error, never an empty string in a message.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // A variable given as null prints nothing rather than `none` in a customer's message.
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    // Bounds what a template can make the server do (deep recursion, huge loops).
    env.set_recursion_limit(64);
    env.set_fuel(Some(1_000_000));
    env
}

/// A field of a variant, by its path relative to the variant, and its template source.
pub(super) struct Field<'a> {
    pub path: String,
    pub source: &'a str,
    pub html: bool,
}

/// Every templated field of `variant`, in a stable order.
pub(super) fn fields(variant: &TemplateVariant) -> Vec<Field<'_>> {
    let mut fields = Vec::new();
    let mut push = |path: String, source, html| fields.push(Field { path, source, html });
    match &variant.content {
        Some(Content::Email(email)) => {
            push("email.subject".into(), email.subject.as_str(), false);
            push("email.html_body".into(), email.html_body.as_str(), true);
            push("email.text_body".into(), email.text_body.as_str(), false);
        }
        Some(Content::Sms(content)) => push("sms.body".into(), content.body.as_str(), false),
        Some(Content::Push(push_content)) => {
            push("push.title".into(), push_content.title.as_str(), false);
            push("push.body".into(), push_content.body.as_str(), false);
            push(
                "push.deep_link".into(),
                push_content.deep_link.as_str(),
                false,
            );
            let data: BTreeMap<_, _> = push_content.data.iter().collect();
            for (key, value) in data {
                push(format!("push.data[{key:?}]"), value.as_str(), false);
            }
        }
        Some(Content::Text(text)) => {
            push("text.title".into(), text.title.as_str(), false);
            push("text.body".into(), text.body.as_str(), false);
        }
        None => {}
    }
    fields
}

/// Parses `source`, describing a syntax error.
pub(super) fn parse_error(env: &Environment<'_>, field: &Field<'_>) -> Option<String> {
    let name = if field.html { HTML } else { PLAIN };
    env.template_from_named_str(name, field.source)
        .err()
        .map(|error| format!("is not a valid template: {}", describe(&error)))
}

fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{} (line {})", detail, error.line().unwrap_or(0)),
        None => error.kind().to_string(),
    }
}

/// A field's source parsed once: an environment holding it as its one template, and the
/// variables it reads that are not the environment's globals.
struct Compiled {
    env: Environment<'static>,
    name: &'static str,
    variables: Vec<String>,
}

/// Most source bytes the cache of parsed sources holds (a field may be 256 KiB); when full it
/// starts again from empty.
const COMPILED_BYTES: usize = 16 << 20;

/// Parsed sources, plain ones at 0 and those escaped as HTML at 1, and the bytes of their
/// sources. Keyed by the source itself, so a lookup borrows it rather than copying it.
#[derive(Default)]
struct CompiledCache {
    sources: [HashMap<String, Arc<Compiled>>; 2],
    bytes: usize,
}

/// The parsed form of `field`'s source, from the cache or parsed now. Sends render the same
/// few templates over and over, and parsing took as long as rendering.
fn compiled(field: &Field<'_>) -> Result<Arc<Compiled>, minijinja::Error> {
    static CACHE: LazyLock<Mutex<CompiledCache>> = LazyLock::new(Mutex::default);
    let escaping = usize::from(field.html);
    if let Some(compiled) = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .sources[escaping]
        .get(field.source)
    {
        return Ok(compiled.clone());
    }
    let name = if field.html { HTML } else { PLAIN };
    let mut env = environment().clone();
    env.add_template_owned(name, field.source.to_owned())?;
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let variables = env
        .get_template(name)?
        .undeclared_variables(true)
        .into_iter()
        .filter(|path| !globals.contains(path.split('.').next().unwrap_or_default()))
        .collect();
    let compiled = Arc::new(Compiled {
        env,
        name,
        variables,
    });
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if cache.bytes + field.source.len() > COMPILED_BYTES {
        *cache = CompiledCache::default();
    }
    let added = cache.sources[escaping]
        .insert(field.source.to_owned(), compiled.clone())
        .is_none();
    if added {
        cache.bytes += field.source.len();
    }
    Ok(compiled)
}

/// See [`super::render`].
pub(super) fn render(
    variant: &TemplateVariant,
    variables: &serde_json::Value,
    limits: &TemplateLimits,
) -> Result<Rendered, Error> {
    let context = to_value(variables);
    let mut missing = BTreeSet::new();
    let mut violations = Vec::new();
    let mut rendered: BTreeMap<String, String> = BTreeMap::new();
    for field in fields(variant) {
        let compiled = match compiled(&field) {
            Ok(compiled) => compiled,
            Err(error) => {
                violations.push(FieldViolation::new(
                    field.path,
                    format!("is not a valid template: {}", describe(&error)),
                ));
                continue;
            }
        };
        let mut lacking = false;
        for path in &compiled.variables {
            if let Some(absent) = absent(variables, path) {
                missing.insert(absent);
                lacking = true;
            }
        }
        if lacking {
            continue;
        }
        let result = compiled
            .env
            .get_template(compiled.name)
            .and_then(|template| template.render(&context));
        match result {
            Ok(text) => {
                rendered.insert(field.path, text);
            }
            Err(error) => violations.push(FieldViolation::new(
                field.path,
                format!("cannot be rendered: {}", describe(&error)),
            )),
        }
    }
    violations.extend(
        missing
            .into_iter()
            .map(|name| FieldViolation::new(format!("variables.{name}"), "is missing")),
    );
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let mut take = |path: &str| rendered.remove(path).unwrap_or_default();
    let mut details = None;
    let content = match &variant.content {
        Some(Content::Email(_)) => {
            let subject = take("email.subject");
            let html_body = take("email.html_body");
            let mut text_body = take("email.text_body");
            if text_body.trim().is_empty() && !html_body.is_empty() {
                text_body = html::html_to_text(&html_body);
            }
            if subject.contains(['\r', '\n']) {
                violations.push(FieldViolation::new(
                    "email.subject",
                    "must be one line once rendered",
                ));
            }
            Content::Email(EmailContent {
                subject: subject.trim().to_owned(),
                html_body,
                text_body,
            })
        }
        Some(Content::Sms(content)) => {
            let body = take("sms.body");
            let sms_details = sms::sms_details(&body);
            let max_segments = max_segments(content, limits);
            if i64::from(sms_details.segment_count) > i64::from(max_segments) {
                violations.push(FieldViolation::new(
                    "sms.body",
                    format!(
                        "takes {} segments once rendered ({} characters in {}), more than the {} \
                         allowed",
                        sms_details.segment_count,
                        sms_details.character_count,
                        encoding_name(&sms_details),
                        max_segments
                    ),
                ));
            }
            details = Some(sms_details);
            Content::Sms(SmsContent {
                body,
                max_segments: content.max_segments,
            })
        }
        Some(Content::Push(content)) => {
            let title = take("push.title");
            let body = take("push.body");
            for (path, text, max) in [
                ("push.title", &title, PUSH_TITLE_MAX),
                ("push.body", &body, PUSH_BODY_MAX),
            ] {
                let length = text.chars().count();
                if length > max {
                    violations.push(FieldViolation::new(
                        path,
                        format!("is {length} characters once rendered, more than {max}"),
                    ));
                }
            }
            Content::Push(PushContent {
                title,
                body,
                deep_link: take("push.deep_link"),
                data: content
                    .data
                    .keys()
                    .map(|key| (key.clone(), take(&format!("push.data[{key:?}]"))))
                    .collect(),
            })
        }
        Some(Content::Text(_)) => Content::Text(TextContent {
            title: take("text.title"),
            body: take("text.body"),
        }),
        None => return Err(Error::invalid("content", "must be set")),
    };
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    Ok(Rendered {
        variant: TemplateVariant {
            channel: variant.channel,
            locale: variant.locale.clone(),
            content: Some(content),
        },
        sms: details,
    })
}

/// The segments an SMS variant may take.
pub(super) fn max_segments(content: &SmsContent, limits: &TemplateLimits) -> u32 {
    match u32::try_from(content.max_segments) {
        Ok(0) | Err(_) => limits.sms_default_max_segments,
        Ok(max) => max.min(limits.sms_max_segments_ceiling),
    }
}

fn encoding_name(details: &SmsDetails) -> &'static str {
    match details.encoding() {
        throughline_proto::distribution::v1::SmsEncoding::Ucs2 => "UCS-2",
        _ => "GSM-7",
    }
}

/// The first part of `path` (`a.b.c`) that `variables` lacks, as `a` or `a.b`: only an
/// object can lack a key, so a path through a string or a list is left to the renderer.
fn absent(variables: &serde_json::Value, path: &str) -> Option<String> {
    let mut current = variables;
    let mut end = 0;
    for part in path.split('.') {
        let object = match current {
            serde_json::Value::Object(object) => object,
            // Variables not given at all: nothing is there.
            serde_json::Value::Null if end == 0 => return Some(part.to_owned()),
            _ => return None,
        };
        end += part.len() + usize::from(end > 0);
        match object.get(part) {
            Some(value) => current = value,
            None => return Some(path[..end].to_owned()),
        }
    }
    None
}

/// JSON as a minijinja value.
fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::from(f),
            (None, None) => Value::from(n.to_string()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(to_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}
