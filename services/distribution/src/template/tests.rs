#![allow(clippy::unwrap_used)]

use serde_json::json;
use throughline_proto::distribution::v1::{
    EmailContent, PushContent, SmsContent, SmsEncoding, TextContent,
};

use super::*;

fn variant(channel: Channel, locale: &str, content: Content) -> TemplateVariant {
    TemplateVariant {
        channel: channel as i32,
        locale: locale.into(),
        content: Some(content),
    }
}

fn sms(locale: &str, body: &str) -> TemplateVariant {
    variant(
        Channel::Sms,
        locale,
        Content::Sms(SmsContent {
            body: body.into(),
            max_segments: 0,
        }),
    )
}

fn email(subject: &str, html_body: &str, text_body: &str) -> TemplateVariant {
    variant(
        Channel::Email,
        "",
        Content::Email(EmailContent {
            subject: subject.into(),
            html_body: html_body.into(),
            text_body: text_body.into(),
        }),
    )
}

fn template(variants: Vec<TemplateVariant>) -> Template {
    Template {
        display_name: "Welcome".into(),
        variants,
        ..Template::default()
    }
}

fn fields(error: Error) -> Vec<String> {
    match error {
        Error::InvalidArgument(violations) => violations.into_iter().map(|v| v.field).collect(),
        other => panic!("not INVALID_ARGUMENT: {other}"),
    }
}

fn body(rendered: &Rendered) -> &str {
    match rendered.variant.content.as_ref().unwrap() {
        Content::Sms(sms) => &sms.body,
        Content::Text(text) => &text.body,
        other => panic!("{other:?}"),
    }
}

#[test]
fn locale_falls_back_to_language_then_default() {
    let t = template(vec![
        sms("", "default"),
        sms("fr", "fr"),
        sms("fr-CA", "fr-CA"),
        sms("de-DE", "de-DE"),
        variant(
            Channel::Whatsapp,
            "fr",
            Content::Text(TextContent {
                title: String::new(),
                body: "wa".into(),
            }),
        ),
    ]);
    let locale = |channel, wanted| select_variant(&t, channel, wanted).map(|v| v.locale.clone());
    assert_eq!(locale(Channel::Sms, "fr-CA").unwrap(), "fr-CA");
    assert_eq!(locale(Channel::Sms, "FR-ca").unwrap(), "fr-CA");
    assert_eq!(locale(Channel::Sms, "fr_CA").unwrap(), "fr-CA");
    assert_eq!(locale(Channel::Sms, "fr-BE").unwrap(), "fr");
    assert_eq!(locale(Channel::Sms, "fr").unwrap(), "fr");
    // A region variant never serves the bare language.
    assert_eq!(locale(Channel::Sms, "de").unwrap(), "");
    assert_eq!(locale(Channel::Sms, "en-GB").unwrap(), "");
    assert_eq!(locale(Channel::Sms, "").unwrap(), "");
    assert_eq!(locale(Channel::Whatsapp, "fr-FR").unwrap(), "fr");
    assert_eq!(locale(Channel::Whatsapp, "en"), None);
    assert_eq!(locale(Channel::Email, "fr"), None);
}

#[test]
fn validation_names_fields() {
    let limits = TemplateLimits::default();
    let mut bad = template(vec![
        sms("", "Hi {{ name }"),
        sms("", "again"),
        variant(
            Channel::Email,
            "",
            Content::Sms(SmsContent {
                body: "x".into(),
                max_segments: 0,
            }),
        ),
        email("", "", ""),
        sms("not a locale", "x"),
        variant(
            Channel::Sms,
            "en",
            Content::Sms(SmsContent {
                body: "x".into(),
                max_segments: 11,
            }),
        ),
        variant(
            Channel::Push,
            "",
            Content::Push(PushContent {
                title: "{% if %}".into(),
                ..PushContent::default()
            }),
        ),
        TemplateVariant {
            channel: Channel::Chat as i32,
            locale: String::new(),
            content: None,
        },
        TemplateVariant {
            channel: 999,
            locale: String::new(),
            content: None,
        },
    ]);
    bad.display_name = " ".into();
    assert_eq!(
        fields(validate(&bad, &limits).unwrap_err()),
        [
            "template.display_name",
            "template.variants[0].sms.body",
            "template.variants[1].locale",
            "template.variants[2].sms",
            // Same channel and locale as variants[2].
            "template.variants[3].locale",
            "template.variants[3].email.subject",
            "template.variants[3].email.html_body",
            "template.variants[4].locale",
            "template.variants[5].sms.max_segments",
            "template.variants[6].push.title",
            "template.variants[7].text",
            "template.variants[8].channel",
        ]
    );
    assert_eq!(
        fields(validate(&template(vec![]), &limits).unwrap_err()),
        ["template.variants"]
    );
    let many = template((0..101).map(|i| sms(&format!("en-{i}"), "x")).collect());
    assert_eq!(
        fields(validate(&many, &limits).unwrap_err()),
        ["template.variants"]
    );
    assert!(validate(&template(vec![sms("", "Hi {{ name }}")]), &limits).is_ok());
}

#[test]
fn sample_variables_check_rendered_limits() {
    let limits = TemplateLimits::default();
    let mut t = template(vec![
        sms("", "{{ text }}"),
        email("Hi {{ name }}", "<p>{{ name }}</p>", ""),
    ]);
    t.sample_variables = Some(throughline_runtime::json::json_to_struct(
        json!({"text": "a".repeat(500)}),
    ));
    assert_eq!(
        fields(validate(&t, &limits).unwrap_err()),
        [
            "template.variants[0].sms.body",
            "template.sample_variables.name"
        ]
    );
    t.sample_variables = Some(throughline_runtime::json::json_to_struct(
        json!({"text": "short", "name": "Ada"}),
    ));
    assert!(validate(&t, &limits).is_ok());
}

#[test]
fn missing_variables_are_named_once_each() {
    let limits = TemplateLimits::default();
    let v = email(
        "{{ greeting }}, {{ profile.first_name }}",
        "{% for item in items %}{{ item.name }}{% endfor %}{{ greeting }}{{ range(2)|length }}",
        "",
    );
    let error = render(&v, &json!({"profile": {}}), &limits).unwrap_err();
    assert_eq!(
        fields(error),
        [
            "variables.greeting",
            "variables.items",
            "variables.profile.first_name"
        ]
    );
    let error = render(&sms("", "{{ a }}"), &serde_json::Value::Null, &limits).unwrap_err();
    assert_eq!(fields(error), ["variables.a"]);
    let ok = render(
        &v,
        &json!({"greeting": "Hi", "profile": {"first_name": "Ada"}, "items": [{"name": "x"}]}),
        &limits,
    )
    .unwrap();
    let Content::Email(content) = ok.variant.content.unwrap() else {
        panic!()
    };
    assert_eq!(content.subject, "Hi, Ada");
    assert_eq!(content.html_body, "xHi2");
}

#[test]
fn locals_loops_and_nulls_are_not_missing() {
    let limits = TemplateLimits::default();
    let v = sms(
        "",
        "{% set greeting = 'Hi' %}{{ greeting }} {{ nickname }}\
         {% for item in items %}{{ loop.index }}.{{ item }} {% endfor %}\
         {% if vip %}{{ coupon }}{% endif %}",
    );
    let rendered = render(
        &v,
        &json!({"nickname": null, "items": ["a", "b"], "vip": false, "coupon": "X"}),
        &limits,
    )
    .unwrap();
    assert_eq!(body(&rendered), "Hi 1.a 2.b ");
    // A variable used only in a branch not taken must still be given.
    let error = render(
        &v,
        &json!({"nickname": "Al", "items": [], "vip": false}),
        &limits,
    );
    assert_eq!(fields(error.unwrap_err()), ["variables.coupon"]);
}

#[test]
fn html_is_escaped_in_the_html_body_only() {
    let limits = TemplateLimits::default();
    let v = email("{{ name }}", "<p>Hello {{ name }}</p>", "");
    let rendered = render(&v, &json!({"name": "<Tom & Jerry>"}), &limits).unwrap();
    let Content::Email(content) = rendered.variant.content.unwrap() else {
        panic!()
    };
    assert_eq!(content.subject, "<Tom & Jerry>");
    assert_eq!(content.html_body, "<p>Hello &lt;Tom &amp; Jerry&gt;</p>");
    // The derived text body decodes what the HTML escaped.
    assert_eq!(content.text_body, "Hello <Tom & Jerry>");
    let rendered = render(&sms("", "{{ name }}"), &json!({"name": "<b>"}), &limits).unwrap();
    assert_eq!(body(&rendered), "<b>");
}

#[test]
fn sms_over_its_segments_is_refused() {
    let limits = TemplateLimits::default();
    let long = json!({"text": "a".repeat(459)});
    let rendered = render(&sms("", "{{ text }}"), &long, &limits).unwrap();
    assert_eq!(rendered.sms.unwrap().segment_count, 3);
    let error = render(&sms("", "{{ text }}!"), &long, &limits).unwrap_err();
    assert_eq!(fields(error), ["sms.body"]);
    let mut allowed = sms("", "{{ text }}!");
    if let Some(Content::Sms(content)) = allowed.content.as_mut() {
        content.max_segments = 4;
    }
    let rendered = render(&allowed, &long, &limits).unwrap();
    let details = rendered.sms.unwrap();
    assert_eq!(details.segment_count, 4);
    assert_eq!(details.encoding(), SmsEncoding::Gsm7);
    assert_eq!(body(&rendered).len(), 460);
}

#[test]
fn push_limits_count_characters() {
    let limits = TemplateLimits::default();
    let push = |title: &str, body: &str| {
        variant(
            Channel::Push,
            "",
            Content::Push(PushContent {
                title: title.into(),
                body: body.into(),
                deep_link: "app://orders/{{ id }}".into(),
                data: [("order".to_owned(), "{{ id }}".to_owned())].into(),
            }),
        )
    };
    let vars = json!({"id": 7});
    let rendered = render(&push(&"é".repeat(65), &"ü".repeat(240)), &vars, &limits).unwrap();
    let Content::Push(content) = rendered.variant.content.unwrap() else {
        panic!()
    };
    assert_eq!(content.deep_link, "app://orders/7");
    assert_eq!(content.data["order"], "7");
    let error = render(&push(&"é".repeat(66), &"ü".repeat(241)), &vars, &limits).unwrap_err();
    assert_eq!(fields(error), ["push.title", "push.body"]);
}

#[test]
fn render_errors_are_invalid_argument() {
    let limits = TemplateLimits::default();
    let error = render(&sms("", "{{ n / 0 }}"), &json!({"n": 1}), &limits).unwrap_err();
    assert_eq!(fields(error), ["sms.body"]);
    let error = render(
        &sms(
            "",
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
        ),
        &json!({}),
        &limits,
    )
    .unwrap_err();
    assert_eq!(fields(error), ["sms.body"]);
}
