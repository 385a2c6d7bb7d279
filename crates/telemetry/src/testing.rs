//! In-memory telemetry for tests (feature `testing`): [`install`] sets up, once per test
//! binary, the same `tracing` bridge and global providers as [`crate::init`], exporting to the
//! SDK's in-memory exporters instead of a collector, so a test can assert the spans, links and
//! metrics that a request produced.
//!
//! Everything here is process-wide (one subscriber, one set of providers per process), so
//! tests in one binary share it: pick the spans of one request by trace id, and read metrics as
//! differences or in a binary whose tests do not overlap.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A finished span as the in-memory exporter keeps it.
pub use opentelemetry_sdk::trace::SpanData;

use crate::init::otel_layer;
use crate::metrics::set_metrics_enabled;

/// The in-memory exporters [`install`] set up.
#[derive(Debug)]
pub struct TestTelemetry {
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    meter_provider: SdkMeterProvider,
    _tracer_provider: SdkTracerProvider,
}

static INSTALLED: OnceLock<TestTelemetry> = OnceLock::new();

/// Installs in-memory telemetry for this process (the first call) and returns it.
///
/// Spans are exported as each one ends (a simple processor, no batching), so a span is visible
/// as soon as the code that held it is done. Panics if another `tracing` subscriber was
/// installed first.
pub fn install() -> &'static TestTelemetry {
    INSTALLED.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let metrics = InMemoryMetricExporter::default();
        // Read on demand by `TestTelemetry::metrics`; the interval only has to be long.
        let reader = PeriodicReader::builder(metrics.clone())
            .with_interval(Duration::from_secs(24 * 3600))
            .build();
        let meter_provider = SdkMeterProvider::builder().with_reader(reader).build();
        tracing_subscriber::registry()
            .with(otel_layer(&tracer_provider))
            .try_init()
            .expect("in-memory telemetry is the first tracing subscriber of the test binary");
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(tracer_provider.clone());
        opentelemetry::global::set_meter_provider(meter_provider.clone());
        set_metrics_enabled(true);
        TestTelemetry {
            spans,
            metrics,
            meter_provider,
            _tracer_provider: tracer_provider,
        }
    })
}

impl TestTelemetry {
    /// Every span that has ended so far, in the order they ended.
    pub fn finished_spans(&self) -> Vec<SpanData> {
        self.spans
            .get_finished_spans()
            .expect("the in-memory span exporter is running")
    }

    /// Collects every instrument now and returns the reading (cumulative since the start).
    pub fn metrics(&self) -> MetricsReading {
        self.meter_provider
            .force_flush()
            .expect("the in-memory meter provider collects");
        let mut exported = self
            .metrics
            .get_finished_metrics()
            .expect("the in-memory metric exporter is running");
        self.metrics.reset();
        MetricsReading {
            resource_metrics: exported.pop(),
        }
    }
}

/// One collection of every instrument.
#[derive(Debug)]
pub struct MetricsReading {
    resource_metrics: Option<ResourceMetrics>,
}

/// Whether a data point's attributes include every `(key, value)` of `wanted` (values compared
/// as text, so `("rpc.grpc.status_code", "0")` matches the integer 0).
fn has_attributes<'a>(
    attributes: impl Iterator<Item = &'a opentelemetry::KeyValue>,
    wanted: &[(&str, &str)],
) -> bool {
    let attributes: Vec<&opentelemetry::KeyValue> = attributes.collect();
    wanted.iter().all(|(key, value)| {
        attributes
            .iter()
            .any(|attribute| attribute.key.as_str() == *key && attribute.value.as_str() == *value)
    })
}

impl MetricsReading {
    fn metric_data(&self, name: &str) -> Option<&AggregatedMetrics> {
        self.resource_metrics
            .as_ref()?
            .scope_metrics()
            .flat_map(|scope| scope.metrics())
            .find(|metric| metric.name() == name)
            .map(|metric| metric.data())
    }

    /// The total of the `u64` counter `name` over its data points carrying `attributes`; 0 when
    /// nothing was recorded.
    pub fn counter(&self, name: &str, attributes: &[(&str, &str)]) -> u64 {
        match self.metric_data(name) {
            Some(AggregatedMetrics::U64(MetricData::Sum(sum))) => sum
                .data_points()
                .filter(|point| has_attributes(point.attributes(), attributes))
                .map(|point| point.value())
                .sum(),
            _ => 0,
        }
    }

    /// How many values the `f64` histogram `name` recorded with `attributes`.
    pub fn histogram_count(&self, name: &str, attributes: &[(&str, &str)]) -> u64 {
        match self.metric_data(name) {
            Some(AggregatedMetrics::F64(MetricData::Histogram(histogram))) => histogram
                .data_points()
                .filter(|point| has_attributes(point.attributes(), attributes))
                .map(|point| point.count())
                .sum(),
            _ => 0,
        }
    }

    /// The value the `u64` gauge `name` reported with `attributes`, if it reported one.
    pub fn gauge(&self, name: &str, attributes: &[(&str, &str)]) -> Option<u64> {
        match self.metric_data(name) {
            Some(AggregatedMetrics::U64(MetricData::Gauge(gauge))) => gauge
                .data_points()
                .find(|point| has_attributes(point.attributes(), attributes))
                .map(|point| point.value()),
            _ => None,
        }
    }
}
