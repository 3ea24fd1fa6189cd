//! Checks a recorded interaction and turns it into what the store writes. Violations name the
//! field relative to the item (`interaction.channel`); the RPC prefixes the item's position.

use prost::Message;
use sha2::{Digest, Sha256};
use throughline_proto::common::v1::{Channel, Direction};
use throughline_proto::interaction::v1::RecordInteractionRequest;

use crate::customer::{CustomerKey, is_resource_id};
use crate::time::{MICROS_PER_SECOND, timestamp_us};

/// Items in one batch, streamed or not.
pub const MAX_BATCH: usize = 1000;
/// Encoded size limit of an interaction's or a thread's attributes.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
/// How far ahead of the server's clock an interaction may claim to have happened.
pub const MAX_CLOCK_SKEW_US: i64 = 5 * 60 * MICROS_PER_SECOND;
const MAX_TYPE_LEN: usize = 128;
const MAX_TEXT_LEN: usize = 256;

/// One problem with one field, with a stable reason code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) field: String,
    pub(crate) description: String,
    pub(crate) reason: &'static str,
}

impl Violation {
    pub(crate) fn new(
        field: impl Into<String>,
        reason: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
            reason,
        }
    }

    pub(crate) fn runtime(&self, prefix: &str) -> throughline_runtime::FieldViolation {
        throughline_runtime::FieldViolation::new(
            format!("{prefix}{}", self.field),
            self.description.clone(),
        )
    }

    pub(crate) fn proto(&self) -> throughline_proto::common::v1::FieldViolation {
        throughline_proto::common::v1::FieldViolation {
            field: self.field.clone(),
            description: self.description.clone(),
            reason: self.reason.to_owned(),
        }
    }
}

/// A valid interaction, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct NewInteraction {
    pub(crate) id: String,
    pub(crate) customer: CustomerKey,
    pub(crate) channel: i32,
    pub(crate) direction: i32,
    pub(crate) r#type: String,
    pub(crate) occur_us: i64,
    /// The thread's id (without `threads/`), empty for none.
    pub(crate) thread: String,
    pub(crate) touchpoint: String,
    pub(crate) reason: String,
    pub(crate) step: String,
    pub(crate) agent: String,
    pub(crate) outcome: String,
    pub(crate) source: String,
    pub(crate) attributes: Option<prost_types::Struct>,
    pub(crate) attributes_bytes: Option<Vec<u8>>,
    /// Identifies the content, to tell a retry from a different interaction under a reused id.
    pub(crate) content_hash: i64,
}

pub(crate) fn interaction(
    request: RecordInteractionRequest,
    now_us: i64,
) -> Result<NewInteraction, Vec<Violation>> {
    let mut violations = Vec::new();
    if !is_resource_id(&request.interaction_id) {
        violations.push(Violation::new(
            "interaction_id",
            if request.interaction_id.is_empty() {
                "REQUIRED"
            } else {
                "INVALID_FORMAT"
            },
            "required: 1 to 128 letters, digits, '-', '_' or '.'",
        ));
    }
    let Some(mut interaction) = request.interaction else {
        violations.push(Violation::new("interaction", "REQUIRED", "required"));
        return Err(violations);
    };
    let customer = match CustomerKey::parse(interaction.customer.as_ref(), "interaction.customer") {
        Ok(key) => Some(key),
        Err(problems) => {
            violations.extend(
                problems
                    .into_iter()
                    .map(|v| Violation::new(v.field, "INVALID_CUSTOMER", v.description)),
            );
            None
        }
    };
    match Channel::try_from(interaction.channel) {
        Ok(Channel::Unspecified) => violations.push(Violation::new(
            "interaction.channel",
            "REQUIRED",
            "required",
        )),
        Ok(_) => {}
        Err(_) => violations.push(Violation::new(
            "interaction.channel",
            "UNKNOWN_CHANNEL",
            format!("unknown channel {}", interaction.channel),
        )),
    }
    match Direction::try_from(interaction.direction) {
        Ok(Direction::Unspecified) => violations.push(Violation::new(
            "interaction.direction",
            "REQUIRED",
            "required: inbound or outbound",
        )),
        Ok(_) => {}
        Err(_) => violations.push(Violation::new(
            "interaction.direction",
            "UNKNOWN_DIRECTION",
            format!("unknown direction {}", interaction.direction),
        )),
    }
    if !is_type(&interaction.r#type) {
        violations.push(Violation::new(
            "interaction.type",
            if interaction.r#type.is_empty() {
                "REQUIRED"
            } else {
                "INVALID_FORMAT"
            },
            "required: lower-case letters, digits, '.', '_' or '-', at most 128 characters",
        ));
    }
    let occur_us = match interaction.occur_time.as_ref().map(timestamp_us) {
        None => {
            violations.push(Violation::new(
                "interaction.occur_time",
                "REQUIRED",
                "required",
            ));
            None
        }
        Some(None) => {
            violations.push(Violation::new(
                "interaction.occur_time",
                "OUT_OF_RANGE",
                "not a valid time from 1970 on",
            ));
            None
        }
        Some(Some(us)) if us > now_us + MAX_CLOCK_SKEW_US => {
            violations.push(Violation::new(
                "interaction.occur_time",
                "IN_FUTURE",
                "more than 5 minutes in the future",
            ));
            None
        }
        Some(Some(us)) => Some(us),
    };
    let thread = match interaction.thread.as_str() {
        "" => String::new(),
        name => match name
            .strip_prefix("threads/")
            .filter(|id| is_resource_id(id))
        {
            Some(id) => id.to_owned(),
            None => {
                violations.push(Violation::new(
                    "interaction.thread",
                    "INVALID_FORMAT",
                    "must be threads/{thread}",
                ));
                String::new()
            }
        },
    };
    for (field, value) in [
        ("interaction.touchpoint", &interaction.touchpoint),
        ("interaction.reason", &interaction.reason),
        ("interaction.step", &interaction.step),
        ("interaction.agent", &interaction.agent),
        ("interaction.outcome", &interaction.outcome),
        ("interaction.source", &interaction.source),
    ] {
        if let Some(violation) = text(field, value) {
            violations.push(violation);
        }
    }
    let attributes_bytes =
        match attributes("interaction.attributes", interaction.attributes.as_ref()) {
            Ok(bytes) => bytes,
            Err(violation) => {
                violations.push(violation);
                None
            }
        };
    let (Some(customer), Some(occur_us), true) = (customer, occur_us, violations.is_empty()) else {
        return Err(violations);
    };

    // Output-only fields take no part in what the interaction is.
    interaction.name.clear();
    interaction.profile.clear();
    interaction.record_time = None;
    let digest = Sha256::digest(interaction.encode_to_vec());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);

    Ok(NewInteraction {
        id: request.interaction_id,
        customer,
        channel: interaction.channel,
        direction: interaction.direction,
        r#type: interaction.r#type,
        occur_us,
        thread,
        touchpoint: interaction.touchpoint,
        reason: interaction.reason,
        step: interaction.step,
        agent: interaction.agent,
        outcome: interaction.outcome,
        source: interaction.source,
        attributes: interaction.attributes,
        attributes_bytes,
        content_hash: i64::from_be_bytes(first),
    })
}

/// Encoded attributes, `None` when empty; a violation past the size limit.
pub(crate) fn attributes(
    field: &str,
    attributes: Option<&prost_types::Struct>,
) -> Result<Option<Vec<u8>>, Violation> {
    let Some(attributes) = attributes.filter(|a| !a.fields.is_empty()) else {
        return Ok(None);
    };
    let size = attributes.encoded_len();
    if size > MAX_ATTRIBUTES_BYTES {
        return Err(Violation::new(
            field,
            "TOO_LARGE",
            format!("{size} bytes encoded; at most {MAX_ATTRIBUTES_BYTES}"),
        ));
    }
    Ok(Some(attributes.encode_to_vec()))
}

/// A short free-text field: at most 256 characters, no control characters.
pub(crate) fn text(field: &str, value: &str) -> Option<Violation> {
    (value.chars().count() > MAX_TEXT_LEN || value.chars().any(char::is_control)).then(|| {
        Violation::new(
            field,
            "INVALID_FORMAT",
            "at most 256 characters, no control characters",
        )
    })
}

fn is_type(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_TYPE_LEN
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// A valid request, for tests.
#[cfg(test)]
pub(crate) fn sample(id: &str) -> RecordInteractionRequest {
    use throughline_proto::common::v1::CustomerRef;
    use throughline_proto::common::v1::customer_ref::Customer;
    use throughline_proto::interaction::v1::Interaction;
    RecordInteractionRequest {
        interaction_id: id.into(),
        interaction: Some(Interaction {
            customer: Some(CustomerRef {
                customer: Some(Customer::Profile("profiles/p1".into())),
            }),
            channel: Channel::Web as i32,
            direction: Direction::Inbound as i32,
            r#type: "page_view".into(),
            occur_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Interaction::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: i64 = 1_800_000_000 * MICROS_PER_SECOND;

    fn fields(request: RecordInteractionRequest) -> Vec<String> {
        interaction(request, NOW)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn a_valid_interaction_passes_and_hashes_its_content_only() {
        let a = interaction(sample("a"), NOW).unwrap();
        let mut with_output = sample("b");
        with_output.interaction.as_mut().unwrap().profile = "profiles/zzz".into();
        let b = interaction(with_output, NOW).unwrap();
        assert_eq!(a.content_hash, b.content_hash);
        let mut changed = sample("a");
        changed.interaction.as_mut().unwrap().reason = "billing".into();
        assert_ne!(
            interaction(changed, NOW).unwrap().content_hash,
            a.content_hash
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut request = sample("bad id!");
        let item = request.interaction.as_mut().unwrap();
        item.channel = 99;
        item.direction = 0;
        item.r#type = "Page View".into();
        item.occur_time = Some(prost_types::Timestamp {
            seconds: NOW / MICROS_PER_SECOND + 3 * 365 * 86_400,
            nanos: 0,
        });
        item.thread = "thread-1".into();
        item.attributes = Some(prost_types::Struct {
            fields: [(
                "blob".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("x".repeat(17_000))),
                },
            )]
            .into(),
        });
        assert_eq!(
            fields(request),
            [
                "interaction_id",
                "interaction.channel",
                "interaction.direction",
                "interaction.type",
                "interaction.occur_time",
                "interaction.thread",
                "interaction.attributes"
            ]
        );
        let missing = RecordInteractionRequest {
            interaction_id: "x".into(),
            interaction: None,
        };
        assert_eq!(fields(missing), ["interaction"]);
    }
}
