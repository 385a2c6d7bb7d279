//! `init` in a process of its own (it installs the global subscriber): with no endpoint nothing
//! is exported and no meter provider runs, yet spans get trace ids and propagate; export asked
//! for outside a tokio runtime is refused before anything is installed; a second `init` fails.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use heapfleet_telemetry::{Export, TelemetryConfig, TelemetryError, init, metrics, propagation};

#[test]
fn test_init_without_an_endpoint_traces_in_process_only() {
    let mut config = TelemetryConfig::from_lookup("heapfleet-test", "warn", |_| None).unwrap();
    assert!(config.sdk_enabled);
    assert_eq!(
        (&config.traces, &config.metrics),
        (&Export::Off, &Export::Off)
    );

    // Export needs the runtime the gRPC exporter runs on.
    let mut exporting = config.clone();
    exporting.traces = Export::Otlp {
        endpoint: "http://127.0.0.1:4317".to_owned(),
    };
    assert!(matches!(init(&exporting), Err(TelemetryError::NoRuntime)));

    let guard = init(&config).unwrap();
    assert!(
        !metrics::metrics_enabled(),
        "no endpoint, no meter provider"
    );
    let span =
        tracing::info_span!(target: "heapfleet_test", "work", trace_id = tracing::field::Empty);
    let trace_id = propagation::trace_id(&span).expect("spans get trace ids without export");
    assert_eq!(trace_id.len(), 32);
    let carried = span.in_scope(propagation::current_trace_context).unwrap();
    assert!(carried.starts_with(&format!("00-{trace_id}-")), "{carried}");
    let linked = propagation::span_context_from_text(&carried).unwrap();
    assert_eq!(linked.trace_id().to_string(), trace_id);

    config.log_filter = "info".to_owned();
    assert!(matches!(init(&config), Err(TelemetryError::Subscriber(_))));
    guard.shutdown();
}
