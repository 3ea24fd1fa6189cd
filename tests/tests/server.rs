//! The shared server, seen from outside: health, reflection, authentication and scopes on
//! every RPC of the contract, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use throughline_harness::{
    Credentials, TestDatabase, TestSuite, on_both_databases, raw_call, raw_call_with,
    reached_the_service, token,
};
use throughline_proto::{METHOD_SCOPES, SERVICE_NAMES};
use throughline_runtime::auth::ApiKey;
use throughline_runtime::config::Secret;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_types::StatusExt;

const ALL: [&str; 5] = [
    "profile",
    "interaction",
    "feedback",
    "orchestration",
    "distribution",
];

async fn health(suite: &TestSuite, service: &str) -> Result<i32, tonic::Status> {
    let mut client = HealthClient::new(suite.channel().await);
    client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|response| response.into_inner().status)
}

async fn listed_services(suite: &TestSuite) -> BTreeSet<String> {
    let mut client = ServerReflectionClient::new(suite.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

fn is_hosted(path: &str, services: &[&str]) -> bool {
    let service = path.trim_start_matches('/').split('/').next().unwrap();
    services
        .iter()
        .any(|name| service.starts_with(&format!("throughline.{name}.v1.")))
        || service.starts_with("throughline.event.v1.")
}

on_both_databases!(
    every_service_is_healthy_and_listed,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&ALL, &db).await;
        for name in SERVICE_NAMES {
            assert_eq!(
                health(&suite, name).await.unwrap(),
                ServingStatus::Serving as i32,
                "{name}"
            );
        }
        assert_eq!(
            health(&suite, "").await.unwrap(),
            ServingStatus::Serving as i32
        );

        let listed = listed_services(&suite).await;
        for name in SERVICE_NAMES {
            assert!(listed.contains(name), "{name} missing from {listed:?}");
        }
        assert!(
            listed.contains("throughline.event.v1.EventLogService"),
            "{listed:?}"
        );
        assert!(listed.contains("grpc.health.v1.Health"), "{listed:?}");
        suite.stop().await;
    }
);

on_both_databases!(
    a_subset_serves_only_what_it_hosts,
    |db: TestDatabase| async move {
        let hosted = ["profile", "interaction"];
        let suite = TestSuite::start(&hosted, &db).await;
        let listed = listed_services(&suite).await;
        assert!(listed.contains("throughline.profile.v1.ProfileService"));
        assert!(listed.contains("throughline.interaction.v1.InteractionService"));
        assert!(
            !listed.contains("throughline.feedback.v1.FeedbackService"),
            "{listed:?}"
        );

        let not_hosted = health(&suite, "throughline.feedback.v1.FeedbackService")
            .await
            .unwrap_err();
        assert_eq!(not_hosted.code(), Code::NotFound);

        // A call for a service this process does not host passes auth, then finds no route.
        let admin = token("acme", &["*"]);
        let status = raw_call(
            suite.channel().await,
            "/throughline.feedback.v1.FeedbackService/GetSurvey",
            Credentials::Bearer(&admin),
        )
        .await;
        assert_eq!(status.code(), Code::Unimplemented);
        suite.stop().await;
    }
);

on_both_databases!(
    every_rpc_is_authenticated_and_needs_its_scope,
    |db: TestDatabase| async move {
        let suite = TestSuite::start(&ALL, &db).await;
        let channel = suite.channel().await;
        let unrelated = token("acme", &["unrelated:read"]);
        assert!(
            METHOD_SCOPES.len() > 50,
            "the contract has {} RPCs",
            METHOD_SCOPES.len()
        );
        for (path, scope) in METHOD_SCOPES {
            let anonymous = raw_call(channel.clone(), path, Credentials::None).await;
            assert_eq!(
                anonymous.code(),
                Code::Unauthenticated,
                "{path} without credentials"
            );
            let info = anonymous.get_error_details().error_info().cloned().unwrap();
            assert_eq!(info.reason, "UNAUTHENTICATED");

            let forged = raw_call(channel.clone(), path, Credentials::Bearer("not.a.jwt")).await;
            assert_eq!(
                forged.code(),
                Code::Unauthenticated,
                "{path} with a forged token"
            );

            let wrong_scope =
                raw_call(channel.clone(), path, Credentials::Bearer(&unrelated)).await;
            assert_eq!(
                wrong_scope.code(),
                Code::PermissionDenied,
                "{path} with another scope"
            );
            assert!(
                wrong_scope.message().contains(scope),
                "{}",
                wrong_scope.message()
            );

            // With its scope the call reaches the service.
            let allowed = token("acme", &[scope]);
            let reached = raw_call(channel.clone(), path, Credentials::Bearer(&allowed)).await;
            assert!(is_hosted(path, &ALL), "{path}");
            assert!(
                reached_the_service(reached.code()),
                "{path} with {scope}: {reached:?}"
            );
        }
        suite.stop().await;
    }
);

#[tokio::test]
async fn api_keys_authenticate_with_their_own_tenant_and_scopes() {
    let db = TestDatabase::sqlite();
    let key = "tl_test_0123456789abcdefghijkl";
    let mut config = TestSuite::config(&["profile"], &db, &[]);
    config.auth.api_keys.push(ApiKey {
        name: "crm-sync".into(),
        key: Secret::new(key),
        tenant: "acme".into(),
        scopes: vec!["profile:read".into()],
    });
    let suite = TestSuite::start_config(config).await;
    let channel = suite.channel().await;
    let read = "/throughline.profile.v1.ProfileService/GetProfile";
    let write = "/throughline.profile.v1.ProfileService/CreateProfile";
    assert!(reached_the_service(
        raw_call(channel.clone(), read, Credentials::ApiKey(key))
            .await
            .code()
    ));
    assert_eq!(
        raw_call(channel.clone(), write, Credentials::ApiKey(key))
            .await
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        raw_call(
            channel,
            read,
            Credentials::ApiKey("tl_test_wrong_key_0123456789ab")
        )
        .await
        .code(),
        Code::Unauthenticated
    );
    suite.stop().await;
}

#[tokio::test]
async fn typed_clients_reach_every_service_with_their_token() {
    use throughline_proto::{distribution, event, feedback, interaction, orchestration, profile};

    fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
        result.map_or_else(|status| status.code(), |_| Code::Ok)
    }

    let db = TestDatabase::sqlite();
    let suite = TestSuite::start(&ALL, &db).await;
    let mut clients = suite.clients(&token("acme", &["*"])).await;
    let codes = [
        code(
            clients
                .profile
                .get_profile(profile::v1::GetProfileRequest::default())
                .await,
        ),
        code(
            clients
                .interaction
                .get_interaction(interaction::v1::GetInteractionRequest::default())
                .await,
        ),
        code(
            clients
                .feedback
                .get_survey(feedback::v1::GetSurveyRequest::default())
                .await,
        ),
        code(
            clients
                .orchestration
                .get_journey(orchestration::v1::GetJourneyRequest::default())
                .await,
        ),
        code(
            clients
                .distribution
                .get_message(distribution::v1::GetMessageRequest::default())
                .await,
        ),
    ];
    // Authenticated and authorised, each call reaches its service.
    assert!(codes.into_iter().all(reached_the_service), "{codes:?}");
    // The event log is implemented: it checks what it is asked.
    let refused = clients
        .events
        .subscribe(event::v1::SubscribeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    suite.stop().await;
}

#[tokio::test]
async fn a_request_that_is_not_valid_protobuf_is_invalid_argument() {
    let db = TestDatabase::sqlite();
    let suite = TestSuite::start(&["profile"], &db).await;
    // prost encodes Vec<u8> as field 1, bytes: here not UTF-8, where GetProfileRequest has
    // its string `name`.
    let status = raw_call_with(
        suite.channel().await,
        "/throughline.profile.v1.ProfileService/GetProfile",
        Credentials::Bearer(&token("acme", &["profile:read"])),
        vec![0xff_u8, 0xfe, 0xfd],
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let violations = &details.bad_request().unwrap().field_violations;
    assert_eq!(violations[0].field, "name");
    suite.stop().await;
}
