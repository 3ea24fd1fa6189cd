//! `throughline journeys apply -f`: journeys kept as YAML in version control made the live
//! state of a server. Each journey's draft is created or updated where it differs, then
//! published when the draft holds changes; applying the same files again changes nothing.

use std::path::{Path, PathBuf};

use prost_types::FieldMask;
use throughline_orchestration::yaml::read_journeys;
use throughline_proto::orchestration::v1::orchestration_service_client::OrchestrationServiceClient;
use throughline_proto::orchestration::v1::{
    CreateJourneyRequest, GetJourneyRequest, Journey, PublishJourneyRequest, UpdateJourneyRequest,
};
use throughline_runtime::client;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic_types::StatusExt;

type Client = OrchestrationServiceClient<client::TracedChannel>;

/// A request carrying the caller's token.
fn authorised<T>(message: T, token: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    request
}

/// Applies every journey of `paths` (files, or directories of `.yaml`/`.yml` files) to the
/// server at `endpoint`, printing one line per journey. Every file is read and parsed before
/// the first call, so a typo in one file changes nothing.
pub async fn apply(
    endpoint: String,
    token: String,
    paths: Vec<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut journeys: Vec<(String, Journey)> = Vec::new();
    for file in files(&paths)? {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        for (id, journey) in read_journeys(&text).map_err(|e| format!("{}: {e}", file.display()))? {
            if journeys.iter().any(|(seen, _)| *seen == id) {
                return Err(format!("{}: journey {id} is defined twice", file.display()).into());
            }
            journeys.push((id, journey));
        }
    }
    let token: MetadataValue<Ascii> = format!("Bearer {token}").parse()?;
    let mut client = OrchestrationServiceClient::new(client::channel(&endpoint)?);
    let mut failed = 0;
    for (id, journey) in journeys {
        match apply_one(&mut client, &token, &id, journey).await {
            Ok(done) => println!("journeys/{id}: {done}"),
            Err(status) => {
                failed += 1;
                eprintln!("journeys/{id}: {}", describe(&status));
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} journey(s) not applied").into());
    }
    Ok(())
}

/// The files named, directories expanded to their YAML files in name order.
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| is_yaml(file))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn is_yaml(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml")
}

async fn apply_one(
    client: &mut Client,
    token: &MetadataValue<Ascii>,
    id: &str,
    wanted: Journey,
) -> Result<String, tonic::Status> {
    let name = format!("journeys/{id}");
    let existing = match client
        .get_journey(authorised(GetJourneyRequest { name: name.clone() }, token))
        .await
    {
        Ok(response) => response.into_inner().journey,
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => return Err(status),
    };
    let (journey, what) = match existing {
        None => {
            let created = client
                .create_journey(authorised(
                    CreateJourneyRequest {
                        journey: Some(wanted),
                        journey_id: id.to_owned(),
                        ..CreateJourneyRequest::default()
                    },
                    token,
                ))
                .await?
                .into_inner()
                .journey
                .unwrap_or_default();
            (created, "created")
        }
        Some(existing) if same(&existing, &wanted) => (existing, "unchanged"),
        Some(existing) => {
            let updated = client
                .update_journey(authorised(
                    UpdateJourneyRequest {
                        journey: Some(Journey {
                            name: name.clone(),
                            etag: existing.etag,
                            ..wanted
                        }),
                        update_mask: Some(FieldMask {
                            paths: vec![
                                "display_name".into(),
                                "description".into(),
                                "definition".into(),
                            ],
                        }),
                        validate_only: false,
                    },
                    token,
                ))
                .await?
                .into_inner()
                .journey
                .unwrap_or_default();
            (updated, "updated")
        }
    };
    if !journey.draft_changed && journey.published_version > 0 {
        return Ok(format!(
            "{what}, version {} live",
            journey.published_version
        ));
    }
    let published = client
        .publish_journey(authorised(
            PublishJourneyRequest {
                name,
                // What was just compared or written is what goes live.
                etag: journey.etag,
                request_id: String::new(),
            },
            token,
        ))
        .await?
        .into_inner();
    let version = published.version.map(|v| v.version).unwrap_or_default();
    Ok(format!("{what}, published version {version}"))
}

fn same(existing: &Journey, wanted: &Journey) -> bool {
    existing.display_name == wanted.display_name
        && existing.description == wanted.description
        && existing.definition == wanted.definition
}

/// A status for people: its message, and each field violation on a line of its own.
fn describe(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_error_details().bad_request() {
        for violation in &bad.field_violations {
            text.push_str(&format!(
                "\n  {}: {}",
                violation.field, violation.description
            ));
        }
    }
    text
}
