//! heapfleet's telemetry: logs through `tracing`, traces and metrics through OpenTelemetry,
//! exported over OTLP/gRPC as the standard `OTEL_*` variables say.
//!
//! A server binary resolves a [`TelemetryConfig`] ([`TelemetryConfig::from_env`]), calls
//! [`init`] inside its tokio runtime and keeps the [`TelemetryGuard`] until it exits, then
//! shuts it down to flush. Code elsewhere uses plain `tracing` spans and events: the bridge
//! (tracing-opentelemetry) turns heapfleet's `info` spans into OpenTelemetry spans. Trace
//! context crosses processes as W3C `traceparent` ([`propagation`]): in gRPC metadata, and in
//! the catalog's job row from an upload to its ingest. Every metric is named in [`metrics`].
//!
//! With no endpoint configured nothing is exported and no exporter runs; the CLI's quick
//! commands use [`TelemetryConfig::logs_only`] and pay for nothing but their logs.
//!
//! This crate knows no other heapfleet crate and no gRPC types: servers and clients adapt
//! their own metadata to [`propagation`]'s carriers.

#![warn(missing_docs)]

mod config;
mod error;
mod init;
pub mod metrics;
pub mod propagation;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{Export, LOG_FORMAT_VARIABLE, LogFormat, TelemetryConfig};
pub use error::TelemetryError;
pub use init::{TRACER_NAME, TelemetryGuard, init};
/// The OpenTelemetry API, for code that needs its types (a `SpanContext` for a link, say).
pub use opentelemetry;
/// Extends `tracing::Span` with its OpenTelemetry context: set a remote parent, add a link.
pub use tracing_opentelemetry::OpenTelemetrySpanExt;
