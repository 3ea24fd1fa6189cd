//! Journeys as YAML files, the form kept in version control and applied with
//! `throughline journeys apply`. A file holds one or more documents, each
//!
//! ```yaml
//! id: abandoned-cart            # the journey is journeys/abandoned-cart
//! display_name: Abandoned cart
//! description: Reminds customers of what they left in their cart.
//! definition: { ... }           # a JourneyDefinition in its protobuf JSON mapping
//! ```
//!
//! The definition is read with the contracts' descriptors rather than a hand-written schema,
//! so every field of the contract is accepted by its proto name or its lowerCamelCase JSON
//! name, durations as `"3600s"`, enums by name, exactly as the API's JSON takes them.

use prost_reflect::{DeserializeOptions, DynamicMessage};
use serde::Deserialize;
use throughline_proto::orchestration::v1::Journey;
use throughline_runtime::request::is_resource_id;

const JOURNEY: &str = "throughline.orchestration.v1.Journey";

/// The keys a document may have besides `id`, each as the Journey field it sets.
const FIELDS: &[(&str, &str)] = &[
    ("display_name", "display_name"),
    ("displayName", "display_name"),
    ("description", "description"),
    ("definition", "definition"),
];

/// The journeys of a YAML text, each with its id, in the order written. An error names the
/// document (counted from 1) and the problem.
pub fn read_journeys(text: &str) -> Result<Vec<(String, Journey)>, String> {
    let mut journeys = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let value = serde_json::Value::deserialize(document)
            .map_err(|e| format!("document {number}: not valid YAML: {e}"))?;
        // An empty document, such as after a trailing `---`, holds no journey.
        if value.is_null() {
            continue;
        }
        let (id, journey) =
            document_journey(value).map_err(|e| format!("document {number}: {e}"))?;
        if ids.contains(&id) {
            return Err(format!("document {number}: journey `{id}` appears twice"));
        }
        ids.push(id.clone());
        journeys.push((id, journey));
    }
    Ok(journeys)
}

fn document_journey(value: serde_json::Value) -> Result<(String, Journey), String> {
    let serde_json::Value::Object(mut document) = value else {
        return Err("must be a mapping with id, display_name, description and definition".into());
    };
    let id = match document.remove("id") {
        Some(serde_json::Value::String(id)) => id,
        Some(_) | None => return Err("id: required, a string such as `abandoned-cart`".into()),
    };
    if !is_resource_id(&id) {
        return Err(format!(
            "id `{id}`: lower-case letters, digits and `-`, 1 to 63 characters"
        ));
    }
    let mut journey = serde_json::Map::new();
    for (key, value) in document {
        let Some((_, field)) = FIELDS.iter().find(|(name, _)| *name == key) else {
            return Err(format!(
                "unknown key `{key}`: a journey has id, display_name, description and definition"
            ));
        };
        journey.insert((*field).to_owned(), value);
    }
    let descriptor = crate::expr::descriptor_pool()
        .and_then(|pool| pool.get_message_by_name(JOURNEY))
        .ok_or("the journey contract is missing from this build")?;
    let message = DynamicMessage::deserialize_with_options(
        descriptor,
        serde_json::Value::Object(journey),
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .map_err(|e| e.to_string())?;
    let mut journey: Journey = message.transcode_to().map_err(|e| e.to_string())?;
    journey.name = format!("journeys/{id}");
    Ok((id, journey))
}

#[cfg(test)]
mod tests;
