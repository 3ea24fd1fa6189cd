//! Renders the OpenTelemetry metrics of this process in the Prometheus text format, so one set
//! of instruments feeds both `/metrics` scrapes and OTLP export.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// A cheap handle on the reader that `/metrics` collects from.
#[derive(Clone, Debug)]
pub struct PrometheusRegistry {
    reader: Arc<ManualReader>,
}

impl Default for PrometheusRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusRegistry {
    pub fn new() -> Self {
        Self {
            // Prometheus expects running totals.
            reader: Arc::new(
                ManualReader::builder()
                    .with_temporality(Temporality::Cumulative)
                    .build(),
            ),
        }
    }

    /// The reader to register with the meter provider.
    pub(super) fn reader(&self) -> SharedReader {
        SharedReader(self.reader.clone())
    }

    /// The current value of every metric, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut metrics = ResourceMetrics::default();
        if self.reader.collect(&mut metrics).is_err() {
            return String::new();
        }
        let mut out = String::new();
        for scope in metrics.scope_metrics() {
            for metric in scope.metrics() {
                let name = metric_name(metric.name(), metric.unit());
                match metric.data() {
                    AggregatedMetrics::F64(data) => {
                        write_data(&mut out, &name, metric.description(), data)
                    }
                    AggregatedMetrics::U64(data) => {
                        write_data(&mut out, &name, metric.description(), data)
                    }
                    AggregatedMetrics::I64(data) => {
                        write_data(&mut out, &name, metric.description(), data)
                    }
                }
            }
        }
        out
    }
}

/// Lets the meter provider own a reader that `/metrics` can still reach.
#[derive(Debug)]
pub(super) struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

fn metric_name(name: &str, unit: &str) -> String {
    let mut sanitized: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let suffix = match unit {
        "s" => "_seconds",
        "By" => "_bytes",
        _ => "",
    };
    if !suffix.is_empty() && !sanitized.ends_with(suffix) {
        sanitized.push_str(suffix);
    }
    sanitized
}

fn labels<'a>(
    attributes: impl Iterator<Item = &'a KeyValue>,
    extra: Option<(&str, String)>,
) -> String {
    let mut pairs: Vec<String> = attributes
        .map(|kv| {
            let key: String = kv
                .key
                .as_str()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("{key}=\"{}\"", escape(&kv.value.to_string()))
        })
        .collect();
    if let Some((key, value)) = extra {
        pairs.push(format!("{key}=\"{value}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_data<T: Copy + std::fmt::Display>(
    out: &mut String,
    name: &str,
    description: &str,
    data: &MetricData<T>,
) {
    if !description.is_empty() {
        let _ = writeln!(out, "# HELP {name} {}", description.replace('\n', " "));
    }
    match data {
        MetricData::Sum(sum) => {
            let (kind, name) = if sum.is_monotonic() {
                ("counter", format!("{name}_total"))
            } else {
                ("gauge", name.to_owned())
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for point in sum.data_points() {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(point.attributes(), None),
                    point.value()
                );
            }
        }
        MetricData::Gauge(gauge) => {
            let _ = writeln!(out, "# TYPE {name} gauge");
            for point in gauge.data_points() {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(point.attributes(), None),
                    point.value()
                );
            }
        }
        MetricData::Histogram(histogram) => {
            let _ = writeln!(out, "# TYPE {name} histogram");
            for point in histogram.data_points() {
                let mut cumulative = 0;
                let bounds: Vec<f64> = point.bounds().collect();
                for (index, count) in point.bucket_counts().enumerate() {
                    cumulative += count;
                    let le = bounds
                        .get(index)
                        .map_or_else(|| "+Inf".to_owned(), |bound| bound.to_string());
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {cumulative}",
                        labels(point.attributes(), Some(("le", le)))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    labels(point.attributes(), None),
                    point.sum()
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    labels(point.attributes(), None),
                    point.count()
                );
            }
        }
        // Not used by Throughline's instruments; skipped rather than rendered wrongly.
        MetricData::ExponentialHistogram(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let registry = PrometheusRegistry::new();
        let provider = SdkMeterProvider::builder()
            .with_reader(registry.reader())
            .build();
        let meter = provider.meter("test");
        let histogram = meter
            .f64_histogram("rpc.server.duration")
            .with_unit("s")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        histogram.record(0.05, &[KeyValue::new("rpc.method", "GetProfile")]);
        histogram.record(0.5, &[KeyValue::new("rpc.method", "GetProfile")]);
        let counter = meter.u64_counter("events.published").build();
        counter.add(3, &[]);

        let text = registry.render();
        assert!(
            text.contains("# TYPE rpc_server_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                "rpc_server_duration_seconds_bucket{rpc_method=\"GetProfile\",le=\"0.1\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rpc_server_duration_seconds_bucket{rpc_method=\"GetProfile\",le=\"+Inf\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("rpc_server_duration_seconds_count{rpc_method=\"GetProfile\"} 2"),
            "{text}"
        );
        assert!(text.contains("events_published_total 3"), "{text}");
    }
}
