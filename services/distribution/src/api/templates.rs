//! Template RPCs: CRUD and RenderTemplate.

use futures::FutureExt;
use throughline_proto::common::v1::Channel;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::*;
use throughline_runtime::idempotency::Key;
use throughline_runtime::json::struct_to_json;
use throughline_runtime::time::now_us;
use throughline_runtime::{Error, FieldViolation};

use super::{Api, UpdateMask, is_resource_id, page_size, resource_id};
use crate::store::templates::{self as store, template_name};
use crate::template;

/// The fields UpdateTemplate can change.
const UPDATABLE: [&str; 4] = [
    "display_name",
    "description",
    "variants",
    "sample_variables",
];

fn not_found(id: &str) -> Error {
    Error::NotFound(template_name(id))
}

fn stale(id: &str) -> Error {
    Error::Aborted(format!(
        "{} has changed since the etag was read; read it again",
        template_name(id)
    ))
}

/// The template with its output-only fields cleared.
fn input(template: Template) -> Template {
    Template {
        name: String::new(),
        create_time: None,
        update_time: None,
        etag: String::new(),
        ..template
    }
}

/// A keyset page token bound to the channel filter: hex of `channel|display_name|id` (hex so
/// it is opaque and URL-safe without another dependency).
fn encode_token(channel: i32, last: &Template) -> String {
    let id = last.name.strip_prefix("templates/").unwrap_or_default();
    let text = format!("{channel}\u{1}{}\u{1}{id}", last.display_name);
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str, channel: i32) -> Result<Option<(String, String)>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("page_token", "not a page token of ListTemplates");
    if !token.len().is_multiple_of(2) || token.len() > 4096 {
        return Err(invalid());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes.ok_or_else(invalid)?).map_err(|_| invalid())?;
    // The display name may hold anything, the channel and the id never the separator.
    let Some((filter, rest)) = text.split_once('\u{1}') else {
        return Err(invalid());
    };
    let Some((display_name, id)) = rest.rsplit_once('\u{1}') else {
        return Err(invalid());
    };
    if filter != channel.to_string() {
        return Err(Error::invalid(
            "page_token",
            "the page token was issued for a different channel filter",
        ));
    }
    Ok(Some((display_name.to_owned(), id.to_owned())))
}

/// `violations` from [`template::validate`] (named `template.…`) renamed under `prefix`.
fn renamed(error: Error, prefix: &str) -> Error {
    match error {
        Error::InvalidArgument(violations) => Error::InvalidArgument(
            violations
                .into_iter()
                .map(|v| {
                    let field = match v.field.strip_prefix("template") {
                        Some(rest) => format!("{prefix}{rest}"),
                        None => v.field,
                    };
                    FieldViolation::new(field, v.description)
                })
                .collect(),
        ),
        other => other,
    }
}

impl Api {
    pub(super) async fn create_template(
        &self,
        tenant: &str,
        request: CreateTemplateRequest,
    ) -> Result<CreateTemplateResponse, Error> {
        let Some(template) = request.template.clone() else {
            return Err(Error::invalid("template", "is required"));
        };
        let mut violations = Vec::new();
        if !request.template_id.is_empty() && !is_resource_id(&request.template_id) {
            violations.push(FieldViolation::new(
                "template_id",
                "must be 1 to 63 lower-case letters, digits and hyphens",
            ));
        }
        let template = input(template);
        if let Err(error) = template::validate(&template, &self.service.options.templates) {
            match error {
                Error::InvalidArgument(found) => violations.extend(found),
                other => return Err(other),
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let id = if request.template_id.is_empty() {
            uuid::Uuid::now_v7().simple().to_string()
        } else {
            request.template_id.clone()
        };
        let db = &self.service.db;
        if request.request_id.is_empty() {
            let template = store::insert(db, tenant, &id, &template, now_us()).await?;
            return Ok(CreateTemplateResponse {
                template: Some(template),
            });
        }
        let owner = tenant.to_owned();
        let key = Key {
            tenant,
            method: "CreateTemplate",
            request_id: &request.request_id,
        };
        self.service
            .idempotency
            .run(db, key, &request, move |transaction| {
                async move {
                    let template =
                        store::insert(transaction, &owner, &id, &template, now_us()).await?;
                    Ok(CreateTemplateResponse {
                        template: Some(template),
                    })
                }
                .boxed()
            })
            .await
    }

    pub(super) async fn get_template(
        &self,
        tenant: &str,
        request: GetTemplateRequest,
    ) -> Result<GetTemplateResponse, Error> {
        let id = resource_id(&request.name, "templates", "name")?;
        match store::find(&self.service.db, tenant, id).await? {
            Some(template) => Ok(GetTemplateResponse {
                template: Some(template),
            }),
            None => Err(not_found(id)),
        }
    }

    pub(super) async fn list_templates(
        &self,
        tenant: &str,
        request: ListTemplatesRequest,
    ) -> Result<ListTemplatesResponse, Error> {
        let channel = match Channel::try_from(request.channel) {
            Ok(Channel::Unspecified) => None,
            Ok(channel) => Some(channel as i32),
            Err(_) => return Err(Error::invalid("channel", "unknown channel")),
        };
        let page_size = page_size(request.page_size)?;
        let after = decode_token(&request.page_token, request.channel)?;
        let mut templates = store::list(
            &self.service.db,
            tenant,
            channel,
            after
                .as_ref()
                .map(|(name, id)| (name.as_str(), id.as_str())),
            page_size + 1,
        )
        .await?;
        let mut next_page_token = String::new();
        if templates.len() > page_size {
            templates.truncate(page_size);
            if let Some(last) = templates.last() {
                next_page_token = encode_token(request.channel, last);
            }
        }
        Ok(ListTemplatesResponse {
            templates,
            next_page_token,
        })
    }

    pub(super) async fn update_template(
        &self,
        tenant: &str,
        request: UpdateTemplateRequest,
    ) -> Result<UpdateTemplateResponse, Error> {
        let Some(changes) = request.template else {
            return Err(Error::invalid("template", "is required"));
        };
        let id = resource_id(&changes.name, "templates", "template.name")?;
        let mask = UpdateMask::parse(request.update_mask, &UPDATABLE)?;
        let masked = |field: &str| mask.has(field);

        let db = &self.service.db;
        let Some(current) = store::find(db, tenant, id).await? else {
            return Err(not_found(id));
        };
        if !changes.etag.is_empty() && changes.etag != current.etag {
            return Err(stale(id));
        }
        let revision: i64 = current.etag.parse().map_err(Error::internal)?;
        let create_time = current.create_time;
        let mut updated = input(current);
        if masked("display_name") {
            updated.display_name = changes.display_name;
        }
        if masked("description") {
            updated.description = changes.description;
        }
        if masked("variants") {
            updated.variants = changes.variants;
        }
        if masked("sample_variables") {
            updated.sample_variables = changes.sample_variables;
        }
        template::validate(&updated, &self.service.options.templates)?;
        // Guarded by the revision read above: a concurrent update makes this one stale.
        let stored = store::update(db, tenant, id, revision, &updated, now_us()).await?;
        self.service.forget_template(tenant, id);
        match stored {
            Some(template) => Ok(UpdateTemplateResponse {
                template: Some(Template {
                    create_time,
                    ..template
                }),
            }),
            None => Err(stale(id)),
        }
    }

    pub(super) async fn delete_template(
        &self,
        tenant: &str,
        request: DeleteTemplateRequest,
    ) -> Result<DeleteTemplateResponse, Error> {
        let id = resource_id(&request.name, "templates", "name")?;
        let db = &self.service.db;
        let revision = if request.etag.is_empty() {
            None
        } else {
            let Some(current) = store::find(db, tenant, id).await? else {
                return Err(not_found(id));
            };
            if current.etag != request.etag {
                return Err(stale(id));
            }
            Some(current.etag.parse().map_err(Error::internal)?)
        };
        let deleted = store::delete(db, tenant, id, revision).await?;
        self.service.forget_template(tenant, id);
        if deleted {
            return Ok(DeleteTemplateResponse {});
        }
        match revision {
            Some(_) => Err(stale(id)),
            None => Err(not_found(id)),
        }
    }

    pub(super) async fn render_template(
        &self,
        tenant: &str,
        request: RenderTemplateRequest,
    ) -> Result<RenderTemplateResponse, Error> {
        let limits = &self.service.options.templates;
        let (template, prefix) = match request.source {
            Some(render_template_request::Source::Template(name)) => {
                let id = resource_id(&name, "templates", "template")?;
                match store::find(&self.service.db, tenant, id).await? {
                    Some(template) => (template, "template"),
                    None => return Err(not_found(id)),
                }
            }
            Some(render_template_request::Source::InlineTemplate(mut template)) => {
                // A draft being previewed need not be named yet.
                if template.display_name.trim().is_empty() {
                    template.display_name = "Preview".into();
                }
                template::validate(&template, limits)
                    .map_err(|error| renamed(error, "inline_template"))?;
                (template, "inline_template")
            }
            None => {
                return Err(Error::invalid(
                    "template",
                    "a saved template or an inline_template is required",
                ));
            }
        };
        let channel = match Channel::try_from(request.channel) {
            Ok(Channel::Unspecified) | Err(_) => {
                return Err(Error::invalid("channel", "must be a channel"));
            }
            Ok(channel) => channel,
        };
        let Some(variant) = template::select_variant(&template, channel, &request.locale) else {
            return Err(Error::invalid(
                "channel",
                format!(
                    "the template has no {} variant for this locale or a fallback",
                    channel.as_str_name()
                ),
            ));
        };
        let index = template
            .variants
            .iter()
            .position(|candidate| std::ptr::eq(candidate, variant))
            .unwrap_or_default();
        let variables = request
            .variables
            .as_ref()
            .or(template.sample_variables.as_ref())
            .map(struct_to_json)
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
        let rendered = template::render(variant, &variables, limits).map_err(|error| {
            // Content violations are relative to the variant: say which one.
            match error {
                Error::InvalidArgument(violations) => Error::InvalidArgument(
                    violations
                        .into_iter()
                        .map(|v| {
                            if v.field.starts_with("variables.") {
                                v
                            } else {
                                FieldViolation::new(
                                    format!("{prefix}.variants[{index}].{}", v.field),
                                    v.description,
                                )
                            }
                        })
                        .collect(),
                ),
                other => other,
            }
        })?;
        use render_template_response::Content as Out;
        let content = rendered.variant.content.map(|content| match content {
            Content::Email(email) => Out::Email(email),
            Content::Sms(sms) => Out::Sms(sms),
            Content::Push(push) => Out::Push(push),
            Content::Text(text) => Out::Text(text),
        });
        Ok(RenderTemplateResponse {
            locale: rendered.variant.locale,
            content,
            sms_details: rendered.sms,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_filter() {
        let last = Template {
            name: "templates/t-1".into(),
            display_name: "Odd \u{1} name".into(),
            ..Template::default()
        };
        let token = encode_token(2, &last);
        assert_eq!(
            decode_token(&token, 2).unwrap(),
            Some(("Odd \u{1} name".to_owned(), "t-1".to_owned()))
        );
        assert!(decode_token(&token, 1).is_err());
        assert!(decode_token(&token[1..], 2).is_err());
        assert!(decode_token("zz", 2).is_err());
        assert!(decode_token("ff", 2).is_err());
        assert_eq!(decode_token("", 2).unwrap(), None);
    }
}
