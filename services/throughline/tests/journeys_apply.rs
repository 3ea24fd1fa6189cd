//! `throughline journeys apply -f` against a real server: the example journey is created and
//! published, applying it again changes nothing, an edited file publishes a new version, and
//! a file that does not parse or a definition with violations changes nothing and says why.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use throughline_harness::token;
use throughline_proto::orchestration::v1::GetJourneyRequest;
use throughline_proto::orchestration::v1::orchestration_service_client::OrchestrationServiceClient;

const SCOPES: [&str; 3] = [
    "orchestration:read",
    "orchestration:write",
    "orchestration:admin",
];

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/journeys/abandoned-cart.yaml")
}

fn apply(endpoint: &str, files: &[&Path]) -> (bool, String, String) {
    let mut command = common::command();
    command
        .args(["journeys", "apply", "--endpoint", endpoint])
        .env("THROUGHLINE_TOKEN", token("acme", &SCOPES));
    for file in files {
        command.arg("-f").arg(file);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.success(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[tokio::test]
async fn journeys_apply_is_idempotent_and_publishes_changes() {
    let server = common::spawn(&["--services", "orchestration"], &[]);
    let endpoint = server.endpoint();
    let (ok, out, err) = apply(&endpoint, &[&example()]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "journeys/abandoned-cart: created, published version 1\n"
    );

    let (ok, out, err) = apply(&endpoint, &[&example()]);
    assert!(ok, "{err}");
    assert_eq!(out, "journeys/abandoned-cart: unchanged, version 1 live\n");

    // An edited copy in a directory: a new version.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example()).unwrap();
    let edited = text.replace("holdout_percent: 10", "holdout_percent: 5");
    assert_ne!(edited, text);
    std::fs::write(dir.path().join("cart.yaml"), &edited).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a journey").unwrap();
    let (ok, out, err) = apply(&endpoint, &[dir.path()]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "journeys/abandoned-cart: updated, published version 2\n"
    );

    let mut client =
        OrchestrationServiceClient::new(common::authorised(endpoint.clone(), &SCOPES).await);
    let journey = client
        .get_journey(GetJourneyRequest {
            name: "journeys/abandoned-cart".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .journey
        .unwrap();
    assert_eq!(journey.published_version, 2);
    assert_eq!(journey.definition.unwrap().holdout_percent, 5.0);

    // A file that does not parse: nothing is applied, not even the good file beside it.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "id: [unclosed").unwrap();
    std::fs::write(dir.path().join("cart.yaml"), &text).unwrap();
    let (ok, out, err) = apply(&endpoint, &[dir.path()]);
    assert!(!ok);
    assert_eq!(out, "");
    assert!(err.contains("broken.yaml: document 1"), "{err}");

    // Violations are printed per field.
    std::fs::remove_file(&broken).unwrap();
    let invalid = text.replace("holdout_percent: 10", "holdout_percent: 120");
    std::fs::write(dir.path().join("cart.yaml"), invalid).unwrap();
    let (ok, _, err) = apply(&endpoint, &[dir.path()]);
    assert!(!ok);
    assert!(
        err.contains("InvalidArgument") && err.contains("\n  journey.definition.holdout_percent: "),
        "{err}"
    );
    let journey = client
        .get_journey(GetJourneyRequest {
            name: "journeys/abandoned-cart".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .journey
        .unwrap();
    assert_eq!(journey.published_version, 2);
}
