//! Installing telemetry process-wide: the `tracing` subscriber (logs to stderr, and spans to
//! OpenTelemetry), the global tracer and meter providers, and the W3C propagator; and the
//! guard that flushes them at exit.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Export, LogFormat, TelemetryConfig};
use crate::error::TelemetryError;
use crate::metrics::set_metrics_enabled;

/// The instrumentation scope of heapfleet's spans.
pub const TRACER_NAME: &str = "heapfleet";

/// Keeps telemetry running; [`TelemetryGuard::shutdown`] (or dropping it) flushes the spans
/// and metrics still buffered and stops the exporters.
///
/// Shut down while the tokio runtime that started telemetry is still alive (after `block_on`
/// returns, before the runtime is dropped): the gRPC exporter sends its last batch through it.
#[must_use = "dropping the guard stops telemetry"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops the exporters.
    pub fn shutdown(mut self) {
        self.shutdown_providers();
    }

    fn shutdown_providers(&mut self) {
        // Traces first: a span ended during shutdown is still worth sending, a last metric
        // reading less so.
        if let Some(tracer_provider) = self.tracer_provider.take()
            && let Err(error) = tracer_provider.shutdown()
        {
            tracing::warn!(%error, "cannot flush the last spans");
        }
        if let Some(meter_provider) = self.meter_provider.take()
            && let Err(error) = meter_provider.shutdown()
        {
            tracing::warn!(%error, "cannot flush the last metrics");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown_providers();
    }
}

/// Installs logging, and OpenTelemetry as `config` says, for the whole process.
///
/// Logs go to stderr through `config.log_filter`. Unless the SDK is disabled, every span at
/// `info` or above from heapfleet's own crates also becomes an OpenTelemetry span, whatever the
/// log filter: trace ids exist and propagate, and logs inside a traced request show its
/// `trace_id`. Spans and metrics leave the process only for a signal that has an endpoint.
/// Call it inside the tokio runtime when anything is exported. Fails if a subscriber is
/// already installed.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let fmt_layer = log_layer(config.log_format, &config.log_filter);
    if !config.sdk_enabled {
        tracing_subscriber::registry()
            .with(fmt_layer)
            .try_init()
            .map_err(|error| TelemetryError::Subscriber(error.to_string()))?;
        return Ok(TelemetryGuard::default());
    }
    if (config.traces.is_on() || config.metrics.is_on())
        && tokio::runtime::Handle::try_current().is_err()
    {
        return Err(TelemetryError::NoRuntime);
    }
    // The SDK's resource detectors add OTEL_RESOURCE_ATTRIBUTES and the SDK's own attributes;
    // the service name resolved from the configuration wins over theirs.
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource.clone());
    if let Export::Otlp { endpoint } = &config.traces {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|source| TelemetryError::Exporter {
                signal: "traces",
                source,
            })?;
        // Batched on the SDK's own thread, so a slow collector never delays a request.
        tracer_builder = tracer_builder.with_batch_exporter(exporter);
    }
    let tracer_provider = tracer_builder.build();
    let meter_provider = match &config.metrics {
        Export::Otlp { endpoint } => {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|source| TelemetryError::Exporter {
                    signal: "metrics",
                    source,
                })?;
            Some(
                SdkMeterProvider::builder()
                    .with_resource(resource)
                    .with_periodic_exporter(exporter)
                    .build(),
            )
        }
        Export::Off => None,
    };
    install_layers(fmt_layer, &tracer_provider)?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    if let Some(meter_provider) = &meter_provider {
        opentelemetry::global::set_meter_provider(meter_provider.clone());
        set_metrics_enabled(true);
    }
    tracing::debug!(
        service = %config.service_name,
        traces = ?config.traces,
        metrics = ?config.metrics,
        "telemetry started"
    );
    Ok(TelemetryGuard {
        tracer_provider: Some(tracer_provider),
        meter_provider,
    })
}

/// Installs the subscriber: `fmt_layer` for the logs and the OpenTelemetry bridge fed by
/// `tracer_provider`.
fn install_layers<F>(
    fmt_layer: F,
    tracer_provider: &SdkTracerProvider,
) -> Result<(), TelemetryError>
where
    F: Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer(tracer_provider))
        .try_init()
        .map_err(|error| TelemetryError::Subscriber(error.to_string()))
}

/// The OpenTelemetry bridge: heapfleet's spans at `info` and above, whatever the log filter
/// says, so a quiet log level does not lose traces. Dependencies' spans (h2, tower, hyper) are
/// left out: they are per-frame detail, not requests.
pub(crate) fn otel_layer<S>(tracer_provider: &SdkTracerProvider) -> impl Layer<S> + 'static
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let spans = Targets::new()
        .with_target("heapfleet", LevelFilter::INFO)
        .with_default(LevelFilter::WARN);
    tracing_opentelemetry::layer()
        .with_tracer(tracer_provider.tracer(TRACER_NAME))
        .with_filter(spans)
}

/// The layer that writes log lines to stderr in `format`, through `filter`. Text is coloured
/// only on a terminal: escape codes in a file or a log collector are noise.
fn log_layer(
    format: LogFormat,
    filter: &str,
) -> Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> {
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => layer
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(log_filter(filter))
            .boxed(),
        LogFormat::Json => layer
            .json()
            .with_current_span(true)
            .with_filter(log_filter(filter))
            .boxed(),
    }
}

/// The log filter, or `info` when it does not parse (a typo in `RUST_LOG` should not stop a
/// server).
fn log_filter(filter: &str) -> EnvFilter {
    EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"))
}
