//! Templates through the real gRPC API on SQLite and PostgreSQL: CRUD with etags, masks and
//! idempotency; listing by channel with paging; rendering (SMS encoding and segments, locale
//! fallback, text derived from HTML, missing variables, limits); tenant isolation.
#![allow(clippy::unwrap_used)]

mod distribution_support;

use distribution_support::*;
use prost_types::FieldMask;
use throughline_harness::{TestDatabase, TestSuite, on_both_databases, token, violations};
use throughline_proto::common::v1::Channel;
use throughline_proto::distribution::v1::render_template_request::Source;
use throughline_proto::distribution::v1::render_template_response::Content as Rendered;
use throughline_proto::distribution::v1::template_variant::Content;
use throughline_proto::distribution::v1::*;
use tonic::Code;

async fn client(suite: &TestSuite, tenant: &str) -> Client {
    suite
        .clients(&token(tenant, &["distribution:read", "distribution:write"]))
        .await
        .distribution
}

fn sms(locale: &str, body: &str) -> TemplateVariant {
    TemplateVariant {
        channel: Channel::Sms as i32,
        locale: locale.into(),
        content: Some(Content::Sms(SmsContent {
            body: body.into(),
            max_segments: 0,
        })),
    }
}

fn email(locale: &str, subject: &str, html_body: &str) -> TemplateVariant {
    TemplateVariant {
        channel: Channel::Email as i32,
        locale: locale.into(),
        content: Some(Content::Email(EmailContent {
            subject: subject.into(),
            html_body: html_body.into(),
            text_body: String::new(),
        })),
    }
}

fn template(display_name: &str, variants: Vec<TemplateVariant>) -> Template {
    Template {
        display_name: display_name.into(),
        variants,
        ..Template::default()
    }
}

async fn create(client: &mut Client, id: &str, template: Template) -> Template {
    client
        .create_template(CreateTemplateRequest {
            template: Some(template),
            template_id: id.into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap()
}

async fn get(client: &mut Client, name: &str) -> Result<Template, tonic::Status> {
    client
        .get_template(GetTemplateRequest { name: name.into() })
        .await
        .map(|r| r.into_inner().template.unwrap())
}

fn render_saved(name: &str, channel: Channel, locale: &str) -> RenderTemplateRequest {
    RenderTemplateRequest {
        source: Some(Source::Template(name.into())),
        channel: channel as i32,
        locale: locale.into(),
        variables: None,
    }
}

fn text(text: impl Into<String>) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(text.into())),
    }
}

fn number(number: f64) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::NumberValue(number)),
    }
}

fn list(items: &[&str]) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::ListValue(
            prost_types::ListValue {
                values: items.iter().map(|item| text(*item)).collect(),
            },
        )),
    }
}

/// Template variables.
fn vars<const N: usize>(fields: [(&str, prost_types::Value); N]) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    }
}

fn with_variables(
    mut request: RenderTemplateRequest,
    variables: prost_types::Struct,
) -> RenderTemplateRequest {
    request.variables = Some(variables);
    request
}

fn sms_body(response: &RenderTemplateResponse) -> &str {
    match response.content.as_ref().unwrap() {
        Rendered::Sms(sms) => &sms.body,
        other => panic!("not an SMS: {other:?}"),
    }
}

on_both_databases!(
    templates_are_created_read_updated_and_deleted,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["distribution"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let request = CreateTemplateRequest {
            template: Some(template("Welcome", vec![sms("", "Hi {{ name }}")])),
            template_id: "welcome".into(),
            request_id: "req-1".into(),
        };
        let created = client
            .create_template(request.clone())
            .await
            .unwrap()
            .into_inner()
            .template
            .unwrap();
        assert_eq!(created.name, "templates/welcome");
        assert_eq!(created.etag, "1");
        assert!(created.create_time.is_some());
        // A retry replays the first answer; another request for the same id is refused.
        let replay = client.create_template(request.clone()).await.unwrap();
        assert_eq!(replay.into_inner().template.unwrap(), created);
        let mut taken = request.clone();
        taken.request_id = "req-2".into();
        let status = client.create_template(taken).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert_eq!(
            get(&mut client, "templates/welcome").await.unwrap(),
            created
        );

        // The service names a template created without an id.
        let assigned = create(&mut client, "", template("Other", vec![sms("", "x")])).await;
        let id = assigned.name.strip_prefix("templates/").unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

        // Bad input names its fields.
        let mut bad = template(
            "",
            vec![sms("", "Hi {{ name"), sms("", "dup"), email("en", "", "")],
        );
        bad.variants.push(TemplateVariant {
            channel: Channel::Push as i32,
            locale: "en-GB".into(),
            content: Some(Content::Sms(SmsContent::default())),
        });
        let status = client
            .create_template(CreateTemplateRequest {
                template: Some(bad),
                template_id: "Bad_Id".into(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            [
                "template_id",
                "template.display_name",
                "template.variants[0].sms.body",
                "template.variants[1].locale",
                "template.variants[2].email.subject",
                "template.variants[2].email.html_body",
                "template.variants[3].sms",
            ]
        );
        let status = client
            .create_template(CreateTemplateRequest {
                template: Some(template("Empty", vec![])),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["template.variants"]);

        // Update: only the masked fields change, the etag moves on.
        let mut changes = template("Welcome aboard", vec![sms("", "ignored")]);
        changes.name = "templates/welcome".into();
        changes.etag = "1".into();
        changes.description = "first contact".into();
        let updated = client
            .update_template(UpdateTemplateRequest {
                template: Some(changes.clone()),
                update_mask: Some(FieldMask {
                    paths: vec!["display_name".into(), "description".into()],
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .template
            .unwrap();
        assert_eq!(updated.display_name, "Welcome aboard");
        assert_eq!(updated.description, "first contact");
        assert_eq!(updated.variants, created.variants);
        assert_eq!(updated.etag, "2");
        assert_eq!(updated.create_time, created.create_time);
        assert_eq!(
            get(&mut client, "templates/welcome").await.unwrap(),
            updated
        );
        // The same etag again is stale.
        let status = client
            .update_template(UpdateTemplateRequest {
                template: Some(changes.clone()),
                update_mask: Some(FieldMask {
                    paths: vec!["display_name".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        let status = client
            .update_template(UpdateTemplateRequest {
                template: Some(changes.clone()),
                update_mask: Some(FieldMask {
                    paths: vec!["name".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["update_mask.paths[0]"]);
        // Variants replaced are checked like new ones.
        changes.etag = "2".into();
        changes.variants = vec![sms("fr_FR", "x")];
        let status = client
            .update_template(UpdateTemplateRequest {
                template: Some(changes.clone()),
                update_mask: Some(FieldMask {
                    paths: vec!["variants".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["template.variants[0].locale"]);
        changes.name = "templates/missing".into();
        let status = client
            .update_template(UpdateTemplateRequest {
                template: Some(changes),
                update_mask: Some(FieldMask {
                    paths: vec!["display_name".into()],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        // Delete: a stale etag is refused, then it goes, then it is not found.
        let status = client
            .delete_template(DeleteTemplateRequest {
                name: "templates/welcome".into(),
                etag: "1".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        client
            .delete_template(DeleteTemplateRequest {
                name: "templates/welcome".into(),
                etag: "2".into(),
            })
            .await
            .unwrap();
        let status = get(&mut client, "templates/welcome").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = client
            .delete_template(DeleteTemplateRequest {
                name: "templates/welcome".into(),
                etag: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = get(&mut client, "welcome").await.unwrap_err();
        assert_eq!(violations(&status), ["name"]);
    }
);

on_both_databases!(
    templates_are_listed_by_name_with_a_channel_filter_and_pages,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["distribution"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        for (id, name, with_sms) in [
            ("t-echo", "Echo", true),
            ("t-alpha", "Alpha", true),
            ("t-delta", "Delta", false),
            ("t-bravo-2", "Bravo", true),
            ("t-bravo-1", "Bravo", true),
            ("t-charlie", "Charlie", false),
        ] {
            let mut variants = vec![email("", "Hello", "<p>Hi</p>")];
            if with_sms {
                variants.push(sms("", "Hi"));
            }
            create(&mut client, id, template(name, variants)).await;
        }
        let list = |channel: Channel, page_size: i32, page_token: String| ListTemplatesRequest {
            channel: channel as i32,
            page_size,
            page_token,
        };
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_templates(list(Channel::Unspecified, 4, token))
                .await
                .unwrap()
                .into_inner();
            assert!(page.templates.len() <= 4);
            all.extend(page.templates.into_iter().map(|t| t.name));
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(
            all,
            [
                "templates/t-alpha",
                "templates/t-bravo-1",
                "templates/t-bravo-2",
                "templates/t-charlie",
                "templates/t-delta",
                "templates/t-echo",
            ]
        );
        let first = client
            .list_templates(list(Channel::Sms, 2, String::new()))
            .await
            .unwrap()
            .into_inner();
        let names: Vec<_> = first.templates.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["templates/t-alpha", "templates/t-bravo-1"]);
        assert!(!first.next_page_token.is_empty());
        let second = client
            .list_templates(list(Channel::Sms, 2, first.next_page_token.clone()))
            .await
            .unwrap()
            .into_inner();
        let names: Vec<_> = second.templates.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["templates/t-bravo-2", "templates/t-echo"]);
        assert_eq!(second.next_page_token, "");
        // A token belongs to its filter.
        let status = client
            .list_templates(list(Channel::Email, 2, first.next_page_token))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["page_token"]);
        let status = client
            .list_templates(list(Channel::Email, 2, "zz".into()))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["page_token"]);
        let none = client
            .list_templates(list(Channel::Push, 0, String::new()))
            .await
            .unwrap()
            .into_inner();
        assert!(none.templates.is_empty());
    }
);

on_both_databases!(
    sms_renders_with_encoding_segments_and_locale_fallback,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["distribution"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let mut notice = template(
            "Delivery notice",
            vec![
                sms(
                    "",
                    "Hello {{ name }}, your parcel {{ parcel }} is on its way.",
                ),
                sms(
                    "fr",
                    "Bonjour {{ name }}, votre colis {{ parcel }} est en route.",
                ),
                sms(
                    "ru",
                    "Здравствуйте, {{ name }}! Посылка {{ parcel }} в пути.",
                ),
                sms("de", "{{ text }}"),
            ],
        );
        notice.sample_variables = Some(vars([
            ("name", text("Ada")),
            ("parcel", text("P-1")),
            ("text", text("kurz")),
        ]));
        create(&mut client, "notice", notice).await;

        // GSM-7, language fallback from fr-CA to fr, sample variables by default.
        let response = client
            .render_template(render_saved("templates/notice", Channel::Sms, "fr-CA"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.locale, "fr");
        assert_eq!(
            sms_body(&response),
            "Bonjour Ada, votre colis P-1 est en route."
        );
        let details = response.sms_details.unwrap();
        assert_eq!(details.encoding(), SmsEncoding::Gsm7);
        assert_eq!(details.character_count, 42);
        assert_eq!(details.segment_count, 1);

        // UCS-2: Cyrillic, 67 characters per segment once split.
        let name = "Анастасия".repeat(8);
        let response = client
            .render_template(with_variables(
                render_saved("templates/notice", Channel::Sms, "ru-RU"),
                vars([("name", text(name)), ("parcel", text("P-2"))]),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.locale, "ru");
        let body = sms_body(&response).to_owned();
        let details = response.sms_details.unwrap();
        assert_eq!(details.encoding(), SmsEncoding::Ucs2);
        assert_eq!(details.character_count, body.encode_utf16().count() as i32);
        assert_eq!(details.character_count, 107);
        assert_eq!(details.segment_count, 2);

        // No variant for the locale or its language: the fallback.
        let response = client
            .render_template(render_saved("templates/notice", Channel::Sms, "es-MX"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.locale, "");
        assert_eq!(
            sms_body(&response),
            "Hello Ada, your parcel P-1 is on its way."
        );

        // Extension characters count twice: 80 euro signs fill one segment, one more overflows it.
        for (count, segments) in [(80, 1), (81, 2)] {
            let response = client
                .render_template(with_variables(
                    render_saved("templates/notice", Channel::Sms, "de"),
                    vars([("text", text("€".repeat(count)))]),
                ))
                .await
                .unwrap()
                .into_inner();
            let details = response.sms_details.unwrap();
            assert_eq!(details.encoding(), SmsEncoding::Gsm7);
            assert_eq!(details.character_count as usize, count * 2);
            assert_eq!(details.segment_count, segments);
        }

        // Variables the variant uses but the request lacks are named, one each.
        let status = client
            .render_template(with_variables(
                render_saved("templates/notice", Channel::Sms, "en"),
                vars([("name", text("Ada"))]),
            ))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["variables.parcel"]);

        // Over the default 3 segments: refused, never cut.
        let status = client
            .render_template(with_variables(
                render_saved("templates/notice", Channel::Sms, "de"),
                vars([("text", text("a".repeat(460)))]),
            ))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["template.variants[3].sms.body"]);

        // No variant for the channel at all.
        let status = client
            .render_template(render_saved("templates/notice", Channel::Push, ""))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["channel"]);
        let status = client
            .render_template(render_saved("templates/missing", Channel::Sms, ""))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        // Samples that overflow a variant are refused on save.
        let mut long = template("Long", vec![sms("", "{{ text }}")]);
        long.sample_variables = Some(vars([("text", text("ж".repeat(202)))]));
        let status = client
            .create_template(CreateTemplateRequest {
                template: Some(long),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["template.variants[0].sms.body"]);
    }
);

on_both_databases!(
    email_renders_with_a_text_body_derived_from_html,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["distribution"], &test_db).await;
        let mut client = client(&suite, "acme").await;
        let html = "<html><head><style>p { margin: 0 }</style></head><body>\
                    <h1>Hello {{ name }}</h1><p>Your order &amp; invoice:</p>\
                    <ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>\
                    <p><a href=\"https://shop.test/orders/{{ order }}\">Track it</a></p></body></html>";
        create(
            &mut client,
            "order",
            template("Order", vec![email("", "Order {{ order }}", html)]),
        )
        .await;
        let response = client
            .render_template(with_variables(
                render_saved("templates/order", Channel::Email, "en"),
                vars([
                    ("name", text("Ada <3")),
                    ("items", list(&["Tea", "Cups"])),
                    ("order", number(42.0)),
                ]),
            ))
            .await
            .unwrap()
            .into_inner();
        let Some(Rendered::Email(content)) = response.content else {
            panic!("not an email: {response:?}");
        };
        assert_eq!(content.subject, "Order 42");
        assert!(
            content.html_body.contains("<h1>Hello Ada &lt;3</h1>"),
            "{}",
            content.html_body
        );
        assert_eq!(
            content.text_body,
            "Hello Ada <3\n\nYour order & invoice:\n\n- Tea\n- Cups\n\n\
             Track it (https://shop.test/orders/42)"
        );
        assert!(response.sms_details.is_none());

        // An inline template renders without being saved; its violations say so.
        let inline = |variants| RenderTemplateRequest {
            source: Some(Source::InlineTemplate(template("Draft", variants))),
            channel: Channel::Email as i32,
            locale: String::new(),
            variables: Some(vars([("who", text("Bob"))])),
        };
        let response = client
            .render_template(inline(vec![email(
                "",
                "Hi {{ who }}",
                "<p>Dear {{ who }}</p>",
            )]))
            .await
            .unwrap()
            .into_inner();
        let Some(Rendered::Email(content)) = response.content else {
            panic!("not an email: {response:?}");
        };
        assert_eq!(content.text_body, "Dear Bob");
        let status = client
            .render_template(inline(vec![email("", "Hi {{ who", "<p>x</p>")]))
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            ["inline_template.variants[0].email.subject"]
        );
        let status = client
            .render_template(inline(vec![email("", "Hi {{ whom }}", "<p>x</p>")]))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["variables.whom"]);
    }
);

on_both_databases!(
    a_tenant_sees_only_its_templates,
    |test_db: TestDatabase| async move {
        let suite = TestSuite::start(&["distribution"], &test_db).await;
        let mut acme = client(&suite, "acme").await;
        let mut globex = client(&suite, "globex").await;
        create(
            &mut acme,
            "shared-id",
            template("Acme", vec![sms("", "acme")]),
        )
        .await;
        let status = get(&mut globex, "templates/shared-id").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = globex
            .render_template(render_saved("templates/shared-id", Channel::Sms, ""))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = globex
            .delete_template(DeleteTemplateRequest {
                name: "templates/shared-id".into(),
                etag: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let listed = globex
            .list_templates(ListTemplatesRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(listed.templates.is_empty());
        // The same id is free in another tenant, and each keeps its own.
        create(
            &mut globex,
            "shared-id",
            template("Globex", vec![sms("", "globex")]),
        )
        .await;
        assert_eq!(
            get(&mut acme, "templates/shared-id")
                .await
                .unwrap()
                .display_name,
            "Acme"
        );
        assert_eq!(
            get(&mut globex, "templates/shared-id")
                .await
                .unwrap()
                .display_name,
            "Globex"
        );
    }
);
