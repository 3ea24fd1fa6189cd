//! Events and profiles as CEL sees them: their protobuf JSON mapping with proto field names
//! (`interaction_type`, not `interactionType`, as the contracts document them), default values
//! included so that a condition on an unset field reads its default instead of failing on a
//! missing key, and 64-bit integers as numbers so that they compare with CEL ints.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use throughline_proto::common::v1::AttributeValue;
use throughline_proto::common::v1::attribute_value::Kind as AttributeKind;
use throughline_proto::event::v1::Event;
use throughline_proto::profile::v1::Profile;

/// Payloads may only be messages of this package: events carry nothing else.
const EVENT_PACKAGE: &str = "throughline.event.v1.";

/// Every contract's descriptors, decoded once.
pub(crate) fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(throughline_proto::FILE_DESCRIPTOR_SET).ok())
        .as_ref()
}

/// The message `full_name` encoded in `bytes` as JSON; `None` if unknown or undecodable.
fn message_json(full_name: &str, bytes: &[u8]) -> Option<serde_json::Value> {
    let descriptor = pool()?.get_message_by_name(full_name)?;
    let message = DynamicMessage::decode(descriptor, bytes).ok()?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .ok()
}

/// An event as CEL sees it: `id`, `type`, `source`, `subject`, `time` (RFC 3339) and `data`
/// (its payload as an object keyed by the payload's proto field names; `{}` when the payload
/// is not a known message of `throughline.event.v1`).
pub(crate) fn event_value(event: &Event) -> serde_json::Value {
    let data = event
        .data
        .as_ref()
        .and_then(|any| {
            let name = any.type_url.rsplit('/').next()?;
            if !name.starts_with(EVENT_PACKAGE) {
                return None;
            }
            message_json(name, &any.value)
        })
        .unwrap_or_else(|| serde_json::json!({}));
    let time = event
        .time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default();
    serde_json::json!({
        "id": event.id,
        "type": event.r#type,
        "source": event.source,
        "subject": event.subject,
        "time": time,
        "data": data,
    })
}

/// A profile as CEL sees it: its fields with proto field names, except `attributes`, whose
/// values are plain (`profile.attributes.tier == "gold"`) as in segment rules, timestamps as
/// RFC 3339 strings.
pub(crate) fn profile_value(profile: &Profile) -> serde_json::Value {
    let mut value = message_json("throughline.profile.v1.Profile", &profile.encode_to_vec())
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(object) = value.as_object_mut() {
        let attributes: serde_json::Map<String, serde_json::Value> = profile
            .attributes
            .iter()
            .map(|(key, value)| (key.clone(), attribute(value)))
            .collect();
        object.insert("attributes".into(), serde_json::Value::Object(attributes));
    }
    value
}

fn attribute(value: &AttributeValue) -> serde_json::Value {
    match &value.kind {
        Some(AttributeKind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(AttributeKind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(AttributeKind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(AttributeKind::TimestampValue(t)) => chrono::DateTime::from_timestamp(
            t.seconds,
            u32::try_from(t.nanos).unwrap_or(0),
        )
        .map_or(serde_json::Value::Null, |time| {
            serde_json::Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }),
        Some(AttributeKind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(attribute).collect())
        }
        None => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use prost_types::{Any, Timestamp};
    use throughline_proto::common::v1::AttributeList;
    use throughline_proto::event::v1::InteractionRecorded;

    use super::*;

    #[test]
    fn event_payload_with_proto_field_names() {
        let payload = InteractionRecorded {
            interaction_type: "cart.updated".into(),
            ..Default::default()
        };
        let event = Event {
            id: "e1".into(),
            source: "interaction".into(),
            r#type: "interaction.recorded".into(),
            subject: "profiles/p1".into(),
            time: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            data: Some(Any {
                type_url: "type.googleapis.com/throughline.event.v1.InteractionRecorded".into(),
                value: payload.encode_to_vec(),
            }),
            ..Default::default()
        };
        let value = event_value(&event);
        assert_eq!(value["type"], "interaction.recorded");
        assert_eq!(value["subject"], "profiles/p1");
        assert_eq!(value["time"], "2023-11-14T22:13:20Z");
        assert_eq!(value["data"]["interaction_type"], "cart.updated");
        // Defaults are present, so conditions on unset fields read them.
        assert!(value["data"].as_object().is_some_and(|d| d.len() > 1));
    }

    #[test]
    fn foreign_or_broken_payload_is_empty() {
        let mut event = Event {
            data: Some(Any {
                type_url: "type.googleapis.com/google.protobuf.Duration".into(),
                value: Vec::new(),
            }),
            ..Default::default()
        };
        assert_eq!(event_value(&event)["data"], serde_json::json!({}));
        event.data = Some(Any {
            type_url: "type.googleapis.com/throughline.event.v1.InteractionRecorded".into(),
            value: vec![0xff, 0xff, 0xff],
        });
        assert_eq!(event_value(&event)["data"], serde_json::json!({}));
        assert_eq!(event_value(&Event::default())["time"], "");
    }

    #[test]
    fn profile_attributes_are_plain() {
        let mut profile = Profile {
            name: "profiles/p1".into(),
            given_name: "Ada".into(),
            ..Default::default()
        };
        let text = |s: &str| AttributeValue {
            kind: Some(AttributeKind::StringValue(s.into())),
        };
        profile.attributes.insert("tier".into(), text("gold"));
        profile.attributes.insert(
            "orders".into(),
            AttributeValue {
                kind: Some(AttributeKind::NumberValue(3.0)),
            },
        );
        profile.attributes.insert(
            "tags".into(),
            AttributeValue {
                kind: Some(AttributeKind::ListValue(AttributeList {
                    values: vec![text("a")],
                })),
            },
        );
        let value = profile_value(&profile);
        assert_eq!(value["given_name"], "Ada");
        assert_eq!(value["attributes"]["tier"], "gold");
        assert_eq!(value["attributes"]["orders"], 3.0);
        assert_eq!(value["attributes"]["tags"], serde_json::json!(["a"]));
        assert_eq!(value["state"], "PROFILE_STATE_UNSPECIFIED");
    }
}
