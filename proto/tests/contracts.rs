//! Checks the compiled contracts against the tables derived from them: every
//! Throughline RPC has a well-formed scope, and the expected services exist.

use std::collections::BTreeSet;

use prost::Message as _;
use prost_types::FileDescriptorSet;
use throughline_proto::{
    EVENT_LOG_SERVICE_NAME, EVENT_TYPES, FILE_DESCRIPTOR_SET, METHOD_SCOPES, SERVICE_NAMES,
    event_payload_type, required_scope,
};

/// Every method of every `throughline.*` service, as `(full path, method name)`.
fn throughline_methods() -> Vec<(String, String)> {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let mut methods = Vec::new();
    for file in &set.file {
        if !file.package().starts_with("throughline.") {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                methods.push((path, method.name().to_owned()));
            }
        }
    }
    methods
}

fn service_names() -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    set.file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .map(move |service| format!("{}.{}", file.package(), service.name()))
        })
        .collect()
}

#[test]
fn every_method_has_a_scope_and_every_scope_a_method() {
    let methods = throughline_methods();
    assert!(methods.len() > 100, "only {} methods found", methods.len());
    for (path, _) in &methods {
        assert!(required_scope(path).is_some(), "{path} has no scope");
    }
    let paths: BTreeSet<&str> = methods.iter().map(|(path, _)| path.as_str()).collect();
    for (path, _) in METHOD_SCOPES {
        assert!(
            paths.contains(path),
            "{path} is in METHOD_SCOPES but not a method"
        );
    }
    assert_eq!(paths.len(), METHOD_SCOPES.len());
}

#[test]
fn scopes_are_area_colon_verb() {
    const VERBS: [&str; 5] = ["read", "write", "admin", "send", "inbound"];
    for (path, scope) in METHOD_SCOPES {
        let (area, verb) = scope
            .split_once(':')
            .unwrap_or_else(|| panic!("{path}: scope {scope} has no ':'"));
        assert!(
            !area.is_empty() && area.bytes().all(|b| b.is_ascii_lowercase()),
            "{path}: area of {scope}"
        );
        assert!(VERBS.contains(&verb), "{path}: unexpected verb in {scope}");
    }
}

#[test]
fn scope_area_matches_the_service() {
    for (path, scope) in METHOD_SCOPES {
        let package_area = path
            .trim_start_matches("/throughline.")
            .split('.')
            .next()
            .expect("path has a package");
        let area = scope.split(':').next().expect("scope has an area");
        let expected = if package_area == "event" {
            "events"
        } else {
            package_area
        };
        assert_eq!(area, expected, "{path} requires {scope}");
    }
}

#[test]
fn reads_never_require_more_than_read() {
    // A Get or List that needs a write scope is almost always a typo, and it
    // would lock read-only integrations out.
    for (path, name) in throughline_methods() {
        if name.starts_with("Get") || name.starts_with("List") || name.starts_with("Check") {
            let scope = required_scope(&path).expect("scope");
            assert!(
                scope.ends_with(":read") || name == "ExportProfile",
                "{path} requires {scope}"
            );
        }
    }
}

#[test]
fn the_five_services_and_the_event_log_exist() {
    let names = service_names();
    assert_eq!(
        SERVICE_NAMES,
        [
            "throughline.profile.v1.ProfileService",
            "throughline.interaction.v1.InteractionService",
            "throughline.feedback.v1.FeedbackService",
            "throughline.orchestration.v1.OrchestrationService",
            "throughline.distribution.v1.DistributionService",
        ]
    );
    for service in SERVICE_NAMES.iter().chain([&EVENT_LOG_SERVICE_NAME]) {
        assert!(names.contains(*service), "{service} is missing");
    }
    assert_eq!(
        EVENT_LOG_SERVICE_NAME,
        "throughline.event.v1.EventLogService"
    );
    assert_eq!(
        required_scope("/throughline.event.v1.EventLogService/Subscribe"),
        Some("events:read")
    );
}

#[test]
fn every_event_type_has_a_payload_in_the_event_package() {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let messages: BTreeSet<String> = set
        .file
        .iter()
        .filter(|file| file.package() == "throughline.event.v1")
        .flat_map(|file| {
            file.message_type
                .iter()
                .map(|message| format!("throughline.event.v1.{}", message.name()))
        })
        .collect();
    for (event_type, payload) in EVENT_TYPES {
        assert!(
            messages.contains(*payload),
            "{event_type}: {payload} is not a message"
        );
        assert_eq!(event_payload_type(event_type), Some(*payload));
    }
    for expected in [
        "profile.created",
        "profile.updated",
        "profile.merged",
        "profile.unmerged",
        "profile.erased",
        "consent.changed",
        "segment.entered",
        "segment.exited",
        "interaction.recorded",
        "thread.opened",
        "thread.resolved",
        "feedback.responded",
        "feedback.detractor",
        "journey.entered",
        "journey.exited",
        "journey.converted",
        "message.sent",
        "message.delivered",
        "message.failed",
        "inbound.received",
    ] {
        assert!(
            event_payload_type(expected).is_some(),
            "{expected} has no payload"
        );
    }
}

#[test]
fn tables_are_sorted_for_binary_search() {
    assert!(METHOD_SCOPES.windows(2).all(|pair| pair[0].0 < pair[1].0));
    assert!(EVENT_TYPES.windows(2).all(|pair| pair[0].0 < pair[1].0));
}
