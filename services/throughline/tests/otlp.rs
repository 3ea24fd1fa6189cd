//! Traces leave each process over OTLP and join up: a test-run collector receives the server
//! spans of two separate `throughline` processes (profile, interaction) in the trace the test
//! started, with the caller's context injected by the runtime's client interceptor.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use throughline_harness::{reached_the_service, token};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.received.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| string_attribute(&resource.attributes, "service.name"))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push((service_name.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(text)) => Some(text.clone()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_two_services_arrive_in_one_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let otlp = (
        "THROUGHLINE__TELEMETRY__OTLP_ENDPOINT",
        collector_endpoint.as_str(),
    );
    let mut profile = common::spawn(
        &["--services", "profile"],
        &[
            otlp,
            (
                "THROUGHLINE__TELEMETRY__SERVICE_NAME",
                "throughline-profile",
            ),
        ],
    );
    let mut interaction = common::spawn(
        &["--services", "interaction"],
        &[
            otlp,
            (
                "THROUGHLINE__TELEMETRY__SERVICE_NAME",
                "throughline-interaction",
            ),
        ],
    );

    // The test is the caller: a span of its own whose context the runtime's interceptor
    // injects into both calls.
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _default = tracing::subscriber::set_default(subscriber);
    let caller = tracing::info_span!("caller");
    let trace_id = caller.context().span().span_context().trace_id();

    let token = token("acme", &["profile:read", "interaction:read"]);
    async {
        let profile_channel = throughline_runtime::client::channel(&profile.endpoint()).unwrap();
        let interaction_channel =
            throughline_runtime::client::channel(&interaction.endpoint()).unwrap();
        let mut profile_client =
            throughline_proto::profile::v1::profile_service_client::ProfileServiceClient::new(
                profile_channel,
            );
        let answer = profile_client
            .get_profile(throughline_harness::bearer(
                tonic::Request::new(Default::default()),
                &token,
            ))
            .await
            .map_or_else(|status| status.code(), |_| tonic::Code::Ok);
        assert!(reached_the_service(answer));
        let mut interaction_client =
            throughline_proto::interaction::v1::interaction_service_client::InteractionServiceClient::new(
                interaction_channel,
            );
        let answer = interaction_client
            .list_interactions(throughline_harness::bearer(
                tonic::Request::new(Default::default()),
                &token,
            ))
            .await
            .map_or_else(|status| status.code(), |_| tonic::Code::Ok);
        assert!(reached_the_service(answer));
    }
    .instrument(caller)
    .await;

    // SIGTERM flushes the exporters; both processes must exit cleanly.
    for process in [&mut profile, &mut interaction] {
        process.signal("TERM");
        assert_eq!(process.wait(Duration::from_secs(30)).await.code(), Some(0));
    }

    let received = collector.received.lock().unwrap().clone();
    let expected_trace = trace_id.to_bytes().to_vec();
    let in_trace: Vec<&(String, Span)> = received
        .iter()
        .filter(|(_, span)| span.trace_id == expected_trace)
        .collect();
    let find = |service_name: &str, rpc_service: &str, rpc_method: &str| {
        in_trace
            .iter()
            .find(|(name, span)| {
                name == service_name
                    && string_attribute(&span.attributes, "rpc.service").as_deref()
                        == Some(rpc_service)
            })
            .map(|(_, span)| {
                assert_eq!(
                    string_attribute(&span.attributes, "rpc.system").as_deref(),
                    Some("grpc")
                );
                assert_eq!(
                    string_attribute(&span.attributes, "rpc.method").as_deref(),
                    Some(rpc_method)
                );
                span.clone()
            })
            .unwrap_or_else(|| panic!("no {rpc_service} span from {service_name} in {received:?}"))
    };
    let profile_span = find(
        "throughline-profile",
        "throughline.profile.v1.ProfileService",
        "GetProfile",
    );
    let interaction_span = find(
        "throughline-interaction",
        "throughline.interaction.v1.InteractionService",
        "ListInteractions",
    );
    // Both are children of the caller's span.
    assert_eq!(profile_span.parent_span_id, interaction_span.parent_span_id);
    assert!(!profile_span.parent_span_id.is_empty());
}
