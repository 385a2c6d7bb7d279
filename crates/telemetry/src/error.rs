//! [`TelemetryError`]: why telemetry could not start.

/// Why telemetry could not start. A process that gets one exits before it binds anything, as
/// for any other bad configuration.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An `OTEL_*` variable asks for something this build cannot do.
    #[error("{0}")]
    Config(String),
    /// An OTLP exporter could not be built (a malformed endpoint, say).
    #[error("cannot set up the OTLP {signal} exporter")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// What the exporter reported.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// Export is configured but the caller is outside a tokio runtime, which the gRPC exporter
    /// needs.
    #[error("OTLP export needs a tokio runtime: start telemetry inside one")]
    NoRuntime,
    /// Another global `tracing` subscriber was installed first.
    #[error("cannot install the log subscriber: {0}")]
    Subscriber(String),
}
