//! Logs, traces and metrics: `tracing` for logs and spans, OpenTelemetry for export (OTLP
//! traces and metrics when an endpoint is configured) and a Prometheus text endpoint.

mod prometheus;
mod propagation;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Validate;

pub use prometheus::PrometheusRegistry;
pub use propagation::{HeaderExtractor, TraceContextInterceptor, extract_context, inject_context};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[telemetry]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryOptions {
    /// `text` for a terminal, `json` for Kubernetes log collection.
    pub log_format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `info,throughline_profile=debug`.
    pub log_level: String,
    /// OTLP gRPC endpoint (e.g. `http://otel-collector:4317`); traces and metrics are exported
    /// only when set.
    #[serde(default, deserialize_with = "crate::config::empty_as_none")]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Fraction of new traces sampled (a sampled parent is always followed).
    pub trace_sample_ratio: f64,
    /// How often metrics are pushed over OTLP.
    #[serde(with = "humantime_serde")]
    pub metrics_export_interval: Duration,
}

impl Validate for TelemetryOptions {
    fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(error) = EnvFilter::try_new(&self.log_level) {
            problems.push(format!("{prefix}.log_level: {error}"));
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            problems.push(format!(
                "{prefix}.trace_sample_ratio: must be between 0 and 1"
            ));
        }
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.push(format!(
                "{prefix}.otlp_endpoint: must start with http:// or https://"
            ));
        }
        if self.service_name.is_empty() {
            problems.push(format!("{prefix}.service_name: must not be empty"));
        }
        problems
    }
}

/// Keeps the exporters alive; [`TelemetryGuard::shutdown`] flushes what is buffered.
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: SdkMeterProvider,
    prometheus: PrometheusRegistry,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard").finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// The registry the `/metrics` endpoint renders.
    pub fn prometheus(&self) -> PrometheusRegistry {
        self.prometheus.clone()
    }

    /// Flushes spans and metrics; the providers block while exporting, so this runs off the
    /// async workers.
    pub async fn shutdown(self) {
        let result = tokio::task::spawn_blocking(move || {
            if let Some(tracer_provider) = self.tracer_provider {
                let _ = tracer_provider.force_flush();
                let _ = tracer_provider.shutdown();
            }
            let _ = self.meter_provider.shutdown();
        })
        .await;
        if result.is_err() {
            eprintln!("telemetry shutdown panicked; some spans may be lost");
        }
    }
}

/// Installs the global subscriber, propagator, tracer and meter providers. Call once, from
/// inside the Tokio runtime (the OTLP exporters use it).
pub fn init(options: &TelemetryOptions) -> Result<TelemetryGuard, Box<dyn std::error::Error>> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = Resource::builder()
        .with_service_name(options.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();

    let tracer_provider = match &options.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()?;
            Some(
                SdkTracerProvider::builder()
                    .with_resource(resource.clone())
                    .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                        options.trace_sample_ratio,
                    ))))
                    .with_batch_exporter(exporter)
                    .build(),
            )
        }
        None => None,
    };

    let prometheus = PrometheusRegistry::new();
    let mut meter_builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(prometheus.reader());
    if let Some(endpoint) = &options.otlp_endpoint {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()?;
        let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
            .with_interval(options.metrics_export_interval)
            .build();
        meter_builder = meter_builder.with_reader(reader);
    }
    let meter_provider = meter_builder.build();
    global::set_meter_provider(meter_provider.clone());

    let filter = EnvFilter::try_new(&options.log_level)?;
    let fmt_layer = match options.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let otel_layer = tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("throughline")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()?;

    Ok(TelemetryGuard {
        tracer_provider,
        meter_provider,
        prometheus,
    })
}
