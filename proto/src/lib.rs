//! Throughline's gRPC contracts: the messages, clients and servers generated from
//! `throughline/<area>/v1/*.proto`, the encoded descriptor set for server
//! reflection, and the tables derived from the contracts' custom options (the
//! scope each RPC requires, the payload of each event type).
//!
//! Every generated server trait has default methods that answer UNIMPLEMENTED,
//! so a service implements only the RPCs it supports so far.

/// Generated code follows the protos, not this workspace's style.
macro_rules! generated {
    ($(#[$doc:meta])* $module:ident, $package:literal) => {
        $(#[$doc])*
        #[allow(
            clippy::all,
            clippy::pedantic,
            clippy::nursery,
            missing_docs,
            unused_qualifications,
            unused_variables
        )]
        pub mod $module {
            tonic::include_proto!($package);
        }
    };
}

/// Types shared by every service: channels, purposes, customer references,
/// typed attributes, contact budgets, and the `required_scope` method option.
pub mod codec;

pub mod common {
    generated!(v1, "throughline.common.v1");
}

/// `throughline.profile.v1`: profiles, identity resolution, consent, segments.
pub mod profile {
    generated!(v1, "throughline.profile.v1");
}

/// `throughline.interaction.v1`: the omnichannel timeline, threads, customer context.
pub mod interaction {
    generated!(v1, "throughline.interaction.v1");
}

/// `throughline.feedback.v1`: surveys, invitations, responses, metrics, follow-ups.
pub mod feedback {
    generated!(v1, "throughline.feedback.v1");
}

/// `throughline.orchestration.v1`: journeys, instances, statistics.
pub mod orchestration {
    generated!(v1, "throughline.orchestration.v1");
}

/// `throughline.distribution.v1`: templates, sends, suppressions, inbound, webhooks.
pub mod distribution {
    generated!(v1, "throughline.distribution.v1");
}

/// `throughline.event.v1`: the CloudEvents envelope, typed payloads, and the
/// event log service every producer serves.
pub mod event {
    generated!(v1, "throughline.event.v1");
}

/// The Google common types the contracts use (`google.api`, `google.type`).
pub mod google {
    generated!(api, "google.api");
    // prost names the file of the `google.type` package after its Rust module.
    generated!(r#type, "google.r#type");
}

/// The encoded `FileDescriptorSet` of every contract and its imports, for
/// `tonic-reflection` and for code that inspects the contracts at run time.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/throughline_descriptor.bin"));

include!(concat!(env!("OUT_DIR"), "/method_scopes.rs"));
include!(concat!(env!("OUT_DIR"), "/event_types.rs"));

/// The full names of the five services, in the order the platform lists them.
pub const SERVICE_NAMES: [&str; 5] = [
    profile::v1::profile_service_server::SERVICE_NAME,
    interaction::v1::interaction_service_server::SERVICE_NAME,
    feedback::v1::feedback_service_server::SERVICE_NAME,
    orchestration::v1::orchestration_service_server::SERVICE_NAME,
    distribution::v1::distribution_service_server::SERVICE_NAME,
];

/// The full name of the event log service each producing service also serves.
pub const EVENT_LOG_SERVICE_NAME: &str = event::v1::event_log_service_server::SERVICE_NAME;

/// The scope a caller needs for an RPC, by its full path
/// (`/throughline.profile.v1.ProfileService/GetProfile`, as in an HTTP/2
/// `:path`); `None` for a path that is not a Throughline RPC.
pub fn required_scope(path: &str) -> Option<&'static str> {
    lookup(METHOD_SCOPES, path)
}

/// The full name of an event type's payload message
/// (`profile.merged` → `throughline.event.v1.ProfileMerged`); the `data` of an
/// `Event` of that type is an `Any` whose type URL ends with it.
pub fn event_payload_type(event_type: &str) -> Option<&'static str> {
    lookup(EVENT_TYPES, event_type)
}

fn lookup(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(candidate, _)| (*candidate).cmp(key))
        .ok()
        .map(|index| table[index].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_scopes_by_path() {
        assert_eq!(
            required_scope("/throughline.profile.v1.ProfileService/GetProfile"),
            Some("profile:read")
        );
        assert_eq!(
            required_scope("/throughline.event.v1.EventLogService/Subscribe"),
            Some("events:read")
        );
        assert_eq!(required_scope("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn looks_up_event_payloads() {
        assert_eq!(
            event_payload_type("profile.merged"),
            Some("throughline.event.v1.ProfileMerged")
        );
        assert_eq!(
            event_payload_type("message.delivered"),
            Some("throughline.event.v1.MessageStatusChanged")
        );
        assert_eq!(event_payload_type("no.such.type"), None);
    }
}
