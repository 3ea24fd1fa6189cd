//! The outermost layer of every call: a request id, a server span that continues the caller's
//! trace, and RED metrics (rate, errors, duration) labelled by service, method and status.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use pin_project_lite::pin_project;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::extract_context;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn duration_histogram() -> &'static Histogram<f64> {
    static HISTOGRAM: OnceLock<Histogram<f64>> = OnceLock::new();
    HISTOGRAM.get_or_init(|| {
        opentelemetry::global::meter("throughline")
            .f64_histogram("rpc.server.duration")
            .with_unit("s")
            .with_description("Duration of gRPC calls handled, by service, method and status code.")
            .with_boundaries(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
            .build()
    })
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
}

/// Splits `/pkg.Service/Method` into its service and method.
fn rpc_parts(path: &str) -> (String, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) => (service.to_owned(), method.to_owned()),
        None => (trimmed.to_owned(), String::new()),
    }
}

impl<S> Service<Request<Body>> for Observe<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let request_id = match request.headers().get(REQUEST_ID_HEADER) {
            Some(value) if is_acceptable_request_id(value) => value.clone(),
            _ => {
                let generated = HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                    .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
                request
                    .headers_mut()
                    .insert(REQUEST_ID_HEADER, generated.clone());
                generated
            }
        };
        let (service, method) = rpc_parts(request.uri().path());
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            request_id = request_id.to_str().unwrap_or_default(),
            tenant = tracing::field::Empty,
        );
        let _ = span.set_parent(extract_context(request.headers()));
        // Call the service that was polled ready, leaving a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // Records CANCELLED if the call is dropped before it answers (the client went away,
        // or tonic's own handling of the caller's grpc-timeout fired).
        let mut completion = Completion::new(started, service, method, span.clone());
        Box::pin(
            async move {
                let mut response = inner.call(request).await?;
                response.headers_mut().insert(REQUEST_ID_HEADER, request_id);
                // A status in the headers is a trailers-only response: the call is over.
                if let Some(code) = grpc_status(response.headers()) {
                    completion.finish(code);
                    return Ok(response);
                }
                Ok(response.map(|body| {
                    Body::new(ObservedBody {
                        inner: body,
                        completion,
                    })
                }))
            }
            .instrument(span),
        )
    }
}

/// A caller's request id is kept when it is short and plain, since it goes into every log
/// line of the call; anything else is replaced by one of ours.
fn is_acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:/".contains(byte))
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

struct CallFacts {
    started: Instant,
    service: String,
    method: String,
    span: tracing::Span,
}

/// Records a call's outcome exactly once: when its status is known, or as CANCELLED when it
/// is dropped before that.
struct Completion(Option<CallFacts>);

impl Completion {
    fn new(started: Instant, service: String, method: String, span: tracing::Span) -> Self {
        Self(Some(CallFacts {
            started,
            service,
            method,
            span,
        }))
    }

    fn finish(&mut self, code: i32) {
        let Some(facts) = self.0.take() else {
            return;
        };
        let status = tonic::Code::from_i32(code);
        facts.span.record("rpc.grpc.status_code", code);
        if is_server_fault(status) {
            facts.span.record("otel.status_code", "ERROR");
        }
        duration_histogram().record(
            facts.started.elapsed().as_secs_f64(),
            &[
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", facts.service),
                KeyValue::new("rpc.method", facts.method),
                KeyValue::new("rpc.grpc.status_code", i64::from(code)),
            ],
        );
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled as i32);
    }
}

/// Errors that are the server's fault mark the span as failed; a caller's mistake does not.
fn is_server_fault(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    )
}

pin_project! {
    /// Watches a response body for its trailers to learn the call's final status; a body
    /// dropped before them counts as CANCELLED (through `Completion`'s drop).
    struct ObservedBody<B> {
        #[pin]
        inner: B,
        completion: Completion,
    }
}

impl<B: HttpBody> HttpBody for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    this.completion.finish(code);
                }
            }
            Some(Err(_)) => this.completion.finish(tonic::Code::Internal as i32),
            // Ended without trailers and without a status in them.
            None => this.completion.finish(tonic::Code::Unknown as i32),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
