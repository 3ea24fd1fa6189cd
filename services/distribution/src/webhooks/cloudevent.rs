//! An event as CloudEvents JSON (structured mode), signed for its subscription.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Map, Value, json};
use throughline_proto::event::v1::Event;

/// The package every event payload is declared in.
const PAYLOAD_PACKAGE: &str = "throughline.event.v1.";

fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(throughline_proto::FILE_DESCRIPTOR_SET)
            .map_err(|error| tracing::error!(%error, "webhooks: the contracts do not decode"))
            .ok()
    })
    .as_ref()
}

/// The payload as JSON (the protobuf JSON mapping); `None` for a payload that is not a
/// declared event payload or does not decode.
fn data(event: &Event) -> Option<Value> {
    let any = event.data.as_ref()?;
    let type_name = any.type_url.rsplit('/').next()?;
    if !type_name.starts_with(PAYLOAD_PACKAGE) {
        return None;
    }
    let descriptor = pool()?.get_message_by_name(type_name)?;
    let message = DynamicMessage::decode(descriptor, any.value.as_slice()).ok()?;
    serde_json::to_value(&message).ok()
}

/// The CloudEvents JSON body of `event`.
pub(crate) fn body(event: &Event) -> Vec<u8> {
    let mut object = Map::new();
    object.insert("specversion".into(), json!("1.0"));
    object.insert("id".into(), json!(event.id));
    object.insert(
        "source".into(),
        json!(format!("/throughline/{}", event.source)),
    );
    object.insert("type".into(), json!(event.r#type));
    if !event.subject.is_empty() {
        object.insert("subject".into(), json!(event.subject));
    }
    if let Some(time) = &event.time {
        let time =
            chrono::DateTime::from_timestamp(time.seconds, u32::try_from(time.nanos).unwrap_or(0))
                .unwrap_or_default();
        object.insert(
            "time".into(),
            json!(time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
    }
    object.insert("datacontenttype".into(), json!("application/json"));
    // A payload the contracts do not describe (none should exist) goes without data rather
    // than as bytes the receiver cannot read.
    if let Some(data) = data(event) {
        object.insert("data".into(), data);
    }
    object.insert("throughlinetenant".into(), json!(event.tenant));
    if !event.traceparent.is_empty() {
        object.insert("traceparent".into(), json!(event.traceparent));
    }
    serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prost::Message;
    use throughline_proto::event::v1::MessageStatusChanged;

    use super::*;

    #[test]
    fn payloads_become_json() {
        let payload = MessageStatusChanged {
            message: "messages/m-1".into(),
            ..MessageStatusChanged::default()
        };
        let event = Event {
            id: "e-1".into(),
            source: "distribution".into(),
            r#type: "message.suppressed".into(),
            tenant: "acme".into(),
            data: Some(prost_types::Any {
                type_url: "type.googleapis.com/throughline.event.v1.MessageStatusChanged".into(),
                value: payload.encode_to_vec(),
            }),
            ..Event::default()
        };
        let json: Value = serde_json::from_slice(&body(&event)).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["source"], "/throughline/distribution");
        assert_eq!(json["throughlinetenant"], "acme");
        assert_eq!(json["data"]["message"], "messages/m-1");
    }
}
