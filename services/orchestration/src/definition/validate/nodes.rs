//! Each node kind's own fields.

use std::collections::HashSet;

use throughline_proto::common::v1::Purpose;
use throughline_proto::orchestration::v1::node::Kind;
use throughline_proto::orchestration::v1::wait_node::Until;
use throughline_proto::orchestration::v1::{
    AbSplitNode, BranchNode, JourneyDefinition, Node, RequestFeedbackNode, SendNode,
    UpdateProfileNode, WebhookNode,
};
use throughline_runtime::request::is_resource_id;

use super::{Check, MAX_DAYS, is_id, is_identifier, reference};
use crate::expr::Kind as ExprKind;

const MAX_CASES: usize = 20;
const MAX_ARMS: usize = 10;
const MAX_ATTRIBUTES: usize = 50;
const MAX_WEBHOOK_ATTEMPTS: i32 = 20;
const MAX_WEBHOOK_TIMEOUT_US: i64 = 60 * 1_000_000;
const WEBHOOK_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

pub(super) fn check(check: &mut Check<'_>, path: &str, node: &Node) {
    let Some(kind) = &node.kind else {
        check.push(
            path,
            "sets no kind: one of send, wait, wait_for_event, branch, ab_split, \
             update_profile, request_feedback, webhook or exit",
        );
        return;
    };
    match kind {
        Kind::Send(send) => self::send(check, &format!("{path}.send"), send),
        Kind::Wait(wait) => {
            let path = format!("{path}.wait");
            match &wait.until {
                None => check.push(&path, "set duration or local_window"),
                Some(Until::Duration(duration)) => {
                    check.bounded(Some(duration), &format!("{path}.duration"), true, MAX_DAYS);
                }
                Some(Until::LocalWindow(window)) => {
                    check.window(window, &format!("{path}.local_window"));
                }
            }
        }
        Kind::WaitForEvent(wait) => {
            let path = format!("{path}.wait_for_event");
            check.matcher(wait.event.as_ref(), &format!("{path}.event"));
            check.bounded(
                wait.timeout.as_ref(),
                &format!("{path}.timeout"),
                true,
                MAX_DAYS,
            );
            variable(
                check,
                &wait.event_variable,
                &format!("{path}.event_variable"),
            );
        }
        Kind::Branch(branch) => self::branch(check, &format!("{path}.branch"), branch),
        Kind::AbSplit(split) => ab_split(check, &format!("{path}.ab_split"), split),
        Kind::UpdateProfile(update) => {
            update_profile(check, &format!("{path}.update_profile"), update);
        }
        Kind::RequestFeedback(request) => {
            request_feedback(check, &format!("{path}.request_feedback"), request);
        }
        Kind::Webhook(webhook) => self::webhook(check, &format!("{path}.webhook"), webhook),
        Kind::Exit(exit) => check.reason(&exit.reason, &format!("{path}.exit.reason"), false),
    }
}

/// Whether any send node sends marketing: such a journey must respect quiet hours.
pub(super) fn sends_marketing(definition: &JourneyDefinition) -> bool {
    definition.nodes.iter().any(|node| {
        matches!(&node.kind, Some(Kind::Send(send)) if send.purpose == Purpose::Marketing as i32)
    })
}

fn variable(check: &mut Check<'_>, name: &str, path: &str) {
    if !name.is_empty() && !is_identifier(name) {
        check.push(
            path,
            "a letter or `_`, then letters, digits or `_`, at most 64 characters",
        );
    }
}

fn template(check: &mut Check<'_>, template: &str, path: &str) {
    if !reference(template, "templates", is_id) {
        check.push(
            path,
            "must be templates/{id}, the id of letters, digits, `-` and `_`",
        );
    }
}

fn send(check: &mut Check<'_>, path: &str, send: &SendNode) {
    template(check, &send.template, &format!("{path}.template"));
    check.channel(send.channel.as_ref(), &format!("{path}.channel"));
    check.purpose(send.purpose, &format!("{path}.purpose"));
    for (name, source) in &send.variables {
        let path = format!("{path}.variables.{name}");
        if !is_identifier(name) {
            check.push(
                &path,
                "variable names are a letter or `_`, then letters, digits or `_`",
            );
        }
        check.cel(source, ExprKind::Value, &path);
    }
}

fn branch(check: &mut Check<'_>, path: &str, branch: &BranchNode) {
    if branch.cases.is_empty() || branch.cases.len() > MAX_CASES {
        check.push(&format!("{path}.cases"), format!("1 to {MAX_CASES} cases"));
    }
    for (index, case) in branch.cases.iter().enumerate() {
        let path = format!("{path}.cases[{index}]");
        check.cel(
            &case.condition,
            ExprKind::Condition,
            &format!("{path}.condition"),
        );
        if case.next.is_empty() {
            check.push(
                &format!("{path}.next"),
                "required: the node this case leads to",
            );
        }
    }
}

fn ab_split(check: &mut Check<'_>, path: &str, split: &AbSplitNode) {
    if split.arms.len() < 2 || split.arms.len() > MAX_ARMS {
        check.push(&format!("{path}.arms"), format!("2 to {MAX_ARMS} arms"));
    }
    let mut names = HashSet::new();
    for (index, arm) in split.arms.iter().enumerate() {
        let path = format!("{path}.arms[{index}]");
        if arm.name.is_empty() {
            check.push(&format!("{path}.name"), "required, for example `a`");
        } else if arm.name.chars().count() > 63 {
            check.push(&format!("{path}.name"), "at most 63 characters");
        } else if !names.insert(arm.name.as_str()) {
            check.push(
                &format!("{path}.name"),
                format!("duplicate arm `{}`", arm.name),
            );
        }
        if arm.weight < 1 {
            check.push(&format!("{path}.weight"), "must be at least 1");
        }
        if arm.next.is_empty() {
            check.push(
                &format!("{path}.next"),
                "required: the node this arm leads to",
            );
        }
    }
}

/// Profile attribute keys: letters, digits, `_` and `.`, 1 to 64 characters.
fn is_attribute_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

fn update_profile(check: &mut Check<'_>, path: &str, update: &UpdateProfileNode) {
    if update.attributes.is_empty() || update.attributes.len() > MAX_ATTRIBUTES {
        check.push(
            &format!("{path}.attributes"),
            format!("1 to {MAX_ATTRIBUTES} attributes"),
        );
    }
    for (key, source) in &update.attributes {
        let path = format!("{path}.attributes.{key}");
        if !is_attribute_key(key) {
            check.push(
                &path,
                "attribute keys are letters, digits, `_` and `.`, 1 to 64 characters",
            );
        }
        check.cel(source, ExprKind::Value, &path);
    }
}

fn request_feedback(check: &mut Check<'_>, path: &str, request: &RequestFeedbackNode) {
    if !reference(&request.survey, "surveys", is_resource_id) {
        check.push(&format!("{path}.survey"), "must be surveys/{id}");
    }
    check.channel(request.channel.as_ref(), &format!("{path}.channel"));
    if !request.template.is_empty() {
        template(check, &request.template, &format!("{path}.template"));
    }
}

/// RFC 9110 token characters.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn webhook(check: &mut Check<'_>, path: &str, webhook: &WebhookNode) {
    let url_path = format!("{path}.url");
    match url::Url::parse(&webhook.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        Ok(_) => check.push(&url_path, "must be an http or https URL with a host"),
        Err(e) => check.push(&url_path, format!("not a URL: {e}")),
    }
    if !webhook.method.is_empty() && !WEBHOOK_METHODS.contains(&webhook.method.as_str()) {
        check.push(
            &format!("{path}.method"),
            "one of GET, POST, PUT, PATCH or DELETE; default POST",
        );
    }
    for name in webhook.headers.keys() {
        if !is_header_name(name) {
            check.push(
                &format!("{path}.headers.{name}"),
                "not a valid HTTP header name",
            );
        }
    }
    let timeout_path = format!("{path}.timeout");
    if let Some(us) = check.duration(webhook.timeout.as_ref(), &timeout_path)
        && us > MAX_WEBHOOK_TIMEOUT_US
    {
        check.push(&timeout_path, "at most 60 seconds");
    }
    if !(0..=MAX_WEBHOOK_ATTEMPTS).contains(&webhook.max_attempts) {
        check.push(
            &format!("{path}.max_attempts"),
            format!("between 1 and {MAX_WEBHOOK_ATTEMPTS}; 0 means 5"),
        );
    }
    variable(
        check,
        &webhook.result_variable,
        &format!("{path}.result_variable"),
    );
}
